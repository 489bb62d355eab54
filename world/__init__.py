"""A world: its tables (data.md), in-memory indexes, engagement sequences and the generator."""
