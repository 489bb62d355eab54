"""Command groups, one module each."""
