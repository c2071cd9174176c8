"""Bearer-token authentication with lockout for rustqueue."""

__version__ = "0.1.0"
