"""Batch scoring of the home, product and cart placements against a straightforward reference:
every item scored for one customer at a time, ranked by score then item index."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp

from ml.recommendations import placements
from ml.recommendations.placements import POPULARITY_TIE_BREAK, score_placements

K = 10


def _normalise(row: np.ndarray) -> np.ndarray:
    top = row.max()
    return (np.maximum(row, 0) / top).astype(np.float32) if top > 0 else np.zeros_like(row)


def reference_placements(state, customers, interactions, rules, available, repurchase, k) -> pd.DataFrame:
    """The definition, one customer at a time: each placement's signal row-normalised, plus
    POPULARITY_TIE_BREAK x the segment's row-normalised popularity; bought products (unless
    repurchasable), unavailable ones and the anchor (last touched product) excluded; best k by
    score, ties to the lower item index. float32 throughout, and the personal signal summed over
    the history in item order, as a sparse product does."""
    items = list(state["meta"]["item_ids"])
    position = {p: i for i, p in enumerate(items)}
    n = len(items)
    weights = state["weights"].toarray().astype(np.float32)
    transitions = state["transitions"].toarray().astype(np.float32)
    together = np.zeros((n, n), dtype=np.float32)
    for a, c, conf in zip(rules["antecedent"], rules["consequent"], rules["confidence"]):
        if a in position and c in position:
            together[position[a], position[c]] += np.float32(conf)
    globally = state["popularity"].astype(np.float32)
    segments = list(state["meta"]["segments"])
    blocked = np.array([p not in available for p in items])
    repurchasable = np.array([p in repurchase for p in items])

    known = interactions[interactions["product_id"].astype(str).isin(position)].copy()
    known["item"] = known["product_id"].astype(str).map(position)
    known["customer_id"] = known["customer_id"].astype(str)
    last = (
        known.reset_index(drop=True)
        .sort_values("last_event_at", kind="stable")
        .groupby("customer_id")["item"]
        .last()
    )
    by_customer = dict(tuple(known.groupby("customer_id")))
    rows = []
    for customer, segment in zip(customers["customer_id"].astype(str), customers["segment"]):
        mine = by_customer.get(customer, known.iloc[:0])
        history = sorted(set(mine["item"]))
        seen = set(mine.loc[mine["purchase_count"] > 0, "item"]) - set(np.flatnonzero(repurchasable))
        anchor = last.get(customer, -1)
        if segment in segments:
            popularity = state["segment_popularity"][segments.index(segment)] + globally / (
                globally.max() + 1.0
            )
        else:
            popularity = globally
        tie = POPULARITY_TIE_BREAK * _normalise(popularity.astype(np.float32))
        personal = np.zeros(n, dtype=np.float32)
        for i in history:
            personal += weights[i]
        zero = np.zeros(n, dtype=np.float32)
        following = _normalise(transitions[anchor]) if anchor >= 0 else zero
        complements = _normalise(together[anchor]) if anchor >= 0 else zero
        signals = {
            "home": _normalise(personal),
            "product": _normalise(weights[anchor]) if anchor >= 0 else zero,
            "cart": 0.5 * following + 0.5 * complements,
        }
        for placement, main in signals.items():
            scores = main + tie
            excluded = blocked.copy()
            excluded[list(seen)] = True
            if placement != "home" and anchor >= 0:
                excluded[anchor] = True
            candidates = np.flatnonzero(~excluded)
            ranked = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
            for rank, item in enumerate(ranked, start=1):
                if placement == "home":
                    reason = "personal" if main[item] > 0 else "popular_in_segment"
                elif placement == "product":
                    reason = "similar_to_last_product" if main[item] > 0 else "popular_in_segment"
                elif following[item] >= complements[item]:
                    reason = "next_item" if following[item] > 0 else "popular_in_segment"
                else:
                    reason = "bought_together"
                rows.append((customer, placement, rank, items[item], float(scores[item]), reason))
    return pd.DataFrame(rows, columns=["customer_id", "placement", "rank", "product_id", "score", "reason"])


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.sort_values(["customer_id", "placement", "rank"]).reset_index(drop=True)
    return out.astype({"rank": "int64", "score": "float64"})


def _synthetic(seed: int):
    """Coarse values (many exact ties), negative EASE weights, customers without history,
    segment or anchor, unknown products, and heavy buyers who exhaust the shared lists."""
    rng = np.random.default_rng(seed)
    n_items, n_customers = 40, 80
    items = [f"p{i:03d}" for i in range(n_items)]
    weights = sp.random(n_items, n_items, density=0.35, random_state=rng, dtype=np.float32)
    weights.data = rng.choice(np.array([-1.0, 0.5, 1.0, 2.0], dtype=np.float32), weights.nnz)
    weights = sp.csr_matrix(weights)
    weights.setdiag(0.0)
    weights.eliminate_zeros()
    transitions = sp.random(n_items, n_items, density=0.1, random_state=rng, dtype=np.float32)
    transitions.data = rng.integers(1, 4, transitions.nnz).astype(np.float32)
    state = {
        "weights": weights,
        "transitions": sp.csr_matrix(transitions),
        "popularity": rng.integers(0, 4, n_items).astype(np.float32),
        "segment_popularity": rng.integers(0, 3, (2, n_items)).astype(np.float32),
        "meta": {"item_ids": items, "segments": ["champions", "at_risk"]},
    }
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in range(n_customers)],
            "segment": rng.choice(np.array(["champions", "at_risk", None, "new"], dtype=object), n_customers),
        }
    )
    touches = []
    for i in range(n_customers - 5):  # the last five have no history
        heavy = i % 10 == 0
        for item in rng.choice(n_items, 36 if heavy else int(rng.integers(1, 6)), replace=False):
            bought = 1 if heavy else int(rng.integers(0, 2))
            touches.append((f"c{i:03d}", items[item], bought, int(rng.integers(0, 4))))
    touches.append(("c001", "unknown-product", 1, 9))
    touches.append(("not-a-customer", items[0], 1, 0))
    interactions = pd.DataFrame(touches, columns=["customer_id", "product_id", "purchase_count", "day"])
    interactions["last_event_at"] = pd.Timestamp("2025-01-01") + pd.to_timedelta(interactions.pop("day"), "D")
    rules = pd.DataFrame(
        {
            "antecedent": rng.choice(items, 60),
            "consequent": rng.choice(items, 60),
            "confidence": rng.choice(np.array([0.25, 0.5, 1.0], dtype=np.float32), 60),
        }
    ).drop_duplicates(["antecedent", "consequent"])
    rules = rules[rules["antecedent"] != rules["consequent"]]
    available = set(items) - set(items[::7])
    repurchase = set(items[:8])
    return state, customers, interactions, rules, available, repurchase


@pytest.mark.parametrize("spare", [0, 3, placements.ANCHOR_LIST_SPARE], ids=lambda s: f"spare{s}")
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "threads, chunk",
    [(1, placements.ANCHOR_CHUNK_ENTRIES), (2, 120)],
    ids=["threads1", "threads2-anchor-chunks"],
)
def test_batch_scoring_equals_the_reference_row_for_row(seed, spare, threads, chunk, monkeypatch):
    """Also with shared product/cart lists too short for most customers (spare 0), so the
    exact per-customer path is exercised, in several blocks of customers, scored one or two at
    a time, and with the (anchor, segment) lists made in many small chunks."""
    monkeypatch.setattr(placements, "ANCHOR_LIST_SPARE", spare)
    monkeypatch.setattr(placements, "ANCHOR_CHUNK_ENTRIES", chunk)
    monkeypatch.setattr(placements.models, "SCORE_BLOCK_CELLS", 40 * 17)
    state, customers, interactions, rules, available, repurchase = _synthetic(seed)
    got = pd.concat(
        score_placements(state, customers, interactions, rules, available, repurchase, K, threads=threads),
        ignore_index=True,
    )
    want = reference_placements(state, customers, interactions, rules, available, repurchase, K)
    pd.testing.assert_frame_equal(_sorted(got), _sorted(want))
    # The cases the fixture is meant to hold.
    assert set(want["reason"]) == {
        "personal",
        "similar_to_last_product",
        "next_item",
        "bought_together",
        "popular_in_segment",
    }
    assert (want.groupby(["customer_id", "placement"]).size() < K).any()  # heavy buyers run short


def test_blocks_come_in_customer_order_and_their_arrow_form_reads_back_as_the_frame(monkeypatch):
    """The asset writes ``PlacementBlock.arrow`` into DuckDB; read back
    as strings it must equal ``frame``, block by block, with the customers in order."""
    monkeypatch.setattr(placements.models, "SCORE_BLOCK_CELLS", 40 * 17)
    state, customers, interactions, rules, available, repurchase = _synthetic(1)
    customer_ids = customers["customer_id"].astype(str).to_numpy(dtype=object)
    item_ids = np.asarray(state["meta"]["item_ids"], dtype=object)
    blocks = list(
        placements.score_placement_blocks(
            state, customers, interactions, rules, available, repurchase, K, threads=2
        )
    )
    assert len(blocks) > 2
    firsts = [int(b.customer.min()) for b in blocks]
    assert firsts == sorted(firsts) and firsts[0] == 0
    con = duckdb.connect()
    for block in blocks:
        con.register(
            "arrow_block", block.arrow(pa.array(customer_ids, pa.string()), pa.array(item_ids, pa.string()))
        )
        back = con.execute(
            "select customer_id::varchar as customer_id, placement::varchar as placement, rank, "
            "product_id::varchar as product_id, score, reason::varchar as reason from arrow_block"
        ).df()
        want = block.frame(customer_ids, item_ids)
        pd.testing.assert_frame_equal(back.astype(object), want.astype(object))


def test_batch_scoring_only_the_placements_asked_for():
    state, customers, interactions, rules, available, repurchase = _synthetic(0)
    got = pd.concat(
        score_placements(state, customers, interactions, rules, available, repurchase, K, ("home",)),
        ignore_index=True,
    )
    want = reference_placements(state, customers, interactions, rules, available, repurchase, K)
    pd.testing.assert_frame_equal(_sorted(got), _sorted(want[want["placement"] == "home"]))


def test_demo_champion_scores_equal_the_reference(demo_home):
    """The demo platform's own champion, customers, interactions and rules."""
    from orchestration.recommendations.assets import load_champion

    champion = load_champion()
    assert champion is not None, "the demo home has no recommender champion"
    _, model, params = champion
    con = duckdb.connect(str(demo_home / "warehouse.duckdb"), read_only=True)
    try:
        customers = con.execute(
            "select customer_id, rfm_segment as segment from marts.customer_360 order by customer_id"
        ).df()
        interactions = con.execute(
            "select customer_id, product_id, purchase_count, last_event_at "
            "from intermediate.int_interactions_weighted"
        ).df()
        products = con.execute(
            "select product_id, category, is_discontinued from staging.stg_catalog__products"
        ).df()
        rules = con.execute("select antecedent, consequent, confidence from ml.cross_sell_rules").df()
    finally:
        con.close()
    available = set(products.loc[~products["is_discontinued"], "product_id"].astype(str))
    categories = [c for c in params.get("repurchase_categories", "").split(",") if c]
    repurchase = set(products.loc[products["category"].isin(categories), "product_id"].astype(str))
    state = model.state
    got = pd.concat(
        score_placements(state, customers, interactions, rules, available, repurchase, K), ignore_index=True
    )
    want = reference_placements(state, customers, interactions, rules, available, repurchase, K)
    assert len(want) >= 0.9 * 3 * K * len(customers)
    pd.testing.assert_frame_equal(_sorted(got), _sorted(want))


def test_categorical_ids_are_matched_as_their_strings():
    """The asset reads the interactions' ids as categoricals (no Python string per row); every
    lookup and every anchor must be what the same ids as strings give."""
    state, customers, interactions, *_ = _synthetic(2)
    coded = interactions.copy()
    for name in ("customer_id", "product_id"):
        # Unused and unknown categories, and a missing id, as a warehouse can hold them.
        coded[name] = pd.Categorical(coded[name], categories=["zz-unknown", *pd.unique(coded[name])[::-1]])
    coded.loc[coded.index[0], "product_id"] = np.nan
    plain = coded.astype({"customer_id": object, "product_id": object})
    items = pd.Index(np.asarray(state["meta"]["item_ids"], dtype=object), dtype=object)
    got, want = (
        placements.positions(coded["product_id"], items),
        placements.positions(plain["product_id"], items),
    )
    assert (got == want).all() and (got == -1).sum() >= 1
    ids = customers["customer_id"]
    pd.testing.assert_series_equal(
        placements.anchors(items, ids, coded), placements.anchors(items, ids, plain)
    )
