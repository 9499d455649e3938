"""Benchmarks of the privacy primitives (``python -m cli.bench.privacy_primitives``); prints numbers, asserts nothing.

Builds a synthetic warehouse shaped like a 20k-customer run (pseudonyms, tokens, UUIDs,
timestamps, free text; ~3.5M rows) in a temporary directory and times the scanner on it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import duckdb
import pyarrow as pa

from c360.privacy.crypto import encrypt_column, hmac_sql, register_udfs
from c360.privacy.keys import Keyring
from c360.privacy.scan import scan
from c360.settings import Settings


def _timed(label: str, func) -> None:
    started = time.perf_counter()
    func()
    click.echo(f"{label:<48} {time.perf_counter() - started:6.2f}s")


def build_synthetic_warehouse(
    path: Path, keyring: Keyring, customers: int = 20_000, events: int = 3_000_000
) -> None:
    with duckdb.connect(str(path)) as con:
        email_hmac = hmac_sql("email", keyring, "'user' || i || '@example.com'")
        phone_hmac = hmac_sql("phone", keyring, "'138' || lpad(i::varchar, 8, '0')")
        con.execute(
            f"create table crm_customers as select 'CRM' || lpad(i::varchar, 7, '0') as customer_ref, "
            f"{email_hmac} as email_hash, {phone_hmac} as phone_hash, 'LC' || lpad(i::varchar, 8, '0') as loyalty_card, "
            f"'Shanghai' as city, '200000' as postcode from range({customers}) r(i)"
        )
        refs = con.execute("select customer_ref from crm_customers").fetchall()
        aads = [f"crm_customers|{r[0]}|national_id" for r in refs]
        con.register(
            "tokens",
            pa.table({"national_id": encrypt_column(["11010519491231002X"] * len(aads), aads, keyring)}),
        )
        con.execute("create table crm_tokens as select * from tokens")
        con.execute(
            f"create table ecommerce_orders as select 'O' || lpad(i::varchar, 9, '0') as order_id, "
            f"'A' || (i % {customers}) as account_id, {email_hmac} as email_hash, "
            f"timestamp '2024-01-01' + to_seconds(i * 37) as ordered_at, (i % 997) / 3.0 as amount "
            f"from range({customers * 15}) r(i)"
        )
        con.execute(
            f"create table web_events as select uuid()::varchar as event_id, "
            f"timestamp '2024-01-01' + to_seconds(i) as occurred_at, md5(i::varchar) as session_id, "
            f"uuid()::varchar as device_id, 'A' || (i % {customers}) as user_id, "
            f"['page_view','search','product_view','add_to_cart','checkout','purchase'][1 + i % 6] as event_type, "
            f"'P' || lpad((i % 5000)::varchar, 6, '0') as product_id, "
            f"case when i % 6 = 1 then 'red shoes size ' || (i % 45) end as search_query, "
            f"case when i % 2 = 0 then 'web' else 'app' end as channel, "
            f"case when i % 6 = 5 then 'O' || lpad((i // 6)::varchar, 9, '0') end as order_id "
            f"from range({events}) r(i)"
        )
        con.execute(
            "create table service_tickets as select 'T' || i as ticket_id, "
            "'My order O' || lpad(i::varchar, 9, '0') || ' arrived late, please call me back' as text "
            f"from range({customers * 2}) r(i)"
        )


@click.command()
@click.option("--values", default=1_000_000, show_default=True)
@click.option("--events", default=3_000_000, show_default=True)
def main(values: int, events: int) -> None:
    keyring = Keyring.generate()
    with duckdb.connect() as con:
        con.execute(f"create table e as select 'user' || i || '@example.com' as v from range({values}) r(i)")
        register_udfs(con, keyring)
        _timed(
            f"HMAC pure SQL, {values:,} values",
            lambda: con.execute(
                f"create or replace table h as select {hmac_sql('email', keyring, 'v')} from e"
            ),
        )
        _timed(
            f"HMAC Arrow Python UDF, {values:,} values",
            lambda: con.execute("create or replace table h as select c360_pseudonym('email', v) from e"),
        )
        plain = [r[0] for r in con.execute("select v from e").fetchall()]
    _timed(f"encrypt_column, {values:,} values", lambda: encrypt_column(plain, "t|x|c", keyring))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        build_synthetic_warehouse(settings.warehouse, keyring, events=events)
        with duckdb.connect(str(settings.warehouse), read_only=True) as con:
            total = sum(
                con.execute(f'select count(*) from "{t}"').fetchone()[0]
                for (t,) in con.execute("show tables").fetchall()
            )
        findings: list = []
        _timed(f"scan warehouse, {total:,} rows", lambda: findings.extend(scan(settings)))
        click.echo(f"findings: {findings}")


if __name__ == "__main__":
    main()
