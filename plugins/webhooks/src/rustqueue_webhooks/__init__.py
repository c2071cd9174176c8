"""Signed webhooks with a durable outbox for rustqueue."""

__version__ = "0.1.0"
