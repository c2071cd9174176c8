"""DuckDB job history and analytics for rustqueue."""

__version__ = "0.1.0"
