"""xfeed command-line interface."""
