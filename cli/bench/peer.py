"""The peer: ingest -> customer_360 -> RFM in pandas, the way a data scientist writes it in a
notebook (``pd.read_csv``, ``groupby``, ``merge``), to compare the platform's speed against.

Deliberately plain: no Dagster, dbt or DuckDB. Cleaning is what a careful notebook does (drop
duplicate keys, missing required fields, negative amounts, cancelled orders); identity is exact
links on normalised email, phone, loyalty card and account id, resolved to connected
components by label propagation with pandas merges (no fuzzy name matching, unlike the
platform); the customer row carries orders, revenue, first/last purchase, channel mix, top
category, web sessions (30-minute gap), tickets and the RFM-8 segment.

Run as ``python -m cli.bench.peer`` (the bench runs it in a child process to measure its
memory); writes its timings and a summary of its customer table as JSON. Out of memory is
reported as such, not hidden.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd

from c360.settings import DBT_PROJECT_DIR

SESSION_GAP = pd.Timedelta(minutes=30)


def read_source(landing: Path, source: str, **kwargs) -> pd.DataFrame:
    files = sorted((landing / source).glob("*.csv"))
    if not files:
        return pd.DataFrame()
    return pd.concat((pd.read_csv(f, on_bad_lines="skip", **kwargs) for f in files), ignore_index=True)


def normalise_email(s: pd.Series) -> pd.Series:
    s = s.astype("string").str.strip().str.lower()
    return s.where(s.str.match(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", na=False))


def normalise_phone(s: pd.Series) -> pd.Series:
    digits = s.astype("string").str.replace(r"\D", "", regex=True)
    digits = digits.str.replace(r"^(0086|86)(?=1\d{10}$)", "", regex=True)
    return digits.where(digits.str.match(r"^1\d{10}$", na=False))


def normalise_card(s: pd.Series) -> pd.Series:
    s = s.astype("string").str.strip().str.upper()
    return s.where(s.str.len() > 0)


def _timestamps(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_datetime(df[col], errors="coerce")


def load(landing: Path) -> dict[str, pd.DataFrame]:
    crm = read_source(landing, "crm_customers", dtype=str)
    crm = crm.dropna(subset=["customer_ref"]).drop_duplicates("customer_ref")

    orders = read_source(landing, "ecommerce_orders", dtype={"amount": "float64"}, keep_default_na=True)
    orders["ordered_at"] = _timestamps(orders, "ordered_at")
    orders["amount"] = pd.to_numeric(orders["amount"], errors="coerce")
    orders = orders.dropna(subset=["order_id", "account_id", "ordered_at", "amount"])
    orders = orders[orders["amount"] >= 0].drop_duplicates("order_id")

    items = read_source(landing, "ecommerce_order_items", dtype={"order_id": str, "product_id": str})
    items = items.dropna(subset=["order_id", "product_id"]).drop_duplicates("order_item_id")

    products = read_source(landing, "products", dtype=str)[["product_id", "category"]].drop_duplicates(
        "product_id"
    )

    pos = read_source(
        landing, "pos_transactions", dtype={"loyalty_card": str, "phone": str, "product_id": str}
    )
    pos["occurred_at"] = _timestamps(pos, "occurred_at")
    pos["quantity"] = pd.to_numeric(pos["quantity"], errors="coerce")
    pos["unit_price"] = pd.to_numeric(pos["unit_price"], errors="coerce")
    pos = pos.dropna(subset=["pos_line_id", "transaction_id", "occurred_at", "quantity", "unit_price"])
    pos = pos[(pos["quantity"] > 0) & (pos["unit_price"] >= 0)].drop_duplicates("pos_line_id")

    events = read_source(
        landing,
        "web_events",
        usecols=["event_id", "occurred_at", "device_id", "user_id", "event_type"],
        dtype=str,
    )
    events["occurred_at"] = _timestamps(events, "occurred_at")
    events = events.dropna(subset=["event_id", "occurred_at", "device_id"]).drop_duplicates("event_id")

    tickets = (
        read_source(landing, "service_tickets", dtype=str)
        .dropna(subset=["ticket_id"])
        .drop_duplicates("ticket_id")
    )
    return {
        "crm": crm,
        "orders": orders,
        "items": items,
        "products": products,
        "pos": pos,
        "events": events,
        "tickets": tickets,
    }


def link_records(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """(record, key) pairs: every identity-bearing record and the normalised keys it carries."""
    crm, orders, pos, events, tickets = (data[k] for k in ("crm", "orders", "pos", "events", "tickets"))
    parts = [
        pd.DataFrame({"record": "crm:" + crm["customer_ref"], "key": "crm:" + crm["customer_ref"]}),
        pd.DataFrame(
            {"record": "crm:" + crm["customer_ref"], "key": "email:" + normalise_email(crm["email"])}
        ),
        pd.DataFrame(
            {"record": "crm:" + crm["customer_ref"], "key": "phone:" + normalise_phone(crm["phone"])}
        ),
        pd.DataFrame(
            {"record": "crm:" + crm["customer_ref"], "key": "loyalty:" + normalise_card(crm["loyalty_card"])}
        ),
        pd.DataFrame({"record": "order:" + orders["order_id"], "key": "account:" + orders["account_id"]}),
        pd.DataFrame(
            {"record": "order:" + orders["order_id"], "key": "email:" + normalise_email(orders["email"])}
        ),
        pd.DataFrame(
            {"record": "order:" + orders["order_id"], "key": "phone:" + normalise_phone(orders["phone"])}
        ),
        pd.DataFrame(
            {
                "record": "pos:" + pos["transaction_id"],
                "key": "loyalty:" + normalise_card(pos["loyalty_card"]),
            }
        ),
        pd.DataFrame(
            {"record": "pos:" + pos["transaction_id"], "key": "phone:" + normalise_phone(pos["phone"])}
        ),
        pd.DataFrame({"record": "device:" + events["device_id"], "key": "account:" + events["user_id"]}),
        pd.DataFrame(
            {"record": "ticket:" + tickets["ticket_id"], "key": "email:" + normalise_email(tickets["email"])}
        ),
        pd.DataFrame(
            {"record": "ticket:" + tickets["ticket_id"], "key": "phone:" + normalise_phone(tickets["phone"])}
        ),
    ]
    return pd.concat(parts, ignore_index=True).dropna().drop_duplicates()


def resolve_identities(links: pd.DataFrame) -> pd.Series:
    """Record -> customer id: connected components of the record-key graph, by propagating the
    smallest record id through shared keys until nothing changes."""
    label = links.groupby("record")["record"].first()
    while True:
        by_key = links.assign(label=links["record"].map(label)).groupby("key")["label"].min()
        new = links.assign(label=links["key"].map(by_key)).groupby("record")["label"].min()
        if (new == label).all():
            return label
        label = new


def web_sessions(events: pd.DataFrame) -> pd.DataFrame:
    """Sessions per device: a gap of 30 minutes starts a new one."""
    ev = events.sort_values(["device_id", "occurred_at"])
    new_session = ev["device_id"].ne(ev["device_id"].shift()) | ev["occurred_at"].diff().gt(SESSION_GAP)
    return new_session.groupby(ev["device_id"]).sum().rename("web_sessions").reset_index()


def rfm(purchases: pd.DataFrame, rules: pd.DataFrame) -> pd.DataFrame:
    as_of = purchases["purchased_at"].max().normalize() + pd.Timedelta(days=1)
    before = purchases[purchases["purchased_at"] < as_of]
    per = before.groupby("customer_id").agg(
        last=("purchased_at", "max"), frequency=("purchase_id", "count"), monetary=("amount", "sum")
    )
    per["recency_days"] = (as_of - per["last"].dt.normalize()).dt.days

    def quintile(values: pd.Series, ascending: bool) -> pd.Series:
        ranks = values.rank(method="min", ascending=ascending)
        pct = (ranks - 1) / max(len(values) - 1, 1)
        return np.minimum(5, 1 + np.floor(5 * pct)).astype(int)

    per["r_score"] = quintile(per["recency_days"], ascending=False)
    per["f_score"] = quintile(per["frequency"], ascending=True)
    per["m_score"] = quintile(per["monetary"], ascending=True)
    for dim in "rfm":
        per[f"{dim}_high"] = per[f"{dim}_score"] >= 4
    out = per.reset_index().merge(rules, on=["r_high", "f_high", "m_high"], how="left")
    return out[
        [
            "customer_id",
            "recency_days",
            "frequency",
            "monetary",
            "r_score",
            "f_score",
            "m_score",
            "rfm_segment",
        ]
    ]


def customer_360(data: dict[str, pd.DataFrame], identity: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    orders, items, products, pos, events, tickets = (
        data[k] for k in ("orders", "items", "products", "pos", "events", "tickets")
    )
    ident = identity.rename("customer_id")
    online = orders[orders["status"].str.strip().str.lower() != "cancelled"]
    online = pd.DataFrame(
        {
            "purchase_id": "order:" + online["order_id"],
            "customer_id": ("order:" + online["order_id"]).map(ident).values,
            "channel": online["channel"].str.strip().str.lower().values,
            "purchased_at": online["ordered_at"].values,
            "amount": online["amount"].values,
        }
    )
    pos = pos.assign(line_amount=pos["quantity"] * pos["unit_price"])
    receipts = pos.groupby("transaction_id").agg(
        purchased_at=("occurred_at", "min"), amount=("line_amount", "sum")
    )
    receipts["customer_id"] = ("pos:" + receipts.index.to_series()).map(ident).values
    in_store = pd.DataFrame(
        {
            "purchase_id": "pos:" + receipts.index,
            "customer_id": receipts["customer_id"].values,
            "channel": "store",
            "purchased_at": receipts["purchased_at"].values,
            "amount": receipts["amount"].values,
        }
    )
    purchases = pd.concat([online, in_store], ignore_index=True).dropna(subset=["customer_id"])

    value = purchases.groupby("customer_id").agg(
        orders_total=("purchase_id", "count"),
        orders_online=("channel", lambda c: c.isin(["web", "app"]).sum()),
        orders_in_store=("channel", lambda c: (c == "store").sum()),
        revenue=("amount", "sum"),
        first_purchase_at=("purchased_at", "min"),
        last_purchase_at=("purchased_at", "max"),
    )
    lines = items.merge(products, on="product_id", how="left").merge(
        orders[["order_id"]].assign(customer_id=("order:" + orders["order_id"]).map(ident)), on="order_id"
    )
    top_category = (
        lines.groupby(["customer_id", "category"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["customer_id", "n", "category"], ascending=[True, False, True])
        .drop_duplicates("customer_id")
        .set_index("customer_id")["category"]
        .rename("top_category")
    )
    sessions = web_sessions(events)
    sessions["customer_id"] = ("device:" + sessions["device_id"]).map(ident)
    sessions = sessions.dropna(subset=["customer_id"]).groupby("customer_id")["web_sessions"].sum()
    ticket_counts = ("ticket:" + tickets["ticket_id"]).map(ident).value_counts().rename("tickets")

    rules = pd.read_csv(DBT_PROJECT_DIR / "seeds" / "rfm_segment_rules.csv")
    scores = rfm(purchases, rules)
    # A customer is a person with at least one linked key (anonymous devices and receipts are not).
    customers = pd.Index(identity.unique(), name="customer_id")
    c360 = (
        pd.DataFrame(index=customers)
        .join(value)
        .join(top_category)
        .join(sessions)
        .join(ticket_counts)
        .reset_index()
        .merge(
            scores[["customer_id", "r_score", "f_score", "m_score", "rfm_segment"]],
            on="customer_id",
            how="left",
        )
    )
    c360[["orders_total", "revenue", "web_sessions", "tickets"]] = c360[
        ["orders_total", "revenue", "web_sessions", "tickets"]
    ].fillna(0)
    return c360, scores


def run_peer(landing: Path) -> dict:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    data = load(landing)
    timings["ingest_s"] = round(time.perf_counter() - started, 2)
    t0 = time.perf_counter()
    identity = resolve_identities(link_records(data))
    timings["identity_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    c360, scores = customer_360(data, identity)
    timings["customer_360_rfm_s"] = round(time.perf_counter() - t0, 2)
    timings["total_s"] = round(time.perf_counter() - started, 2)
    return {
        **timings,
        "rows": {name: len(df) for name, df in data.items()},
        "marts": {
            "customers": len(c360),
            "revenue": round(float(c360["revenue"].sum()), 2),
            "rfm_segments": {k: int(v) for k, v in scores["rfm_segment"].value_counts().sort_index().items()},
        },
    }


@click.command()
@click.option("--landing", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option(
    "--memory-cap-gib", type=float, default=None, help="Address-space cap, so running out is a MemoryError."
)
def main(landing: Path, out: Path, memory_cap_gib: float | None) -> None:
    if memory_cap_gib:
        import resource

        # A shared machine: fail this process cleanly rather than wake the kernel's OOM killer.
        cap = int(memory_cap_gib * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        result = run_peer(landing)
    except MemoryError:
        result = {"error": f"out of memory: pandas could not hold this scale within {memory_cap_gib} GiB"}
    except Exception as exc:
        # Under an address-space cap, allocation failures also surface as Arrow or thread errors.
        if memory_cap_gib and any(w in str(exc).lower() for w in ("memory", "alloc", "thread")):
            result = {"error": f"out of memory within {memory_cap_gib} GiB: {type(exc).__name__}: {exc}"}
        else:
            raise
    out.write_text(json.dumps(result, indent=2))
    click.echo(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}))


if __name__ == "__main__":  # pragma: no cover
    main()
