"""Capture: one pass of the model over the text, every layer's states and log p, and its cache."""
