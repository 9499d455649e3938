"""marts.identity_map: every identity-bearing source record and its person."""

from c360.contracts import SOURCES
from expectations.suite import NEW_ROWS, E, QualitySuite, at_least, equals_zero, not_null

MATCH_RULES = [
    "account_id",
    "crm_ref",
    "loyalty_card",
    "email",
    "phone",
    "device_login",
    "fuzzy_name_dob_postcode",
    "singleton",
]
# The raw column each source's records are identified by in the map.
RECORD_IDS = {
    "crm_customers": "customer_ref",
    "ecommerce_orders": "order_id",
    "web_events": "device_id",
    "pos_transactions": "transaction_id",
    "service_tickets": "ticket_id",
    "product_reviews": "review_id",
    "marketing_consent": "consent_event_id",
}


# Each map record (source, id) with how many map rows carry it (null: a raw id the map lacks),
# joined with its source's distinct raw ids (null: a map record no raw row carries), source by
# source. The facts below count from it. One query per fact read the map (a view of 19M records at
# 1M customers) and a raw table's distinct ids twelve times over: 8.1-9.2 s, against 6.7-7.0 s
# for one full join on (source, id); joined per source, on the id alone, 3.8-4.1 s against
# 5.4-6.1 s for that join.
LINKS = " union all ".join(
    f"""
    select '{source}' as source, m.rows, r.id is not null as in_raw
    from (
        select source_record_id as id, count(*) as rows from marts.identity_map
        where source = '{source}' group by all
    ) m
    full join (select "{column}" as id from raw.{source} where "{column}" is not null group by all) r
        on m.id = r.id"""
    for source, column in RECORD_IDS.items()
)

_facts = {
    "row_count": "select count(*) from marts.identity_map",
    "duplicate_records": "select coalesce(sum(rows - 1), 0) from links where rows is not null",
}
for _source in RECORD_IDS:
    # CRM records, orders, reviews, tickets and consent events are always keyed; devices and
    # walk-in receipts may be anonymous, so only the map -> raw direction is checked for them.
    if _source not in ("web_events", "pos_transactions"):
        _facts[f"unmapped:{_source}"] = (
            f"select count(*) from links where source = '{_source}' and rows is null"
        )
    _facts[f"dangling:{_source}"] = (
        f"select coalesce(sum(rows), 0) from links where source = '{_source}' and rows is not null and not in_raw"
    )
# On an increment (the gate has passed before): the records written since, as the map's rows
# (int_identity_records_matched, by the time their component was resolved), and what they touch.
# A record is rewritten whenever its component is recomputed, and every record when one is gone
# (an erasure), so the map's other rows passed these facts before and still do: each is distinct
# and has a raw row. `written`: each (source, id) a written record holds, with how many map rows
# carry it and whether a raw row does. Then
# - duplicates and dangling records are counted over those ids alone;
# - the raw ids the map lacks are the raw ids less the map's distinct ids that a raw row carries:
#   the map's rows, less the written ids' dangling rows and extra copies. The raw gates keep each
#   source's ids unique, so the raw ids are counted, not grouped (a repeated raw key, whose gate
#   failed, can only make this count fail).
# At 1M customers a week's run writes about 5% of the records: the facts took 4.6-5.3 s whole,
# about 1.5 s so.
MATCHED = "intermediate.int_identity_records_matched"
WRITTEN = " union all ".join(
    f"""
    select '{source}' as source, g.rows,
        exists (select 1 from raw.{source} r where r."{column}" = g.id) as in_raw
    from (
        select m.source_record_id as id, count(*) as rows from marts.identity_map m
        semi join (select distinct source_record_id as id from {NEW_ROWS} where source = '{source}') w
            on m.source_record_id is not distinct from w.id
        where m.source = '{source}'
        group by all
    ) g"""
    for source, column in RECORD_IDS.items()
)
_increment_facts = {"duplicate_records": "select coalesce(sum(rows - 1), 0) from written"}
for _source, _column in RECORD_IDS.items():
    if _source not in ("web_events", "pos_transactions"):
        _increment_facts[f"unmapped:{_source}"] = (
            f'select (select count("{_column}") from raw.{_source}) '
            f"- (select count(*) from marts.identity_map where source = '{_source}') "
            f"+ (select coalesce(sum(case when in_raw then rows - 1 else rows end), 0) from written "
            f"where source = '{_source}')"
        )
    _increment_facts[f"dangling:{_source}"] = (
        f"select coalesce(sum(rows), 0) from written where source = '{_source}' and not in_raw"
    )

suite = QualitySuite(
    name="marts.identity_map",
    table="marts.identity_map",
    row_expectations=lambda now: [
        *not_null("source", "source_record_id", "customer_id", "match_rule"),
        E.ExpectColumnValuesToBeInSet(column="source", value_set=sorted(SOURCES)),
        E.ExpectColumnValuesToBeInSet(column="match_rule", value_set=MATCH_RULES),
        E.ExpectColumnValuesToMatchRegex(column="customer_id", regex=r"^C[0-9a-f]{16}$"),
    ],
    facts=_facts,
    shared={"links": LINKS},
    increment_facts=_increment_facts,
    increment_shared={"written": WRITTEN},
    window_table=MATCHED,
    window_column="resolved_at",
    fact_expectations=[at_least("row_count", 1), *equals_zero(*(f for f in _facts if f != "row_count"))],
)
