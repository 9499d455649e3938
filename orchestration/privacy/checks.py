"""Privacy gates on activation tables: no consent, no marketing."""

from __future__ import annotations

import dagster as dg

from orchestration.resources import WAREHOUSE_POOL, WarehouseResource

CHANNELS = ("email", "sms", "push", "phone")
# The current decision per person and channel (the latest event wins; no event = no consent).
CONSENT_TABLE = "intermediate.int_consent_latest"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def customers_without_consent(
    con, table: str, channel: str | None = None, channel_column: str | None = None
) -> tuple[int, int, list[str]]:
    """(rows, customers without consent, a few of their customer ids) of ``table``: consent for
    ``channel``, or for each row's own channel in ``channel_column`` (a row without one, e.g. a
    retention action of "nothing", needs consent to some channel)."""
    relation = ".".join(_quote(p) for p in table.split("."))
    total = con.execute(f"select count(*) from {relation}").fetchone()[0]
    wanted = "?" if channel_column is None else f"coalesce(a.{_quote(channel_column)}, c.channel)"
    violators = con.execute(
        f"""
        select distinct a.customer_id from {relation} a
        where a.customer_id is null or not exists (
            select 1 from {CONSENT_TABLE} c
            where c.customer_id = a.customer_id and c.channel = {wanted} and c.granted
        )
        order by 1 nulls first
        """,
        [channel] if channel_column is None else None,
    ).fetchall()
    return total, len(violators), [str(v[0]) for v in violators[:10]]


def consent_check(
    asset_key: dg.AssetKey | str | list[str], channel: str | None = None, channel_column: str | None = None
) -> dg.AssetChecksDefinition:
    """A blocking check that the activation table ``asset_key`` (schema/table, with a
    ``customer_id`` column) holds nobody without consent for ``channel``, or for the channel each
    row names in ``channel_column``. Every audience the platform exports carries one."""
    if (channel is None) == (channel_column is None):
        raise ValueError("give a consent channel or the column naming each row's channel")
    if channel is not None and channel not in CHANNELS:
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

    what = f"{channel} marketing" if channel else f"marketing on the channel in its {channel_column} column"

    @dg.asset_check(
        asset=key,
        name=f"consent_{channel or channel_column}",
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=f"Every customer in {table} currently consents to {what} "
        f"(latest decision in {CONSENT_TABLE}); anyone else blocks the audience.",
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            total, bad, sample = customers_without_consent(con, table, channel, channel_column)
        return dg.AssetCheckResult(
            passed=bad == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rows": total,
                "customers_without_consent": bad,
                "sample_customer_ids": dg.MetadataValue.json(sample),
                "channel": channel or f"per row ({channel_column})",
            },
            description=None
            if bad == 0
            else f"{bad} customer(s) in {table} have no current consent for {what}",
        )

    return _check
