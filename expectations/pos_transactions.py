"""raw.pos_transactions: store receipt lines; daily store revenue is watched for drift."""

from expectations.suite import Drift, at_least, raw_suite

suite = raw_suite(
    "pos_transactions",
    extra_rows=lambda now: [at_least("quantity", 1), at_least("unit_price", 0), at_least("line_no", 1)],
    references={"lines_with_unknown_product": ("product_id", "raw.products", "product_id")},
    drift=Drift(time_column="occurred_at", value="quantity * unit_price", label="revenue"),
)
