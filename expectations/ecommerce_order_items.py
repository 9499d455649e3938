"""raw.ecommerce_order_items: order lines, tied to their order and to the catalogue."""

from expectations.suite import at_least, equals_zero, orphans, raw_suite

suite = raw_suite(
    "ecommerce_order_items",
    extra_rows=lambda now: [
        at_least("quantity", 1),
        at_least("unit_price", 0),
        at_least("discount", 0),
        at_least("line_no", 1),
    ],
    facts={
        "lines_without_order": orphans(
            "raw.ecommerce_order_items", "order_id", "raw.ecommerce_orders", "order_id"
        ),
        "lines_with_unknown_product": orphans(
            "raw.ecommerce_order_items", "product_id", "raw.products", "product_id"
        ),
    },
    fact_expectations=equals_zero("lines_without_order", "lines_with_unknown_product"),
)
