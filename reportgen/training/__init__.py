"""Training: the demo's built-in corpus, and training and sweeps of word-level LSTMs as pytorch/examples trains them."""
