"""Privacy gates on activation tables: no consent, no marketing."""

from __future__ import annotations

import dagster as dg

from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

CHANNELS = ("email", "sms", "push", "phone")
# The current decision per person and channel (the latest event wins; no event = no consent).
CONSENT_TABLE = "intermediate.int_consent_latest"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def customers_without_consent(con, table: str, channel: str) -> tuple[int, int, list[str]]:
    """(rows, rows without consent for ``channel``, a few of their customer ids) of ``table``."""
    relation = ".".join(_quote(p) for p in table.split("."))
    total = con.execute(f"select count(*) from {relation}").fetchone()[0]
    violators = con.execute(
        f"""
        select distinct a.customer_id from {relation} a
        where a.customer_id is null or not exists (
            select 1 from {CONSENT_TABLE} c
            where c.customer_id = a.customer_id and c.channel = ? and c.granted
        )
        order by 1 nulls first
        """,
        [channel],
    ).fetchall()
    return total, len(violators), [str(v[0]) for v in violators[:10]]


def consent_check(asset_key: dg.AssetKey | str | list[str], channel: str) -> dg.AssetChecksDefinition:
    """A blocking check that the activation table ``asset_key`` (schema/table, with a
    ``customer_id`` column) holds nobody without consent for ``channel``."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown consent channel {channel!r}; expected one of {CHANNELS}")
    key = (
        dg.AssetKey.from_user_string(asset_key)
        if isinstance(asset_key, str)
        else dg.AssetKey.from_coercible(asset_key)
    )
    if len(key.path) != 2:
        raise ValueError(
            f"{key.to_user_string()}: expected a schema/table asset key such as activation/<audience>"
        )
    table = ".".join(key.path)

    @dg.asset_check(
        asset=key,
        name=f"consent_{channel}",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=f"Every customer in {table} currently consents to {channel} marketing "
        f"(latest decision in {CONSENT_TABLE}); anyone else blocks the audience.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            total, bad, sample = customers_without_consent(con, table, channel)
        return dg.AssetCheckResult(
            passed=bad == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rows": total,
                "customers_without_consent": bad,
                "sample_customer_ids": dg.MetadataValue.json(sample),
                "channel": channel,
            },
            description=None
            if bad == 0
            else f"{bad} customer(s) in {table} have no current {channel} consent",
        )

    return _check
