"""marts.customer_360: one row per person."""

from expectations.suite import MASK_REGEX, E, QualitySuite, at_least, equals_zero, not_null

AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55+", "unknown"]
RFM_SEGMENTS = [
    f"{tier} {kind}"
    for tier in ("important", "general")
    for kind in ("value", "development", "retention", "win-back")
]


def _rows(now):
    return [
        *not_null("customer_id", "orders_total", "revenue", "age_band", "as_of_date"),
        E.ExpectColumnValuesToBeInSet(column="age_band", value_set=AGE_BANDS),
        E.ExpectColumnValuesToBeInSet(column="gender", value_set=["F", "M", "U"]),
        E.ExpectColumnValuesToBeInSet(column="rfm_segment", value_set=RFM_SEGMENTS),
        at_least("revenue", 0),
        at_least("orders_total", 0),
        at_least("crm_records", 0),
        *(at_least(c, 1, 5) for c in ("r_score", "f_score", "m_score")),
        at_least("last_purchase_at", None, now),
        E.ExpectColumnValuesToMatchRegex(column="email_masked", regex=MASK_REGEX["email"]),
        E.ExpectColumnValuesToMatchRegex(column="phone_masked", regex=MASK_REGEX["phone"]),
    ]


suite = QualitySuite(
    name="marts.customer_360",
    table="marts.customer_360",
    row_expectations=_rows,
    facts={
        "row_count": "select count(*) from marts.customer_360",
        "duplicate_customer_ids": "select count(*) - count(distinct customer_id) from marts.customer_360",
        "customers_not_in_identity_map": (
            "select count(*) from marts.customer_360 c where not exists "
            "(select 1 from marts.identity_map m where m.customer_id = c.customer_id)"
        ),
        "orders_not_summing": (
            "select count(*) from marts.customer_360 where orders_total <> orders_online + orders_in_store"
        ),
        "purchases_out_of_order": "select count(*) from marts.customer_360 where last_purchase_at < first_purchase_at",
    },
    fact_expectations=[
        at_least("row_count", 1),
        *equals_zero(
            "duplicate_customer_ids",
            "customers_not_in_identity_map",
            "orders_not_summing",
            "purchases_out_of_order",
        ),
    ],
    pii_columns=("email_masked", "phone_masked"),
)
