"""HTTP REST transport (Litestar) for rustqueue, wire-compatible with RustQueue 0.3."""

__version__ = "0.1.0"
