"""Training and evaluation: examples, loss and optimizer steps, metrics, the corpus index."""
