"""qrusty-compatible HTTP and WebSocket API for rustqueue."""

__version__ = "0.1.0"
