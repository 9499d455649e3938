"""The insights app's queries without a browser, on the demo platform and on small hand-made
warehouses: consent is enforced whatever the filters, exports hold masked contacts only and are
logged without personal data, sensitive columns never come back, and missing tables or a
warehouse locked by a writer give a message rather than a crash."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))
logging.getLogger("streamlit").setLevel(logging.ERROR)

import audiences
import queries


@pytest.fixture
def tiny_warehouse(tmp_path) -> str:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(
        """create table marts.customer_360 as select * from (values
        ('C1', 'a***@x.com', '***1111', 'important value', 'gold', true, false, true, false, 'tok1', 'h1', 'low'),
        ('C2', 'b***@x.com', '***2222', 'important value', 'gold', false, true, false, false, 'tok2', 'h2', 'low'),
        ('C3', null, '***3333', 'general win-back', 'bronze', true, true, true, true, 'tok3', 'h3', 'high'),
        ('C4', 'd***@x.com', null, 'general win-back', 'gold', true, null, null, null, 'tok4', 'h4', 'high'))
        t(customer_id, email_masked, phone_masked, rfm_segment, clv_tier, consent_email, consent_sms,
          consent_push, consent_phone, email_enc, email_hash, churn_risk_band)"""
    )
    con.close()
    return str(path)


def test_audience_includes_only_customers_consented_to_the_channel(tiny_warehouse):
    email = audiences.AudienceFilter("email")
    # C3 consented to email but has no email address; C2 did not consent.
    assert audiences.audience_rows(tiny_warehouse, email)["customer_id"].tolist() == ["C1", "C4"]
    sms_gold = audiences.AudienceFilter("sms", clv_tiers=("gold",))
    assert audiences.audience_rows(tiny_warehouse, sms_gold)["customer_id"].tolist() == ["C2"]
    assert audiences.audience_size(tiny_warehouse, audiences.AudienceFilter("phone")) == 1


def test_audience_filters_on_the_lifecycle_stage_tag_and_still_needs_consent(tiny_warehouse):
    con = duckdb.connect(tiny_warehouse)
    con.execute(
        "create table marts.customer_tags as select * from (values ('C1', 'lifecycle_stage', 'lapsed'), "
        "('C2', 'lifecycle_stage', 'lapsed'), ('C4', 'lifecycle_stage', 'active')) t(customer_id, tag, value)"
    )
    con.close()
    lapsed = audiences.AudienceFilter("email", lifecycle_stages=("lapsed",))
    assert audiences.audience_rows(tiny_warehouse, lapsed)["customer_id"].tolist() == ["C1"]  # C2: no consent


def test_audience_rejects_an_unknown_channel():
    with pytest.raises(ValueError, match="channel must be one of"):
        audiences.AudienceFilter("email or 1=1")


def test_export_holds_id_and_masked_contact_and_logs_no_personal_data(tiny_warehouse, tmp_path):
    reports = tmp_path / "reports"
    spec = audiences.AudienceFilter("email", rfm_segments=("important value", "general win-back"))
    csv = audiences.export(tiny_warehouse, reports, spec, user="analyst")

    assert csv.decode().splitlines() == [
        "customer_id,channel,contact_masked",
        "C1,email,a***@x.com",
        "C4,email,d***@x.com",
    ]
    (line,) = (reports / audiences.EXPORT_LOG).read_text().splitlines()
    entry = json.loads(line)
    assert entry["user"] == "analyst" and entry["rows"] == 2 and entry["filters"]["channel"] == "email"
    assert "C1" not in line and "a***" not in line


def test_export_holds_out_a_stable_stratified_share_of_the_campaign(tmp_path):
    path = str(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(path)
    con.execute("create schema marts")
    con.execute(
        "create table marts.customer_360 as select 'C' || lpad(i::varchar, 3, '0') as customer_id, "
        "'x***@y.com' as email_masked, null::varchar as phone_masked, "
        "case when i % 2 = 0 then 'important value' else 'general win-back' end as rfm_segment, "
        "'gold' as clv_tier, true as consent_email, false as consent_sms, false as consent_push, "
        "false as consent_phone, 'high' as churn_risk_band from range(40) t(i)"
    )
    con.close()
    reports = tmp_path / "reports"
    spec = audiences.AudienceFilter("email")

    def exported(campaign: str) -> list[str]:
        csv = audiences.export(path, reports, spec, "analyst", campaign, holdout_share=0.25)
        return [line.split(",")[0] for line in csv.decode().splitlines()[1:]]

    first = exported("spring")
    con = duckdb.connect(path, read_only=True)
    groups = con.execute(
        "select rfm_segment, campaign_group, count(*) from activation.campaign_assignments "
        "where campaign = 'spring' group by all order by all"
    ).fetchall()
    held = {
        c
        for (c,) in con.execute(
            "select customer_id from activation.campaign_assignments where campaign_group = 'holdout'"
        ).fetchall()
    }
    con.close()
    # 20 people in each stratum: 5 held out of each, and none of them in the file.
    assert groups == [
        ("general win-back", "holdout", 5),
        ("general win-back", "treatment", 15),
        ("important value", "holdout", 5),
        ("important value", "treatment", 15),
    ]
    assert len(first) == 30 and not set(first) & held
    assert exported("spring") == first  # a re-export keeps everyone's group
    assert exported("summer") != first  # another campaign draws its own holdout
    entry = json.loads((reports / audiences.EXPORT_LOG).read_text().splitlines()[0])
    assert (entry["campaign"], entry["treatment"], entry["holdout"], entry["rows"]) == ("spring", 30, 10, 30)


def test_results_never_carry_encrypted_or_hashed_columns(tiny_warehouse):
    frame = queries.run(tiny_warehouse, "select * from marts.customer_360")
    assert "customer_id" in frame.columns
    assert not [c for c in frame.columns if c.endswith(("_enc", "_hash"))]


def test_a_missing_table_is_reported_not_raised_as_a_crash(tiny_warehouse):
    with pytest.raises(queries.TableMissing):
        queries.run(tiny_warehouse, "select * from ml.churn_scores")


def test_a_warehouse_locked_by_a_writer_gives_a_friendly_message(tiny_warehouse):
    import subprocess

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({tiny_warehouse!r}); print('ok', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(queries.WarehouseUnavailable, match="writing to the warehouse"):
            queries.run(tiny_warehouse, "select 1")
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_writer_that_lets_go_within_the_wait_is_waited_for(tiny_warehouse):
    # An audience export holds the lock for well under a second: the query waits, then answers.
    import subprocess
    import time

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                f"import duckdb, time; c = duckdb.connect({tiny_warehouse!r}); print('ok', flush=True); "
                "time.sleep(0.6); c.close(); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        started = time.monotonic()
        frame = queries.run(tiny_warehouse, "select count(*) as n from marts.customer_360")
        waited = time.monotonic() - started
        assert frame["n"].tolist() == [4]
        # It asked while the writer held the lock (0.6 s from "ok"), and answered once it let go.
        assert 0.3 < waited < queries.LOCK_WAIT_S + 1
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_demo_pages_queries_answer_on_the_demo_platform(demo_home):
    stamp = queries.stamp()
    assert stamp[0] == str(demo_home / "warehouse.duckdb")
    k = queries.kpis(stamp).iloc[0]
    assert k.customers > 0 and 0 < k.active_customers <= k.customers
    trend = queries.monthly_trend(stamp)
    assert set(trend["channel"]) >= {"web", "store"}
    moves = queries.rfm_movement(stamp, 90)
    # Everyone segmented now appears once in the movement matrix.
    assert moves["customers"].sum() == len(
        queries.run(stamp[0], "select customer_id from marts.customer_rfm")
    )
    # Every audience the demo run exported is a campaign with its overall row.
    results = queries.campaign_results(stamp)
    overall = results[results["breakdown"] == "all"]
    assert {"retention_high_risk", "recommendations_email"} <= set(overall["campaign"])
    assert (overall["treatment_people"] > 0).all()
    checks = queries.quality_checks(str(demo_home / "dagster"))
    assert (checks["kind"] == "quality gate").any()
    customer = queries.sample_customers(stamp, 1)[0]
    profile = queries.profile(stamp, customer)
    assert profile["customer_id"].tolist() == [customer]
    assert not [c for c in profile.columns if c.endswith(("_enc", "_hash"))]
