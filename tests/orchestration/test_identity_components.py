"""Identity components against an independent reference: the graph as it was defined before the
records were numbered (every record node joined to every key string it holds, plus the CRM fuzzy
pairs), solved by scipy's connected_components and each component named by its smallest node.
The dbt models number the records, link sharers to a key's first record and propagate labels in
SQL; they must give exactly these components, names included (customer ids derive from them).

On the demo platform by default; ``C360_IDENTITY_WAREHOUSE=/path/warehouse.duckdb`` runs the same
comparison on any built warehouse (e.g. 100k customers)."""

import itertools
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest
import yaml
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from c360.settings import DBT_PROJECT_DIR


def fuzzy_threshold() -> float:
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return float(project["vars"]["fuzzy_name_threshold"])


def reference_components(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """(record_node, component) of every record, from the string graph of records and keys."""
    con.execute(
        f"""
        create or replace temp table ref_edges as
        with records as (select * from intermediate.int_identity_records_unioned),
        crm as (
            select record_node, name_key, birth_date, postcode from records
            where source = 'crm_customers' and name_key <> '' and birth_date is not null
              and postcode is not null
        )
        select record_node as a, unnest(link_keys) as b from records
        union all
        select x.record_node, y.record_node
        from crm x join crm y
          on x.postcode = y.postcode and x.birth_date = y.birth_date and x.record_node < y.record_node
        where jaro_winkler_similarity(x.name_key, y.name_key) >= {fuzzy_threshold()}
        """
    )
    # Numbered in string order, so a component's smallest index is its smallest node.
    con.execute(
        """
        create or replace temp table ref_nodes as
        select node, row_number() over (order by node) - 1 as i
        from (select record_node as node from intermediate.int_identity_records_unioned
              union select b from ref_edges)
        """
    )
    n = con.execute("select count(*) from ref_nodes").fetchone()[0]
    pairs = con.execute(
        "select na.i, nb.i from ref_edges e join ref_nodes na on na.node = e.a join ref_nodes nb on nb.node = e.b"
    ).fetchnumpy()
    a, b = (np.asarray(pairs[k], dtype=np.int64) for k in ("i", "i_1"))
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    smallest = np.full(count, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n, dtype=np.int64))
    frame = {"i": np.arange(n, dtype=np.int64), "component_i": smallest[labels]}  # noqa: F841 (read by DuckDB)
    rows = con.execute(
        """
        select r.record_node, c.node
        from intermediate.int_identity_records_unioned r
        join ref_nodes rn on rn.node = r.record_node
        join frame f on f.i = rn.i
        join ref_nodes c on c.i = f.component_i
        """
    ).fetchall()
    return set(rows)


@pytest.fixture
def warehouse(request) -> Path:
    path = os.environ.get("C360_IDENTITY_WAREHOUSE")
    if path:
        return Path(path)
    return request.getfixturevalue("demo_home") / "warehouse.duckdb"


