"""Benchmarks of the platform at scale (``c360 bench``): every stage timed from a real run,
against a raw-DuckDB floor and a pandas peer, plus a daily incremental run."""
