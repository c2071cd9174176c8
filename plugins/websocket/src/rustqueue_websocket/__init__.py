"""WebSocket job-event stream for rustqueue."""

__version__ = "0.1.0"