def test_components_equal_the_reference_on_the_string_graph(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        expected = reference_components(con)
        actual = set(
            con.execute(
                "select record_node, component from intermediate.int_identity_components_resolved"
            ).fetchall()
        )
        records = con.execute("select count(*) from intermediate.int_identity_records_unioned").fetchone()[0]
        people = con.execute(
            "select count(distinct component) from intermediate.int_identity_components_resolved"
        ).fetchone()[0]
    finally:
        con.close()
    assert len(expected) == records and people > 1
    # Merged people (one reference component split across several) or split ones show here.
    assert actual == expected, sorted(actual ^ expected)[:20]


# The identity models an increment rebuilds (those the components depend on).
IDENTITY = (
    "int_identity_records_unioned int_identity_edges_linked int_identity_component_labels "
    "int_identity_components_resolved int_customer_ids_assigned int_identity_records_matched customer_id_changes"
)


def id_changes(con) -> list[tuple]:
    return con.execute(
        "select previous_customer_id, customer_id, change, records from marts.customer_id_changes order by changed_at"
    ).fetchall()


def matched(con) -> set[tuple]:
    return set(
        con.execute(
            "select source, source_record_id, customer_id, match_rule, is_anonymous "
            "from intermediate.int_identity_records_matched"
        ).fetchall()
    )


def ids_follow_components(con) -> bool:
    """Every resolved record has an id, one per component and one component per id."""
    return con.execute(
        """with ids as (
            select c.component, a.customer_id
            from intermediate.int_identity_components_resolved c
            left join intermediate.int_customer_ids_assigned a using (record_node)
        )
        select count(*) filter (where customer_id is null) = 0
            and (select count(distinct component) from ids) = (select count(distinct customer_id) from ids)
            and (select count(distinct (component, customer_id)) from ids) = (select count(distinct component) from ids)
        from ids"""
    ).fetchone()[0]


def resolved(con) -> set[tuple[str, str]]:
    return set(
        con.execute(
            "select record_node, component from intermediate.int_identity_components_resolved"
        ).fetchall()
    )


def rebuilt_records(con) -> int:
    """How many records the last build of int_identity_records_unioned rebuilt."""
    return con.execute(
        """select count(*) from intermediate.int_identity_records_unioned
        where built_at = (select max(built_at) from intermediate.int_identity_records_unioned)"""
    ).fetchone()[0]


@pytest.fixture
def builds_in_one_second(monkeypatch):
    """Every dbt invocation from here starts within one second, a microsecond after the one before.
    In-process runs start 0.3 s apart, so on a fast machine two builds can share a second; the
    incremental identity models take the rows written after their own latest `resolved_at`, and
    a build that shared its time with the one before found nothing new (a split kept one id in
    both halves). Pinned, the race is not left to the machine's speed."""
    import dbt.tracking

    second = datetime.now(UTC).replace(microsecond=0)
    ticks = itertools.count(1)

    class OneSecond(datetime):
        @classmethod
        def now(cls, tz=None):
            return second.replace(microsecond=next(ticks)).astimezone(tz)

    monkeypatch.setattr(dbt.tracking, "datetime", OneSecond)


def test_an_increment_gives_the_components_a_full_rebuild_gives(
    demo_home, tmp_path, monkeypatch, dbt_run, builds_in_one_second
):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(demo_home / "warehouse.duckdb", home / "warehouse.duckdb")
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    target = tmp_path / "target"
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    # Two people, one known by an email, another by a phone; new tickets: one carries both (it
    # merges the two), two share an email nobody had (a new person).
    (email, a), (phone, b) = (
        con.execute(
            f"""select split_part(k, ':', 2), c.component
            from (select record_node, unnest(link_keys) as k from intermediate.int_identity_records_unioned) r
            join intermediate.int_identity_components_resolved c using (record_node)
            where k like '{kind}:%' order by r.record_node limit 1 offset {offset}"""
        ).fetchone()
        for kind, offset in (("email", 0), ("phone", 7))
    )
    # A third person, linked by a phone or a fuzzy match, with an email only one of their records
    # holds: a new ticket with that email only joins them (they only grow), and that record, the
    # email's first, now shares it (its rule becomes email, although its component is not rewritten).
    grow_email, g, grow_first = con.execute(
        """with k as (
            select record_node, unnest(link_keys) as k from intermediate.int_identity_records_unioned
        ),
        held_once as (select k, min(record_node) as record_node from k where k like 'email:%' group by k having count(*) = 1)
        select split_part(h.k, ':', 2), c.component, h.record_node
        from held_once h
        join intermediate.int_identity_components_resolved c using (record_node)
        join intermediate.int_identity_records_matched m on m.source || ':' || m.source_record_id = h.record_node
        where m.match_rule in ('phone', 'fuzzy_name_dob_postcode') and c.component not in (?, ?)
        order by h.record_node limit 1""",
        [a, b],
    ).fetchone()
    assert len({a, b, g}) == 3
    template = "select * replace (? as ticket_id, ? as email_hash, ? as phone_hash, now()::timestamp as _loaded_at) from raw.service_tickets limit 1"
    for ticket, ticket_email, ticket_phone in (
        ("T-MERGE", email, phone),
        ("T-NEW-1", "new-person", None),
        ("T-NEW-2", "new-person", None),
        ("T-GROW", grow_email, None),
    ):
        con.execute(
            f"insert into raw.service_tickets by name {template}", [ticket, ticket_email, ticket_phone]
        )
    before = resolved(con)
    records = len(before)
    ids = dict(
        con.execute("select record_node, customer_id from intermediate.int_customer_ids_assigned").fetchall()
    )
    people_ids = {ids[n] for n, c in before if c in (a, b)}
    assert len(people_ids) == 2
    con.close()

    dbt_run(target, IDENTITY)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    incremental = resolved(con)
    components = dict(incremental)
    merged = components["service_tickets:T-MERGE"]
    assert merged == min(a, b)
    assert {c for n, c in before if c in (a, b)} == {a, b}
    assert {n for n, c in before if c in (a, b)} <= {n for n, c in incremental if c == merged}
    assert (
        components["service_tickets:T-NEW-1"] == components["service_tickets:T-NEW-2"] == "email:new-person"
    )
    # Only the touched components were recomputed, and the merge is on record.
    recomputed, merged_labels = con.execute(
        """select count(*), count(distinct previous_label) filter (where component = ?)
        from intermediate.int_identity_components_resolved
        where resolved_at = (select max(resolved_at) from intermediate.int_identity_components_resolved)""",
        [merged],
    ).fetchone()
    assert 4 < recomputed < records / 100 and merged_labels == 2
    # The person who only grew keeps their component, and only the new ticket's row was written.
    assert components["service_tickets:T-GROW"] == g
    grown_written, grown_records = con.execute(
        """select count(*) filter (where resolved_at = (select max(resolved_at) from intermediate.int_identity_components_resolved)),
            count(*)
        from intermediate.int_identity_components_resolved where component = ?""",
        [g],
    ).fetchone()
    assert grown_written == 1 and grown_records > 1
    # The records model rebuilt the four new tickets only, and ids were assigned to the rows
    # written only: the merged person keeps one of the two ids, everyone else theirs (the new
    # ticket of the person who grew gets their id).
    assert rebuilt_records(con) == 4
    assigned = con.execute(
        """select count(*) from intermediate.int_customer_ids_assigned
        where resolved_at = (select max(resolved_at) from intermediate.int_customer_ids_assigned)"""
    ).fetchone()[0]
    assert assigned == recomputed
    after_ids = dict(
        con.execute("select record_node, customer_id from intermediate.int_customer_ids_assigned").fetchall()
    )
    merged_ids = {after_ids[n] for n, c in incremental if c == merged}
    assert len(merged_ids) == 1 and merged_ids <= people_ids
    assert all(after_ids[n] == ids[n] for n, c in before if c not in (a, b))
    assert after_ids["service_tickets:T-GROW"] == ids[next(n for n, c in before if c == g)]
    assert ids_follow_components(con)
    # The merge is on record for systems keyed by customer_id: the absorbed id, with its records.
    (absorbed,) = people_ids - merged_ids
    absorbed_records = sum(1 for n, c in before if ids[n] == absorbed)
    assert id_changes(con) == [(absorbed, *merged_ids, "merge", absorbed_records)]
    # The matched records were rewritten for those components only, and equal a full rebuild.
    rewritten = con.execute(
        """select count(*) from intermediate.int_identity_records_matched
        where resolved_at = (select max(resolved_at) from intermediate.int_identity_records_matched)"""
    ).fetchone()[0]
    assert rewritten == recomputed
    incremental_matched = matched(con)
    assert {r[3] for r in incremental_matched if r[1] == "T-MERGE"} != {"singleton"}
    assert {r[3] for r in incremental_matched if f"{r[0]}:{r[1]}" == grow_first} == {"email"}
    con.close()
    dbt_run(target, "int_identity_records_matched", "--full-refresh")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    assert matched(con) == incremental_matched
    assert incremental == reference_components(con)

    # An erasure-like removal: a record is gone, so every component is recomputed.
    con.execute("delete from raw.service_tickets where ticket_id = 'T-NEW-2'")
    con.close()
    dbt_run(target, IDENTITY)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    after_removal = resolved(con)
    assert after_removal == incremental - {("service_tickets:T-NEW-2", "email:new-person")}
    # A source row gone: every record was rebuilt, not just the new ones.
    assert rebuilt_records(con) == records + 3
    assert after_removal == reference_components(con)
    assert ids_follow_components(con)
    merged_id = con.execute(
        "select customer_id from intermediate.int_customer_ids_assigned where record_node = 'service_tickets:T-MERGE'"
    ).fetchone()[0]
    # The ticket that linked the two people is erased: the component splits in two again, the
    # part with most of the records keeps the merged id and the other gets a new one (one id
    # never names two people).
    con.execute("delete from raw.service_tickets where ticket_id = 'T-MERGE'")
    con.close()
    dbt_run(target, IDENTITY)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    split = resolved(con)
    assert split == reference_components(con)
    halves = {c for n, c in split if c in (a, b)}
    assert halves == {a, b}
    ids_now = dict(
        con.execute("select record_node, customer_id from intermediate.int_customer_ids_assigned").fetchall()
    )
    half_ids = {c: {ids_now[n] for n, k in split if k == c} for c in halves}
    assert all(len(v) == 1 for v in half_ids.values())
    sizes = {c: sum(1 for _, k in split if k == c) for c in halves}
    keeper = max(halves, key=lambda c: sizes[c]) if sizes[a] != sizes[b] else min(halves)
    assert half_ids[keeper] == {merged_id}
    assert half_ids[a] != half_ids[b]
    assert ids_follow_components(con)
    # The split is on record: the part that left, under its new id.
    leaver = ({a, b} - {keeper}).pop()
    assert id_changes(con)[1:] == [(merged_id, *half_ids[leaver], "split", sizes[leaver])]
    # Everyone else kept their id.
    assert all(ids_now[n] == after_ids[n] for n, c in split if c not in (a, b) and n in after_ids)
    changes = id_changes(con)
    assert len(changes) == 2
    # An erasure deletes the ticket's source row and its record (privacy/erasure.py), so the
    # records model finds no source row missing and rebuilds nothing: the components model sees a
    # record of its state gone and recomputes every component.
    con.execute("delete from raw.service_tickets where ticket_id = 'T-GROW'")
    con.execute(
        "delete from intermediate.int_identity_records_unioned where record_node = 'service_tickets:T-GROW'"
    )
    last_written = "select max(built_at) from intermediate.int_identity_records_unioned"
    records_written = con.execute(last_written).fetchone()[0]
    con.close()
    dbt_run(target, IDENTITY)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    assert con.execute(last_written).fetchone()[0] == records_written
    erased = resolved(con)
    assert erased == split - {("service_tickets:T-GROW", g)} == reference_components(con)
    assert ids_follow_components(con)
    split = erased
    con.close()

    dbt_run(target, IDENTITY, "--full-refresh")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    assert resolved(con) == split
    assert ids_follow_components(con)
    assert id_changes(con) == changes
    con.close()
