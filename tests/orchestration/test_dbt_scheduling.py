"""On a first build (or with C360_DBT_LONGEST_CHAIN_FIRST=1) dbt's free threads take the ready node
with the longest chain below it (orchestration/dbt/scheduling.py); on an incremental build (or with
=0) dbt keeps its own order."""

import json
import threading
import time
from itertools import pairwise
from types import SimpleNamespace

import networkx as nx
import pytest
from dbt.graph.queue import GraphQueue

from orchestration.dbt import scheduling

STG = "model.customer_360.stg_web__events"
PRODUCTS = "model.customer_360.int_device_products_touched"
SESSIONS = "model.customer_360.int_device_sessions_sessionised"
VISITS = "model.customer_360.int_device_visits_summarised"
CHAIN = [
    "test.customer_360.not_null_int_device_visits_summarised_device_id",
    "model.customer_360.int_identity_records_unioned",
    "model.customer_360.int_identity_edges_linked",
    "model.customer_360.int_customer_ids_assigned",
]


def _graph() -> nx.DiGraph:
    """The full build's first fork: three clickstream models ready together, and the identity
    chain behind the one that sorts last by name (through its test, as in `dbt build`)."""
    graph = nx.DiGraph()
    graph.add_edges_from([(STG, PRODUCTS), (STG, SESSIONS), (STG, VISITS), (VISITS, CHAIN[0])])
    graph.add_edges_from(pairwise(CHAIN))
    return graph


def _queue(graph: nx.DiGraph) -> GraphQueue:
    manifest = SimpleNamespace(expect=lambda unique_id: SimpleNamespace(unique_id=unique_id))
    return GraphQueue(graph.copy(), manifest, set(graph))


def _order(queue: GraphQueue) -> list[str]:
    """The order one thread takes the nodes in, finishing each before taking the next."""
    taken = []
    while not queue.inner.empty():
        node = queue.get(block=False)
        taken.append(node.unique_id)
        queue.mark_done(node.unique_id)
    return taken


@pytest.fixture
def longest_chain_first():
    """Installed afresh for the test, and left as it was found (another test's in-process dbt
    command may have installed it in this worker already, if run with the switch on)."""
    was = GraphQueue.get.__module__ == scheduling.__name__
    assert not scheduling.longest_chain_first(enabled=False)
    assert GraphQueue.get.__module__ != scheduling.__name__
    assert scheduling.longest_chain_first()
    assert scheduling.longest_chain_first()  # idempotent
    yield
    scheduling.longest_chain_first(enabled=was)


def test_the_head_of_the_longest_chain_scores_lowest():
    scores = scheduling.longest_chain_scores(_graph())

    # stg (6 nodes from it to the end), visits (5), then the chain down to its last node.
    assert scores[STG] == 0
    assert scores[VISITS] == 1
    assert [scores[n] for n in CHAIN] == [2, 3, 4, 5]
    assert scores[PRODUCTS] == scores[SESSIONS] == scores[CHAIN[-1]] == 5
    assert scheduling.longest_chain_scores(nx.DiGraph()) == {}


def test_one_thread_takes_the_identity_chain_before_the_shorter_siblings(longest_chain_first):
    order = _order(_queue(_graph()))

    assert order[:2] == [STG, VISITS]
    # The siblings with nothing behind them go last, by name, as dbt breaks ties.
    assert order[-2:] == [PRODUCTS, SESSIONS]
    assert sorted(order) == sorted(_graph().nodes)


def test_a_node_is_chosen_when_a_thread_is_free_not_when_it_became_ready(longest_chain_first):
    """dbt's main loop takes every ready node at once and its pool runs them first in, first out:
    with two threads busy on visits and products, sessionisation was already queued, and the
    visits' test (ready later) waited behind it. Now the loop waits for a free thread and then
    takes the best node ready at that moment."""
    queue = _queue(_graph())
    queue._c360_threads = 2  # what run_queue sets from the command's threads
    handed: list[str] = []

    def main_loop():  # dbt's run_queue: take a node, hand it to the pool, repeat
        while not queue.empty():
            handed.append(queue.get().unique_id)

    def settle(count: int) -> list[str]:
        deadline = time.monotonic() + 10
        while len(handed) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # anything more it would take, it takes now
        return list(handed)

    loop = threading.Thread(target=main_loop, daemon=True)
    loop.start()
    assert settle(1) == [STG]
    queue.mark_done(STG)
    # Two threads, two nodes; sessionisation stays in the queue.
    assert settle(3) == [STG, VISITS, PRODUCTS]
    queue.mark_done(VISITS)
    assert settle(4) == [STG, VISITS, PRODUCTS, CHAIN[0]]
    queue.mark_done(CHAIN[0])
    # Sessionisation has been ready longest, but the chain's next model has more behind it.
    assert settle(5)[-1] == CHAIN[1]
    done = {STG, VISITS, CHAIN[0]}
    deadline = time.monotonic() + 30
    while loop.is_alive() or len(done) < len(handed):
        assert time.monotonic() < deadline, f"dbt's loop stopped taking nodes after {handed}"
        for node in [n for n in handed if n not in done]:
            done.add(node)
            queue.mark_done(node)
        loop.join(0.05)
    assert sorted(handed) == sorted(_graph().nodes)


