"""Audiences built from filters, with consent enforced in the SQL itself: whatever the filters,
only customers who consented to the chosen channel are counted or exported. Exports hold the
customer id and the masked contact only, and every export is logged (who, when, filters, row
count; no personal data) to ``$C360_HOME/reports/audience_exports.jsonl``.

The app's warehouse connection is read-only (the pipeline is the one writer), so the log is a
file rather than a table. The one write is an export's campaign assignment
(``activation.campaign_assignments``): the export opens a short writer connection, which waits
for the pipeline's lock like any writer, assigns the audience's new people to treatment or
holdout (``c360.campaigns.assign``) and leaves the holdout out of the file.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from queries import CONSENT_CHANNELS, run

from c360 import campaigns
from c360.warehouse import connect

# The contact a channel reaches, masked; push goes to the app by customer id.
CHANNEL_CONTACT = {"email": "email_masked", "sms": "phone_masked", "phone": "phone_masked", "push": None}
EXPORT_LOG = "audience_exports.jsonl"


@dataclass(frozen=True)
class AudienceFilter:
    channel: str
    rfm_segments: tuple[str, ...] = field(default_factory=tuple)
    clv_tiers: tuple[str, ...] = field(default_factory=tuple)
    risk_bands: tuple[str, ...] = field(default_factory=tuple)
    cluster_names: tuple[str, ...] = field(default_factory=tuple)
    lifecycle_stages: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.channel not in CONSENT_CHANNELS:
            raise ValueError(f"channel must be one of {CONSENT_CHANNELS}, not {self.channel!r}")


def audience_sql(spec: AudienceFilter, select: str) -> tuple[str, list]:
    """The audience query and its parameters. The consent condition is not optional."""
    where = [f"c.consent_{spec.channel} is true"]
    if CHANNEL_CONTACT[spec.channel]:
        where.append(f"c.{CHANNEL_CONTACT[spec.channel]} is not null")
    params: list = []
    joins = []
    if spec.rfm_segments:
        where.append("c.rfm_segment in (select unnest(?))")
        params.append(list(spec.rfm_segments))
    if spec.clv_tiers:
        where.append("c.clv_tier in (select unnest(?))")
        params.append(list(spec.clv_tiers))
    if spec.risk_bands:
        joins.append("join ml.churn_scores k on k.customer_id = c.customer_id")
        where.append("k.risk_band in (select unnest(?))")
        params.append(list(spec.risk_bands))
    if spec.cluster_names:
        joins.append("join marts.customer_segments s on s.customer_id = c.customer_id")
        where.append("s.segment_name in (select unnest(?))")
        params.append(list(spec.cluster_names))
    if spec.lifecycle_stages:
        # The lifecycle_stage tag (marts.customer_tags; rule in int_customer_tags_assigned.sql).
        where.append(
            "c.customer_id in (select customer_id from marts.customer_tags "
            "where tag = 'lifecycle_stage' and value in (select unnest(?)))"
        )
        params.append(list(spec.lifecycle_stages))
    sql = f"select {select} from marts.customer_360 c {' '.join(joins)} where {' and '.join(where)}"
    return sql, params


def audience_size(path: str, spec: AudienceFilter) -> int:
    sql, params = audience_sql(spec, "count(distinct c.customer_id) as n")
    return int(run(path, sql, params)["n"].iloc[0])


def audience_rows(path: str, spec: AudienceFilter, limit: int | None = None) -> pd.DataFrame:
    """customer_id, channel and the masked contact for that channel: what the CSV holds."""
    contact = CHANNEL_CONTACT[spec.channel]
    contact_sql = f"c.{contact}" if contact else "null::varchar"
    select = f"distinct c.customer_id, '{spec.channel}' as channel, {contact_sql} as contact_masked"
    sql, params = audience_sql(spec, select)
    sql += " order by c.customer_id" + (f" limit {int(limit)}" if limit is not None else "")
    return run(path, sql, params)


def audience_csv(rows: pd.DataFrame) -> bytes:
    return rows[["customer_id", "channel", "contact_masked"]].to_csv(index=False).encode()


def default_campaign(spec: AudienceFilter) -> str:
    """The campaign id an export uses unless the user names one: the channel and today's date,
    so exports of one day to one channel form one campaign (and keep everyone's group)."""
    return f"app-{spec.channel}-{datetime.now():%Y-%m-%d}"


def export(
    path: str,
    reports_dir: Path,
    spec: AudienceFilter,
    user: str | None = None,
    campaign: str | None = None,
    holdout_share: float = campaigns.DEFAULT_HOLDOUT_SHARE,
) -> bytes:
    """The audience's treatment group as CSV bytes, logged. Called when the user clicks export.

    The audience's people not yet in ``campaign`` are assigned first (stratified, stable across
    re-exports); the campaign's holdout never leaves in the file.
    """
    rows = audience_rows(path, spec)
    campaign = campaign or default_campaign(spec)
    with connect(path) as con:
        con.register("app_audience", rows[["customer_id"]])
        groups = campaigns.assign(
            con,
            campaign,
            "select customer_id from app_audience",
            datetime.now().replace(microsecond=0),
            holdout_share,
        )
        held = {
            customer
            for (customer,) in con.execute(
                f"select customer_id from {campaigns.ASSIGNMENTS_TABLE} "
                "where campaign = ? and campaign_group = 'holdout'",
                [campaign],
            ).fetchall()
        }
    rows = rows[~rows["customer_id"].isin(held)]
    csv = audience_csv(rows)
    log_export(reports_dir, spec, len(rows), csv, user, campaign=campaign, groups=groups)
    return csv


def who() -> str:
    return os.environ.get("C360_APP_USER") or getpass.getuser()


def log_export(
    reports_dir: Path,
    spec: AudienceFilter,
    rows: int,
    csv: bytes,
    user: str | None = None,
    campaign: str | None = None,
    groups: dict | None = None,
) -> dict:
    """Append one line to the export log: no customer ids or contacts, only what was asked and
    how many rows left (the file's digest lets an auditor match a file to its line)."""
    entry = {
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "user": user or who(),
        "filters": asdict(spec),
        "rows": int(rows),
        "sha256": hashlib.sha256(csv).hexdigest(),
        "campaign": campaign,
        "treatment": (groups or {}).get("treatment"),
        "holdout": (groups or {}).get("holdout"),
    }
    reports_dir.mkdir(parents=True, exist_ok=True)
    with (reports_dir / EXPORT_LOG).open("a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
    return entry
