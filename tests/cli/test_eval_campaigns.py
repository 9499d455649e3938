"""``c360 eval campaigns`` on a copy of the demo platform: a planted effect in one segment and none
in another, measured through the pipeline (landing -> ingestion -> identity -> purchases ->
marts.campaign_results). One pipeline run of the affected assets, no retraining."""

from __future__ import annotations

import json
import shutil

import duckdb
from click.testing import CliRunner


def test_measured_intervals_cover_the_planted_lift_and_zero_where_nothing_was_planted(
    demo_home, tmp_path, monkeypatch
):
    from cli.main import main

    home = tmp_path / "home"
    shutil.copytree(demo_home, home, ignore=shutil.ignore_patterns("dagster", "reports"))
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for var in ("C360_WAREHOUSE", "MLFLOW_TRACKING_URI", "C360_LANDING"):
        monkeypatch.delenv(var, raising=False)

    result = CliRunner().invoke(main, ["eval", "campaigns", "--uplift", "0.3", "--seed", "1"])
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads((home / "reports" / "eval_campaigns.json").read_text())
    assert report["tracking_uri"]
    planted, null = report["segments"]
    assert planted["planted_lift"] == 0.3 and null["planted_lift"] == 0.0
    assert planted["covers_planted"], planted
    assert planted["lift_low"] > 0, planted  # a 30-point lift is detectable at this size
    assert null["covers_planted"] and null["covers_zero"], null
    assert report["holdout"] > 0 and report["treatment"] > 0

    # A second planting is refused rather than mixed with the first.
    again = CliRunner().invoke(main, ["eval", "campaigns", "--seed", "2"])
    assert again.exit_code != 0 and "already evaluated" in again.output

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        overall = con.execute(
            "select treatment_people, holdout_people, lift_low, lift, lift_high from marts.campaign_results "
            "where campaign = 'eval_planted_1' and breakdown = 'all'"
        ).fetchone()
        # The audience exports of the demo run kept their holdouts out of the files.
        leaked = con.execute(
            "select count(*) from activation.retention_high_risk where customer_id in (select customer_id "
            "from activation.campaign_assignments where campaign = 'retention_high_risk' and campaign_group = 'holdout')"
        ).fetchone()[0]
    finally:
        con.close()
    assert overall[0] == report["treatment"] and overall[1] == report["holdout"]
    assert overall[2] < overall[3] < overall[4]
    assert leaked == 0
