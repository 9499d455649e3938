"""raw.products: the catalogue."""

from expectations.suite import at_least, raw_suite

suite = raw_suite("products", extra_rows=lambda now: [at_least("price", 0)])
