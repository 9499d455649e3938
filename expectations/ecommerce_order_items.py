"""raw.ecommerce_order_items: order lines, tied to their order and to the catalogue."""

from expectations.suite import at_least, raw_suite

suite = raw_suite(
    "ecommerce_order_items",
    extra_rows=lambda now: [
        at_least("quantity", 1),
        at_least("unit_price", 0),
        at_least("discount", 0),
        at_least("line_no", 1),
    ],
    references={
        "lines_without_order": ("order_id", "raw.ecommerce_orders", "order_id"),
        "lines_with_unknown_product": ("product_id", "raw.products", "product_id"),
    },
)
