"""Inputs: the corpus and its vocabulary, the checkpoint and its model, token features."""
