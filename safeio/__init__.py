"""Safe file I/O shared by every package: atomic outputs (temporary sibling, then rename)."""
