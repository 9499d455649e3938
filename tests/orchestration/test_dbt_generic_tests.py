"""The project's own generic dbt test, unique_combination (dbt_project/tests/generic/), on a copy
of the demo warehouse: a duplicated key fails it, rows with a null key column are left out as the
`a || '|' || b` unique tests it replaced left them out, and an expression column
(`coalesce(account_id, '')`) groups nulls with nulls."""

import duckdb

INTERACTIONS = "intermediate.int_interactions_weighted"
VISITS = "intermediate.int_device_visits_summarised"


def failures(dbt_invoke, target) -> dict[str, int]:
    """Failing keys per model of the unique_combination tests of the two models."""
    result = dbt_invoke(
        "test",
        target,
        "--select",
        "int_interactions_weighted,test_name:unique_combination",
        "int_device_visits_summarised,test_name:unique_combination",
    )
    found = {}
    for run in result.result.results:
        if run.node.resource_type != "test":
            continue  # the project's on-run-start/end hooks
        assert str(run.status) in ("pass", "fail"), run.message
        found[run.node.attached_node.rsplit(".", 1)[-1]] = int(run.failures or 0)
    return found


def test_unique_combination_catches_duplicates_and_leaves_null_keys_out(
    demo_copy, monkeypatch, tmp_path, dbt_invoke
):
    home = demo_copy("warehouse.duckdb")
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    target = tmp_path / "target"
    assert failures(dbt_invoke, target) == {"int_interactions_weighted": 0, "int_device_visits_summarised": 0}

    con = duckdb.connect(str(home / "warehouse.duckdb"))
    # Two rows with a null product are not a key; a copied row is a duplicate.
    con.execute(
        f"insert into {INTERACTIONS} select * replace (null as product_id) from {INTERACTIONS} "
        "order by customer_id, product_id limit 2"
    )
    con.execute(
        f"insert into {INTERACTIONS} select * from {INTERACTIONS} where product_id is not null limit 1"
    )
    # A visit without an account, twice: the coalesced account makes them one key.
    con.execute(
        f"insert into {VISITS} select * replace ('S-NEW' as session_id, null as account_id) from {VISITS} limit 1"
    )
    con.execute(f"insert into {VISITS} select * from {VISITS} where session_id = 'S-NEW'")
    con.close()
    assert failures(dbt_invoke, target) == {"int_interactions_weighted": 1, "int_device_visits_summarised": 1}


def test_unique_combination_of_an_incremental_fact_checks_the_keys_its_latest_build_wrote(
    demo_copy, monkeypatch, tmp_path, dbt_invoke
):
    """`latest_build: built_at`: a daily run's test groups only the keys the run wrote. A row it
    wrote that repeats an older row's key fails the test; two older rows were checked by the
    test of the build that wrote them, and are not grouped again."""
    home = demo_copy("warehouse.duckdb")
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    target = tmp_path / "target"
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    # As after a daily run: the full build's rows are older, and one key was written since.
    con.execute(f"update {INTERACTIONS} set built_at = built_at - interval 1 day")
    first, second, written = con.execute(
        f"select customer_id, product_id from {INTERACTIONS} order by customer_id, product_id limit 3"
    ).fetchall()
    con.execute(
        f"update {INTERACTIONS} set built_at = built_at + interval 1 day "
        "where customer_id = ? and product_id = ?",
        written,
    )
    # An older row copied: a duplicate among rows the latest build did not write.
    con.execute(
        f"insert into {INTERACTIONS} select * from {INTERACTIONS} where customer_id = ? and product_id = ?",
        first,
    )
    con.close()
    assert failures(dbt_invoke, target)["int_interactions_weighted"] == 0

    con = duckdb.connect(str(home / "warehouse.duckdb"))
    # The latest build writes a row with an older row's key: caught.
    con.execute(
        f"insert into {INTERACTIONS} select * replace ((select max(built_at) from {INTERACTIONS}) as built_at) "
        f"from {INTERACTIONS} where customer_id = ? and product_id = ?",
        second,
    )
    con.close()
    assert failures(dbt_invoke, target)["int_interactions_weighted"] == 1


def test_the_latest_build_of_visits_is_matched_on_its_plain_key_columns(
    demo_copy, monkeypatch, tmp_path, dbt_invoke
):
    """The visits' key ends in an expression, `coalesce(account_id, '')`: the keys the latest
    build wrote are matched on device and visit alone, and grouped on all three. A written row
    repeating an older visit without an account fails; one under another account does not."""
    home = demo_copy("warehouse.duckdb")
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    target = tmp_path / "target"
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute(f"update {VISITS} set built_at = built_at - interval 1 day")
    device, session = con.execute(
        f"select device_id, session_id from {VISITS} where account_id is null order by all limit 1"
    ).fetchone()
    latest = f"(select max(built_at) + interval 1 day from {VISITS})"
    # The same visit under another account, written by the latest build: another key.
    con.execute(
        f"insert into {VISITS} select * replace ('A-OTHER' as account_id, {latest} as built_at) "
        f"from {VISITS} where device_id = ? and session_id = ? and account_id is null",
        [device, session],
    )
    con.close()
    assert failures(dbt_invoke, target)["int_device_visits_summarised"] == 0

    con = duckdb.connect(str(home / "warehouse.duckdb"))
    # The older visit without an account, written again: its key twice.
    con.execute(
        f"insert into {VISITS} select * replace ((select max(built_at) from {VISITS}) as built_at) "
        f"from {VISITS} where device_id = ? and session_id = ? and account_id is null",
        [device, session],
    )
    con.close()
    assert failures(dbt_invoke, target)["int_device_visits_summarised"] == 1
