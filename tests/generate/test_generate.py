"""The generator honours the landing contract, plants exactly the defects it reports, and is reproducible."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from c360.checkdigits import luhn_valid
from c360.checkdigits import prc_id_valid as national_id_valid
from c360.contracts import RULES, SOURCES
from c360.generate import generate
from c360.generate.core import auc
from cli.generate import generate_command

IDENTITY_SOURCES = {
    "crm_customers": "customer_ref",
    "ecommerce_orders": "order_id",
    "pos_transactions": "transaction_id",
    "service_tickets": "ticket_id",
    "product_reviews": "review_id",
    "marketing_consent": "consent_event_id",
}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("landing")
    return out, generate(out, customers=2000, seed=7, progress=False)


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != "manifest.json":
            h.update(str(f.relative_to(folder)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def read_source(landing_dir: Path, source: str) -> pd.DataFrame:
    """Rows of a source as strings (empty field -> NaN), without the lines reported as malformed."""
    defects = pd.read_csv(landing_dir / "_truth" / "defects.csv", dtype=str)
    malformed = defects[defects.defect_type == "malformed_line"]
    names = SOURCES[source].column_names
    rows = []
    for f in sorted((landing_dir / source).glob("*.csv")):
        rel = f"{source}/{f.name}"
        skip = {int(x.split(":")[1]) for x in malformed[malformed.file == rel].record_id}
        with open(f, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader)
            rows += [row for row in reader if reader.line_num not in skip]
    assert all(len(r) == len(names) for r in rows), source
    return pd.DataFrame(rows, columns=names).replace("", np.nan)


def duckdb_rejects(path: Path, source: str) -> set[int]:
    spec = SOURCES[source]
    columns = "{" + ", ".join(f"'{c.name}': '{c.type}'" for c in spec.columns) + "}"
    con = duckdb.connect()
    # Select every column: with count(*) DuckDB skips the casts and misses bad values.
    con.sql(f"""create table t as select * from read_csv('{path}', header=true, columns={columns}, store_rejects=true,
                strict_mode=true, auto_detect=false, delim=',', quote='"', escape='"')""")
    return {int(r[0]) for r in con.sql("select line from reject_errors").fetchall()}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    generate(tmp_path / "a", customers=300, seed=3, progress=False)
    generate(tmp_path / "b", customers=300, seed=3, progress=False)
    generate(tmp_path / "c", customers=300, seed=4, progress=False)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_every_file_has_the_contract_header_and_monthly_names(landing):
    out, summary = landing
    for source, spec in SOURCES.items():
        files = sorted((out / source).glob("*.csv"))
        assert files, source
        for f in files:
            with open(f, newline="", encoding="utf-8") as fh:
                assert next(csv.reader(fh)) == spec.column_names, f
        if source not in ("crm_customers", "products"):
            assert len(files) == 24 and files[0].name == f"{source}_2024-10.csv"
    assert summary["rows"]["web_events"] > 50 * 2000


def test_duckdb_rejects_exactly_the_malformed_lines_reported(landing):
    out, _ = landing
    defects = pd.read_csv(out / "_truth" / "defects.csv", dtype=str)
    malformed = defects[defects.defect_type == "malformed_line"]
    assert set(malformed.source) == {"web_events", "pos_transactions", "service_tickets", "product_reviews"}
    for source in SOURCES:
        for f in sorted((out / source).glob("*.csv")):
            rel = f"{source}/{f.name}"
            expected = {int(x.split(":")[1]) for x in malformed[malformed.file == rel].record_id}
            assert duckdb_rejects(f, source) == expected, rel


def test_defects_use_rule_names_and_each_row_has_one(landing):
    out, summary = landing
    defects = pd.read_csv(out / "_truth" / "defects.csv", dtype=str)
    assert set(defects.defect_type) == set(RULES)
    assert not defects.duplicated(["file", "record_id"]).any()
    for rule in RULES:
        assert summary["defects"][rule] >= 3, rule


def test_keys_are_unique_among_legit_rows_and_required_fields_are_filled(landing):
    out, _ = landing
    defects = pd.read_csv(out / "_truth" / "defects.csv", dtype=str)
    for source, spec in SOURCES.items():
        df = read_source(out, source)
        bad = set(defects[(defects.source == source)].record_id)
        legit = df[~df[spec.key].isin(bad)]
        assert legit[spec.key].is_unique, source
        required = [c.name for c in spec.columns if c.required]
        assert legit[required].notna().all().all(), source


def test_legit_values_never_trip_a_rule(landing):
    out, _ = landing
    defects = pd.read_csv(out / "_truth" / "defects.csv", dtype=str)
    bad = set(defects.record_id)
    email_ok = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    for source in ("crm_customers", "ecommerce_orders", "service_tickets"):
        df = read_source(out, source)
        df = df[~df[SOURCES[source].key].isin(bad)]
        emails = df.email.dropna().str.strip().str.lower()
        assert emails.str.match(email_ok).all(), source
        digits = (
            df.phone.dropna()
            .str.replace(r"\D", "", regex=True)
            .str.replace(r"^(0086|86)(?=\d{11}$)", "", regex=True)
        )
        assert digits.str.match(r"^1[3-9]\d{9}$").all(), source
    orders = read_source(out, "ecommerce_orders")
    orders = orders[~orders.order_id.isin(bad)]
    assert (orders.amount.astype(float) >= 0).all()
    assert (pd.to_datetime(orders.ordered_at) <= pd.Timestamp("2026-09-30 23:59:59")).all()
    orders["t"] = pd.to_datetime(orders.ordered_at)
    orders = orders.sort_values(["account_id", "t"])
    gap = orders.groupby("account_id").t.diff().dt.total_seconds()
    assert not (gap < 60).any()
    items = read_source(out, "ecommerce_order_items")
    items = items[~items.order_item_id.isin(bad)]
    assert (items.quantity.astype(int) > 0).all()
    products = set(read_source(out, "products").product_id)
    assert items.product_id.isin(products).all()


def test_truth_covers_every_identity_record(landing):
    out, _ = landing
    truth = pd.read_csv(out / "_truth" / "identity.csv", dtype=str, keep_default_na=False)
    for source, key in IDENTITY_SOURCES.items():
        ids = set(read_source(out, source)[key].dropna())
        mapped = set(truth[truth.source == source].source_record_id)
        assert ids <= mapped, source
    devices = set(read_source(out, "web_events").device_id.dropna())
    web = truth[truth.source == "web_events"]
    assert devices <= set(web.source_record_id)
    anonymous = (web.person_id == "").mean()
    assert 0.1 < anonymous < 0.2
    walk_in = truth[(truth.source == "pos_transactions")].person_id.eq("").mean()
    assert 0.05 < walk_in < 0.15
    persons = pd.read_csv(out / "_truth" / "persons.csv", dtype=str)
    crm = truth[truth.source == "crm_customers"]
    assert set(persons.person_id) == set(crm.person_id)


def test_every_person_device_logs_in_and_anonymous_devices_never_do(landing):
    out, _ = landing
    truth = pd.read_csv(out / "_truth" / "identity.csv", dtype=str, keep_default_na=False)
    web = truth[truth.source == "web_events"].set_index("source_record_id").person_id
    events = read_source(out, "web_events")
    logged = events.dropna(subset=["user_id"]).device_id.unique()
    owned = set(web[web != ""].index)
    assert owned <= set(logged)
    assert not (set(web[web == ""].index) & set(logged))


def test_national_ids_and_bank_cards_pass_their_check_digits(landing):
    out, _ = landing
    crm = read_source(out, "crm_customers")
    ids = crm.national_id.dropna()
    cards = crm.bank_card.dropna()
    assert len(ids) > 500 and len(cards) > 500
    assert all(national_id_valid(x) for x in ids)
    assert all(luhn_valid(x) and 16 <= len(x) <= 19 for x in cards)
    births = crm.dropna(subset=["national_id", "birth_date"])
    assert (births.national_id.str[6:14] == births.birth_date.str.replace("-", "")).all()


def test_crm_has_duplicates_and_namesakes(landing):
    out, _ = landing
    truth = pd.read_csv(out / "_truth" / "identity.csv", dtype=str, keep_default_na=False)
    crm = truth[truth.source == "crm_customers"]
    per_person = crm.person_id.value_counts()
    assert 0.03 < (per_person > 1).mean() < 0.09
    persons = pd.read_csv(out / "_truth" / "persons.csv", dtype=str)
    assert persons.namesake_of.notna().sum() >= 4


def test_bayes_auc_and_churn_rate_land_in_range(landing):
    out, _ = landing
    persons = pd.read_csv(out / "_truth" / "persons.csv")
    buyers = persons[persons.purchases_in_history > 0]
    score = auc(buyers.churn_prob.to_numpy(), buyers.churned_next_90d.to_numpy())
    assert 0.80 <= score <= 0.92
    assert 0.25 <= buyers.churned_next_90d.mean() <= 0.45
    dead = persons[~persons.alive_at_end]
    assert (dead.churn_prob == 1).all() and dead.churned_next_90d.all()
    future = pd.read_csv(out / "_truth" / "future_purchases.csv")
    assert not future.person_id.isin(persons[persons.churned_next_90d].person_id).any()


def test_consent_files_are_not_in_time_order(landing):
    out, _ = landing
    consent = read_source(out, "marketing_consent")
    t = pd.to_datetime(consent.occurred_at)
    assert not t.is_monotonic_increasing
    flips = consent.groupby(["customer_ref", "channel"]).granted.nunique()
    assert (flips > 1).sum() > 50


def test_parquet_output_has_contract_columns(tmp_path):
    generate(tmp_path, customers=300, seed=5, fmt="parquet", progress=False)
    for source, spec in SOURCES.items():
        files = sorted((tmp_path / source).glob("*.parquet"))
        assert files and pq.read_schema(files[0]).names == spec.column_names
    defects = pd.read_csv(tmp_path / "_truth" / "defects.csv")
    assert "malformed_line" not in set(defects.defect_type)


def test_cli_writes_a_landing_zone(tmp_path):
    result = CliRunner().invoke(
        generate_command, ["--customers", "300", "--out", str(tmp_path), "--quiet", "--months", "6"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "web_events").glob("*.csv"))) == 6
    assert np.isfinite(float(result.output.split("bayes AUC ")[1].split(",")[0]))
