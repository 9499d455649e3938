"""Customer 360: shared platform code (settings, landing contract, generator, ingestion, privacy, CLI)."""

__version__ = "0.1.0"
