"""OpenTelemetry traces and metrics for rustqueue."""

__version__ = "0.1.0"
