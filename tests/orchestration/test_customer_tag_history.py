"""Tags move when behaviour changes, and marts.customer_tag_history keeps how they moved: the
profile is built at an earlier as-of date, then at the end of the data (activity, tenure, RFM
and so on have changed in between), on a copy of the demo warehouse."""

import shutil
from datetime import timedelta

import duckdb
import pytest

MODELS = "customer_360 int_customer_tags_assigned customer_tag_history customer_tags"
KEY = "customer_id, tag_group, tag, value"


def rows(con, sql: str) -> set[tuple]:
    return set(con.execute(sql).fetchall())


@pytest.fixture(scope="module")
def builds(demo_home, tmp_path_factory, dbt_run):
    """(connection, first as-of date, last as-of date, assigned tags at each) after a build at an
    earlier date and one at the end of the data. One copy for the module (each build costs dbt
    runs); the last test builds once more and must stay last."""
    tmp_path = tmp_path_factory.mktemp("tag_history")
    home, target = tmp_path / "home", tmp_path / "target"
    home.mkdir()
    warehouse = str(home / "warehouse.duckdb")
    shutil.copy(demo_home / "warehouse.duckdb", warehouse)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("C360_HOME", str(home))
        env.delenv("C360_WAREHOUSE", raising=False)
        with duckdb.connect(warehouse) as con:
            last = con.execute("select max(as_of_date) from marts.customer_360").fetchall()[0][0]
        first = last - timedelta(days=120)

        dbt_run(target, MODELS, "--full-refresh", "--vars", f"{{as_of_date: '{first}'}}")
        with duckdb.connect(warehouse) as con:
            assigned_first = rows(con, f"select {KEY} from intermediate.int_customer_tags_assigned")
            history_first = rows(con, "select * from marts.customer_tag_history")

        dbt_run(target, MODELS)
        state = {
            "con": duckdb.connect(warehouse),
            "first": first,
            "last": last,
            "target": target,
            "home": home,
            "assigned_first": assigned_first,
            "history_first": history_first,
        }
        state["assigned_last"] = rows(
            state["con"], f"select {KEY} from intermediate.int_customer_tags_assigned"
        )
        yield state
        state["con"].close()


def test_a_first_build_opens_every_assigned_tag_at_its_as_of_date(builds):
    history = builds["history_first"]
    assert history and {r[4:] for r in history} == {(builds["first"], None)}
    assert {r[:4] for r in history} == builds["assigned_first"]


def test_tags_that_changed_close_new_ones_open_and_the_rest_keep_their_start(builds):
    con, first, last = builds["con"], builds["first"], builds["last"]
    before, after = builds["assigned_first"], builds["assigned_last"]
    gone, new, kept = before - after, after - before, before & after
    # The data changed in 120 days: some tags must have moved, or this test proves nothing.
    assert gone and new and kept

    history = {r[:4]: r[4:] for r in rows(con, "select * from marts.customer_tag_history")}
    assert len(history) == len(before | after)  # one period per tag value here: none came back
    assert all(history[k] == (first, last) for k in gone)
    assert all(history[k] == (last, None) for k in new)
    assert all(history[k] == (first, None) for k in kept)
    # Tags moved for a reason a marketer can read: e.g. activity and tenure move with time.
    assert {k[2] for k in gone} & {"activity", "tenure", "rfm_segment"}

    current = rows(con, f"select {KEY}, valid_from from marts.customer_tags")
    assert current == {(*k, history[k][0]) for k in after}


def test_a_build_with_nothing_new_leaves_the_history_as_it_is(builds, dbt_run):
    con = builds["con"]
    before = rows(con, "select * from marts.customer_tag_history")
    con.close()
    dbt_run(builds["target"], MODELS)
    con = duckdb.connect(str(builds["home"] / "warehouse.duckdb"))
    builds["con"] = con
    assert rows(con, "select * from marts.customer_tag_history") == before