def test_switched_off_dbts_own_order_comes_back(longest_chain_first):
    assert not scheduling.longest_chain_first(enabled=False)

    assert _order(_queue(_graph()))[:2] == [STG, PRODUCTS]
    assert scheduling.longest_chain_first()
    assert _order(_queue(_graph()))[:2] == [STG, VISITS]


def test_the_switch_is_auto_by_default_and_forces_either_order():
    # The dbt step and the bench report read the switch here, so they cannot disagree on its default.
    assert scheduling.setting({}) == scheduling.setting({scheduling.SWITCH: ""}) == scheduling.AUTO
    assert scheduling.setting({scheduling.SWITCH: "auto"}) == scheduling.AUTO
    assert scheduling.setting({scheduling.SWITCH: "0"}) == "0"
    assert scheduling.setting({scheduling.SWITCH: "1"}) == "1"
    assert not scheduling.requested({})
    assert not scheduling.requested({scheduling.SWITCH: "0"})
    assert scheduling.requested({scheduling.SWITCH: "1"})


def test_auto_takes_the_longest_chain_first_on_a_first_build_only(tmp_path):
    import duckdb

    warehouse = tmp_path / "warehouse.duckdb"
    build = ["build", "--select", "fqn:*"]
    # A new home: no warehouse file, then one without the identity chain's first table.
    assert scheduling.wanted({}, build, warehouse)
    con = duckdb.connect(str(warehouse))
    con.execute("create schema intermediate")
    con.execute("create table intermediate.int_customer_ids_assigned (record_node varchar)")
    con.close()
    assert scheduling.wanted({}, build, warehouse)
    # Built once: the next builds are incremental and keep dbt's order, unless refreshed in full.
    con = duckdb.connect(str(warehouse))
    con.execute("create table intermediate.int_identity_records_unioned (record_id bigint)")
    con.close()
    assert not scheduling.wanted({}, build, warehouse)
    assert not scheduling.wanted({scheduling.SWITCH: "auto"}, build, warehouse)
    assert scheduling.wanted({}, [*build, "--full-refresh"], warehouse)
    # The switch forces either order.
    assert scheduling.wanted({scheduling.SWITCH: "1"}, build, warehouse)
    assert not scheduling.wanted({scheduling.SWITCH: "0"}, [*build, "--full-refresh"], tmp_path / "none")
    # The look at the catalog leaves the file free: this process opens it again with other
    # settings, as dbt-duckdb does next (DuckDB refuses that while another connection is open).
    con = duckdb.connect(str(warehouse), config={"threads": 1, "memory_limit": "1GB"})
    assert con.execute("select count(*) from intermediate.int_identity_records_unioned").fetchone() == (0,)
    con.close()


def test_the_demos_first_build_took_the_identity_chain_before_its_heavier_siblings(demo_home):
    # The demo home is a first build (auto: the longest chain first). The three clickstream models
    # are ready together; in dbt's order the two that sort first by name start first, and the
    # chain's head waits (52 s at 1M customers).
    started = {}
    for results in (demo_home / "dbt" / "runs").glob("*/run_results.json"):
        for node in json.loads(results.read_text())["results"]:
            if node["unique_id"] in (PRODUCTS, SESSIONS, VISITS):
                started[node["unique_id"]] = min(t["started_at"] for t in node["timing"] if t["started_at"])
    assert set(started) == {PRODUCTS, SESSIONS, VISITS}
    assert started[VISITS] < min(started[PRODUCTS], started[SESSIONS])
