"""Campaign holdouts (c360/campaigns.py) on a small in-memory warehouse: balanced by stratum,
deterministic, stable across re-exports, and only the treatment group left in the audience."""

from datetime import datetime

import duckdb
import pytest

from c360 import campaigns

T0 = datetime(2026, 1, 1)
T1 = datetime(2026, 1, 8)


def _warehouse(people: int = 2000) -> duckdb.DuckDBPyConnection:
    """customer_360 with four strata of unequal size, and an audience of everyone."""
    con = duckdb.connect()
    con.execute("create schema marts; create schema activation")
    con.execute(
        f"""
        create table marts.customer_360 as
        select 'C' || lpad(i::varchar, 5, '0') as customer_id,
               case when i % 10 < 6 then 'low' else 'high' end as churn_risk_band,
               case when i % 3 = 0 then 'important value' else 'general retention' end as rfm_segment
        from range({people}) t(i)
        """
    )
    con.execute("create table activation.audience as select customer_id from marts.customer_360")
    return con


def _groups(con, campaign: str) -> dict[str, str]:
    return dict(
        con.execute(
            f"select customer_id, campaign_group from {campaigns.ASSIGNMENTS_TABLE} where campaign = ?",
            [campaign],
        ).fetchall()
    )


def test_holdout_is_the_share_of_every_stratum_so_both_groups_have_the_same_mix():
    con = _warehouse()
    stats = campaigns.assign(con, "spring", "select customer_id from activation.audience", T0, 0.1)
    assert stats == {"campaign": "spring", "new_people": 2000, "treatment": 1800, "holdout": 200}
    strata = con.execute(
        f"""select stratum, count(*), count(*) filter (where campaign_group = 'holdout')
        from {campaigns.ASSIGNMENTS_TABLE} group by 1"""
    ).fetchall()
    assert len(strata) == 4
    for stratum, people, held in strata:
        assert held == round(0.1 * people), stratum
    # The strata recorded are those of the profile at export time.
    row = con.execute(
        f"select churn_risk_band, rfm_segment, stratum from {campaigns.ASSIGNMENTS_TABLE} "
        "where customer_id = 'C00009'"
    ).fetchone()
    assert row == ("high", "important value", "high / important value")


def test_assignment_is_a_deterministic_hash_of_campaign_and_customer():
    first, second = _warehouse(), _warehouse()
    campaigns.assign(first, "spring", "select customer_id from activation.audience", T0)
    campaigns.assign(second, "spring", "select customer_id from activation.audience", T0)
    campaigns.assign(second, "autumn", "select customer_id from activation.audience", T0)
    assert _groups(first, "spring") == _groups(second, "spring")
    # Another campaign draws another holdout: not always the same people left out.
    spring, autumn = _groups(second, "spring"), _groups(second, "autumn")
    held_both = sum(spring[c] == autumn[c] == "holdout" for c in spring)
    assert held_both < 0.5 * sum(g == "holdout" for g in spring.values())


def test_a_re_export_keeps_everyone_s_group_and_date_and_adds_only_new_people_in_proportion():
    con = _warehouse(3000)
    con.execute(
        "create table activation.first as select * from activation.audience where customer_id < 'C02000'"
    )
    campaigns.assign(con, "spring", "select customer_id from activation.first", T0)
    before = con.execute(f"select * from {campaigns.ASSIGNMENTS_TABLE} order by customer_id").fetchall()

    stats = campaigns.assign(con, "spring", "select customer_id from activation.audience", T1)
    after = con.execute(f"select * from {campaigns.ASSIGNMENTS_TABLE} order by customer_id").fetchall()
    assert stats["new_people"] == 1000
    kept = {r[1]: r for r in after}
    assert all(kept[r[1]] == r for r in before)  # same group, stratum and exported_at
    new = [r for r in after if r[1] >= "C02000"]
    assert {r[-1] for r in new} == {T1}
    for stratum, people, held in con.execute(
        f"select stratum, count(*), count(*) filter (where campaign_group = 'holdout') "
        f"from {campaigns.ASSIGNMENTS_TABLE} group by 1"
    ).fetchall():
        assert abs(held - 0.1 * people) <= 1, stratum

    # The same export again changes nothing.
    assert (
        campaigns.assign(con, "spring", "select customer_id from activation.audience", T1)["new_people"] == 0
    )
    assert (
        con.execute(f"select * from {campaigns.ASSIGNMENTS_TABLE} order by customer_id").fetchall() == after
    )


def test_small_re_exports_are_held_out_in_proportion_too():
    """Cart abandoners arrive a few at a time; a per-batch share would round to nobody."""
    con = _warehouse(400)
    ids = [r[0] for r in con.execute("select customer_id from marts.customer_360 order by 1").fetchall()]
    for start in range(0, len(ids), 3):
        batch = ", ".join(f"('{c}')" for c in ids[start : start + 3])
        campaigns.assign(con, "cart", f"select * from (values {batch}) t(customer_id)", T0)
    groups = _groups(con, "cart")
    assert len(groups) == 400
    assert 36 <= sum(g == "holdout" for g in groups.values()) <= 44


def test_only_the_treatment_group_leaves_in_the_audience():
    con = _warehouse(500)
    stats = campaigns.export_holdout(con, "activation.audience", "spring", T0, 0.2)
    left = {r[0] for r in con.execute("select customer_id from activation.audience").fetchall()}
    groups = _groups(con, "spring")
    assert left == {c for c, g in groups.items() if g == "treatment"}
    assert stats["held_out_rows"] == stats["holdout"] == 100


def test_people_without_a_profile_yet_get_a_stratum_of_their_own():
    con = _warehouse(10)
    campaigns.assign(con, "spring", "select 'NEW1' as customer_id union all select null", T0)
    assert con.execute(f"select customer_id, stratum from {campaigns.ASSIGNMENTS_TABLE}").fetchall() == [
        ("NEW1", "unscored / no purchase")
    ]


@pytest.mark.parametrize(("campaign", "share"), [("", 0.1), ("spring", 1.0), ("spring", -0.1)])
def test_bad_campaign_or_share_is_refused(campaign, share):
    with pytest.raises(ValueError, match="campaign|holdout_share"):
        campaigns.assign(_warehouse(5), campaign, "select customer_id from activation.audience", T0, share)


def test_the_assignments_table_exists_on_a_fresh_warehouse(tmp_path, monkeypatch):
    from c360.warehouse import connect

    monkeypatch.setenv("C360_HOME", str(tmp_path / "home"))
    con = connect(tmp_path / "w.duckdb")
    cols = [r[0] for r in con.execute(f"describe {campaigns.ASSIGNMENTS_TABLE}").fetchall()]
    con.close()
    assert cols == [name for name, _, _ in campaigns.ASSIGNMENT_COLUMNS]
