"""TCP transport for rustqueue: pipelined NDJSON and binary batch frames."""

__version__ = "0.1.0"
