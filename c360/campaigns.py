"""Campaign holdouts: which audience members are contacted (``treatment``) and which are
deliberately not (``holdout``), so that a campaign's effect can be measured
(``marts.campaign_results``).

Every audience export calls :func:`assign`. Each consenting person of the audience is assigned
once per campaign, in SQL: within each stratum (churn-risk band x RFM segment at export time)
people are ranked by ``md5(campaign | customer_id)`` and the lowest-ranked are held out, as many
as bring the stratum's holdout to ``round(holdout_share x people in the stratum)``, counting
those assigned by earlier exports. So both groups have the same stratum mix, a re-export keeps
everyone's group and only adds new people, and the same inputs always give the same groups. The
audience table is then cut to the treatment group (:func:`keep_treatment`): only they leave in
the file.
"""

from __future__ import annotations

from datetime import datetime

ASSIGNMENTS_TABLE = "activation.campaign_assignments"
DEFAULT_HOLDOUT_SHARE = 0.10
GROUPS = ("treatment", "holdout")

# (name, type, description): the table's schema, created empty on every writable connection
# (c360.warehouse.connect) so that dbt builds marts.campaign_results on a fresh warehouse.
ASSIGNMENT_COLUMNS = [
    ("campaign", "varchar", "Campaign id (the audience name unless the export names a campaign)"),
    ("customer_id", "varchar", "Customer id"),
    ("campaign_group", "varchar", "treatment (contacted) or holdout (deliberately not contacted)"),
    ("stratum", "varchar", "Churn-risk band / RFM segment at first export: the randomisation stratum"),
    ("churn_risk_band", "varchar", "Churn-risk band at first export (unscored before the churn model)"),
    ("rfm_segment", "varchar", "RFM segment at first export (no purchase without purchases)"),
    ("lifecycle_stage", "varchar", "Lifecycle stage tag at first export (null before tags are built)"),
    ("holdout_share", "double", "Holdout share the campaign was exported with"),
    (
        "exported_at",
        "timestamp",
        "First export of the person in this campaign: the attribution window starts here",
    ),
]

CREATE_SQL = (
    f"create table if not exists {ASSIGNMENTS_TABLE} ("
    + ", ".join(f"{name} {type_}" for name, type_, _ in ASSIGNMENT_COLUMNS)
    + ")"
)


def ensure_table(con) -> None:
    con.execute("create schema if not exists activation")
    con.execute(CREATE_SQL)


def _exists(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def assign_sql(audience_sql: str, with_tags: bool) -> str:
    """Insert the audience's new people with their group. Parameters: campaign (4 times),
    holdout share (twice), exported_at."""
    lifecycle = (
        "(select customer_id, value as lifecycle_stage from marts.customer_tags where tag = 'lifecycle_stage')"
        if with_tags
        else "(select cast(null as varchar) as customer_id, cast(null as varchar) as lifecycle_stage where false)"
    )
    return f"""
    insert into {ASSIGNMENTS_TABLE}
    with audience as (
        select distinct customer_id from ({audience_sql}) as a where customer_id is not null
    ),
    earlier as (
        select * from {ASSIGNMENTS_TABLE} where campaign = $1
    ),
    fresh as (
        select customer_id from audience where customer_id not in (select customer_id from earlier)
    ),
    profiled as (
        select
            f.customer_id,
            coalesce(c.churn_risk_band, 'unscored') as churn_risk_band,
            coalesce(c.rfm_segment, 'no purchase') as rfm_segment,
            t.lifecycle_stage
        from fresh f
        left join marts.customer_360 c using (customer_id)
        left join {lifecycle} t using (customer_id)
    ),
    ranked as (
        select
            *,
            churn_risk_band || ' / ' || rfm_segment as stratum,
            row_number() over (
                partition by churn_risk_band, rfm_segment
                order by md5($1 || '|' || customer_id), customer_id
            ) as hash_rank,
            count(*) over (partition by churn_risk_band, rfm_segment) as new_people
        from profiled
    ),
    before as (
        select stratum, count(*) as people, count(*) filter (where campaign_group = 'holdout') as held
        from earlier group by stratum
    ),
    final as (
        select
            $1 as campaign,
            r.customer_id,
            -- The stratum's holdout tops up to its share of everyone assigned so far, so small
            -- re-exports (a few cart abandoners at a time) are held out too, in proportion.
            case
                when r.hash_rank <= round($2 * (coalesce(b.people, 0) + r.new_people)) - coalesce(b.held, 0)
                then 'holdout' else 'treatment'
            end as campaign_group,
            r.stratum,
            r.churn_risk_band,
            r.rfm_segment,
            r.lifecycle_stage,
            $2 as holdout_share,
            $3 as exported_at
        from ranked r
        left join before b using (stratum)
    )
    select * from final order by customer_id
    """


def assign(
    con, campaign: str, audience_sql: str, exported_at: datetime, holdout_share: float = DEFAULT_HOLDOUT_SHARE
) -> dict:
    """Assign the audience's people not yet in ``campaign``; return the campaign's group sizes.

    ``audience_sql``: a query with a ``customer_id`` column (consenting people only: the audience
    builders enforce consent). Needs ``marts.customer_360`` for the strata.
    """
    if not campaign or not campaign.strip():
        raise ValueError("a campaign needs a non-empty id")
    if not 0 <= holdout_share < 1:
        raise ValueError(f"holdout_share must be in [0, 1), not {holdout_share}")
    ensure_table(con)
    with_tags = _exists(con, "marts", "customer_tags")
    before = con.execute(
        f"select count(*) from {ASSIGNMENTS_TABLE} where campaign = ?", [campaign]
    ).fetchone()[0]
    con.execute(assign_sql(audience_sql, with_tags), [campaign, float(holdout_share), exported_at])
    counts = dict(
        con.execute(
            f"select campaign_group, count(*) from {ASSIGNMENTS_TABLE} where campaign = ? group by 1",
            [campaign],
        ).fetchall()
    )
    total = sum(counts.values())
    return {
        "campaign": campaign,
        "new_people": int(total - before),
        "treatment": int(counts.get("treatment", 0)),
        "holdout": int(counts.get("holdout", 0)),
    }


def keep_treatment(con, table: str, campaign: str) -> int:
    """Delete the campaign's holdout from the audience ``table``; return the rows removed."""
    held = f"select customer_id from {ASSIGNMENTS_TABLE} where campaign = ? and campaign_group = 'holdout'"
    removed = con.execute(
        f"select count(*) from {table} where customer_id in ({held})", [campaign]
    ).fetchone()[0]
    con.execute(f"delete from {table} where customer_id in ({held})", [campaign])
    return int(removed)


def export_holdout(
    con, table: str, campaign: str, exported_at: datetime, holdout_share: float = DEFAULT_HOLDOUT_SHARE
) -> dict:
    """Assign the people in the audience ``table`` to ``campaign`` and cut the table to the
    treatment group: what every audience export does."""
    stats = assign(con, campaign, f"select customer_id from {table}", exported_at, holdout_share)
    stats["held_out_rows"] = keep_treatment(con, table, campaign)
    return stats


def data_now(con) -> datetime:
    """The data's "now" for an export on generated or replayed data: ``marts.customer_360``'s
    as-of date (the day after the latest purchase) at midnight, so the window holds only later
    purchases."""
    row = con.execute("select cast(max(as_of_date) as timestamp) from marts.customer_360").fetchone()
    if row[0] is None:
        raise ValueError("marts.customer_360 is empty: no as-of date to export at")
    return row[0]
