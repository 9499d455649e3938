"""The landing-zone contract: what each source's files must contain.

One folder per source under ``$C360_HOME/landing/<source>/``, CSV (header row, comma,
double-quote quoting; UTF-8, or GB18030 / Windows-1252, which ingestion detects) or Parquet,
loaded file by file. Required columns must be in a file's header; optional ones may be left
out (null). Every source has exactly one key column. The generator writes these files; ingestion validates against them; the README
renders them. Change a source here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Sensitivity classes used everywhere (dbt meta, Dagster metadata, docs).
PUBLIC, INTERNAL, SENSITIVE = "public", "internal", "sensitive"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type used to parse the file
    required: bool = False
    description: str = ""
    pii: str = INTERNAL  # public / internal / sensitive
    # How ingestion protects a sensitive value: "hash" (HMAC pseudonym of the normalised value,
    # for matching), "encrypt" (AES-256-GCM, for the privileged path), both ("hash+encrypt"),
    # or None (kept as is). Every protected column also gets a masked form for analysts.
    protect: str | None = None

    @property
    def hashed(self) -> bool:
        return bool(self.protect) and "hash" in self.protect

    @property
    def encrypted(self) -> bool:
        return bool(self.protect) and "encrypt" in self.protect


@dataclass(frozen=True)
class Source:
    name: str
    key: str
    description: str
    columns: tuple[Column, ...]
    # Columns holding event time, checked against "no timestamps in the future".
    event_time: tuple[str, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


C = Column

SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            "crm_customers",
            key="customer_ref",
            description="CRM customer profiles. A person may have more than one record.",
            columns=(
                C("customer_ref", "VARCHAR", True, "CRM record id, e.g. CRM0000001"),
                C("first_name", "VARCHAR", False, "Given name (pinyin, free format)"),
                C("last_name", "VARCHAR", False, "Family name (pinyin, free format)"),
                C("email", "VARCHAR", False, "Email, any case/spacing", SENSITIVE, "hash+encrypt"),
                C(
                    "phone",
                    "VARCHAR",
                    False,
                    "Mobile phone, any format (+86, dashes, spaces)",
                    SENSITIVE,
                    "hash+encrypt",
                ),
                C("birth_date", "DATE", False, "Date of birth"),
                C("gender", "VARCHAR", False, "F, M or U"),
                C("city", "VARCHAR", False, "City"),
                C("region", "VARCHAR", False, "Province / region"),
                C("postcode", "VARCHAR", False, "6-digit postcode"),
                C("signup_date", "DATE", True, "Date the record was created"),
                C("signup_channel", "VARCHAR", False, "web, app or store"),
                C(
                    "loyalty_card",
                    "VARCHAR",
                    False,
                    "Loyalty card number, e.g. LC00001234",
                    SENSITIVE,
                    "hash",
                ),
                C("national_id", "VARCHAR", False, "18-character PRC resident id", SENSITIVE, "encrypt"),
                C("bank_card", "VARCHAR", False, "Bank card number (Luhn-valid)", SENSITIVE, "hash+encrypt"),
                C("updated_at", "TIMESTAMP", True, "Last change of the record"),
            ),
            event_time=("updated_at",),
        ),
        Source(
            "products",
            key="product_id",
            description="Product catalogue.",
            columns=(
                C("product_id", "VARCHAR", True, "Product id, e.g. P000123", PUBLIC),
                C("product_name", "VARCHAR", True, "Display name", PUBLIC),
                C("category", "VARCHAR", True, "Top-level category", PUBLIC),
                C("brand", "VARCHAR", False, "Brand", PUBLIC),
                C("price", "DOUBLE", True, "List price", PUBLIC),
                C("launched_at", "DATE", False, "Launch date", PUBLIC),
                C("discontinued", "BOOLEAN", False, "No longer sold", PUBLIC),
            ),
        ),
        Source(
            "ecommerce_orders",
            key="order_id",
            description="Web shop and app orders, one row per order, keyed to a shop account.",
            columns=(
                C("order_id", "VARCHAR", True, "Order id"),
                C("account_id", "VARCHAR", True, "Shop account id (the web login user id)"),
                C("email", "VARCHAR", False, "Account email at order time", SENSITIVE, "hash"),
                C("phone", "VARCHAR", False, "Contact phone at order time", SENSITIVE, "hash"),
                C("ordered_at", "TIMESTAMP", True, "Order submission time"),
                C("channel", "VARCHAR", True, "web or app"),
                C("status", "VARCHAR", True, "placed, paid, shipped, delivered, cancelled, returned"),
                C("payment_method", "VARCHAR", False, "card, alipay, wechat_pay, cod"),
                C("promo_code", "VARCHAR", False, "Promotion code used, if any"),
                C("amount", "DOUBLE", True, "Order total after discounts"),
                C("currency", "VARCHAR", False, "ISO currency, CNY"),
                C("shipping_postcode", "VARCHAR", False, "Delivery postcode"),
            ),
            event_time=("ordered_at",),
        ),
        Source(
            "ecommerce_order_items",
            key="order_item_id",
            description="Order lines.",
            columns=(
                C("order_item_id", "VARCHAR", True, "<order_id>-<line_no>"),
                C("order_id", "VARCHAR", True, "Order id"),
                C("line_no", "INTEGER", True, "Line number in the order, from 1"),
                C("product_id", "VARCHAR", True, "Product id"),
                C("quantity", "INTEGER", True, "Units, > 0"),
                C("unit_price", "DOUBLE", True, "Price per unit"),
                C("discount", "DOUBLE", False, "Discount on the line"),
            ),
        ),
        Source(
            "web_events",
            key="event_id",
            description="Web and app clickstream.",
            columns=(
                C("event_id", "VARCHAR", True, "Event id"),
                C("occurred_at", "TIMESTAMP", True, "Event time"),
                C("session_id", "VARCHAR", True, "Client session id"),
                C("device_id", "VARCHAR", True, "Anonymous device / cookie id"),
                C("user_id", "VARCHAR", False, "Shop account id when logged in"),
                C(
                    "event_type",
                    "VARCHAR",
                    True,
                    "page_view, search, product_view, add_to_cart, checkout, purchase",
                ),
                C("product_id", "VARCHAR", False, "Product for product_view / add_to_cart"),
                C("search_query", "VARCHAR", False, "Search text"),
                C("channel", "VARCHAR", True, "web or app"),
                C("order_id", "VARCHAR", False, "Order id on purchase events"),
            ),
            event_time=("occurred_at",),
        ),
        Source(
            "pos_transactions",
            key="pos_line_id",
            description="In-store point-of-sale lines; loyalty card or phone is the only customer key.",
            columns=(
                C("pos_line_id", "VARCHAR", True, "<transaction_id>-<line_no>"),
                C("transaction_id", "VARCHAR", True, "Till receipt id"),
                C("line_no", "INTEGER", True, "Line on the receipt, from 1"),
                C("store_id", "VARCHAR", True, "Store"),
                C("occurred_at", "TIMESTAMP", True, "Sale time"),
                C("loyalty_card", "VARCHAR", False, "Loyalty card scanned", SENSITIVE, "hash"),
                C("phone", "VARCHAR", False, "Phone given at the till", SENSITIVE, "hash"),
                C("product_id", "VARCHAR", True, "Product id"),
                C("quantity", "INTEGER", True, "Units, > 0"),
                C("unit_price", "DOUBLE", True, "Price per unit"),
                C("payment_method", "VARCHAR", False, "cash, card, alipay, wechat_pay"),
                C("promo_code", "VARCHAR", False, "Promotion used"),
            ),
            event_time=("occurred_at",),
        ),
        Source(
            "service_tickets",
            key="ticket_id",
            description="Customer-service tickets.",
            columns=(
                C("ticket_id", "VARCHAR", True, "Ticket id"),
                C("opened_at", "TIMESTAMP", True, "Opened"),
                C("closed_at", "TIMESTAMP", False, "Closed, empty while open"),
                C("channel", "VARCHAR", True, "phone, email, chat"),
                C("email", "VARCHAR", False, "Contact email", SENSITIVE, "hash"),
                C("phone", "VARCHAR", False, "Contact phone", SENSITIVE, "hash"),
                C("category", "VARCHAR", True, "delivery, refund, product, complaint, account"),
                C("text", "VARCHAR", False, "Customer's message"),
                C("resolution", "VARCHAR", False, "resolved, pending, escalated, refunded"),
            ),
            event_time=("opened_at",),
        ),
        Source(
            "product_reviews",
            key="review_id",
            description="Product reviews written from a shop account.",
            columns=(
                C("review_id", "VARCHAR", True, "Review id"),
                C("account_id", "VARCHAR", True, "Shop account id"),
                C("product_id", "VARCHAR", True, "Product id"),
                C("order_id", "VARCHAR", False, "Order reviewed"),
                C("score", "INTEGER", True, "1 to 5 stars"),
                C("text", "VARCHAR", False, "Free text"),
                C("created_at", "TIMESTAMP", True, "Written"),
            ),
            event_time=("created_at",),
        ),
        Source(
            "marketing_consent",
            key="consent_event_id",
            description="Consent events per CRM record and channel; the latest event wins.",
            columns=(
                C("consent_event_id", "VARCHAR", True, "Event id"),
                C("customer_ref", "VARCHAR", True, "CRM record id"),
                C("channel", "VARCHAR", True, "email, sms, push, phone"),
                C("granted", "BOOLEAN", True, "true = opt-in, false = opt-out"),
                C("occurred_at", "TIMESTAMP", True, "When the customer decided"),
                C("source", "VARCHAR", False, "Where it was captured: web, app, store, call_center"),
            ),
            event_time=("occurred_at",),
        ),
    ]
}

# Row-level rules ingestion applies (quarantine rule names; the generator's defect types).
RULES = {
    "malformed_line": "The CSV line cannot be parsed (column count, quoting, or a value of the wrong type such as a bad date).",
    "missing_required": "A required field is empty.",
    "invalid_email": "Email does not look like local@domain.tld after normalisation.",
    "invalid_phone": "Phone is not an 11-digit mobile number (after removing +86, spaces and dashes).",
    "negative_amount": "An amount or price is negative.",
    "non_positive_quantity": "Quantity is zero or negative.",
    "future_timestamp": "An event time lies in the future at load time.",
    "unknown_product": "The product id is not in the catalogue.",
    "duplicate": "Same account, items and amount submitted again within 60 seconds: the extra copy.",
    "duplicate_key": "The key was already loaded (same id in an earlier row or file).",
    "orphan_order": "An order line whose order was not loaded (missing or quarantined).",
}
