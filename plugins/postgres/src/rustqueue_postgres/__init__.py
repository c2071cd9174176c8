"""PostgreSQL storage for rustqueue: many nodes, SKIP LOCKED claims."""

__version__ = "0.1.0"
