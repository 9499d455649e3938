"""``c360 eval recs``: offline evaluation of the recommender and the cross-sell rules.

* MovieLens 100k (``ml.recommendations.movielens.evaluate_movielens``): platform EASE vs popularity vs implicit's
  default ALS on a per-user temporal split. Skipped, with the reason, when the data is absent.
* Platform data, temporal split: train on every touch before the last ``holdout_days`` of the
  warehouse, score on what customers bought after (``ml.recommendations.models.evaluate_temporal``).
* Planted truth of generated data (``$C360_HOME/landing/_truth``): recall@10 of the served home
  placement (``ml.recommendations``) against each person's future purchases
  (``future_purchases.csv``, persons mapped to customers through ``marts.identity_map`` and
  ``identity.csv``), next to a segment-popularity baseline served the same way; and the share
  of planted bundles (``bundles.csv``) among the top cross-sell rules by lift.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
import duckdb

if TYPE_CHECKING:
    import pandas as pd

METRICS = ("ndcg@10", "precision@10", "recall@10", "map@10", "coverage")


def _round(metrics: dict) -> dict:
    import numpy as np

    return {k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v) for k, v in metrics.items()}


def movielens_section(path: Path | None = None) -> dict:
    from ml.recommendations.movielens import MOVIELENS_100K, evaluate_movielens

    path = Path(path or MOVIELENS_100K)
    if not (path / "u.data").exists():
        return {"skipped": f"MovieLens 100k not found at {path} (GroupLens does not allow redistribution)"}
    results = evaluate_movielens(k=10, path=path)
    return {name: _round(metrics) for name, metrics in results.items()}


def platform_temporal_section(con, holdout_days: int = 60) -> dict:
    import pandas as pd

    from ml.recommendations.models import TIME, evaluate_temporal
    from orchestration.recommendations.assets import read_evaluation_touches

    # The same customers as the recommender's own evaluation (all of them up to 100k).
    events = read_evaluation_touches(con)
    if events.empty:
        return {"skipped": "no interactions in the warehouse"}
    cutoff = (pd.Timestamp(events[TIME].max()) - timedelta(days=holdout_days)).normalize()
    results = evaluate_temporal(events, cutoff)
    return {
        "cutoff": str(cutoff.date()),
        "platform": _round(results["platform"]),
        "popularity": _round(results["popularity"]),
        "users": results["users"],
    }


def person_to_customer(con, identity_csv: Path) -> pd.DataFrame:
    """``person_id, customer_id``: each person's customer is the one most of their records map to."""
    return con.execute(
        f"""
        with truth as (
            select source, source_record_id, nullif(person_id, '') as person_id
            from read_csv('{identity_csv}', header = true, all_varchar = true)
        ),
        votes as (
            select t.person_id, m.customer_id, count(*) as records
            from truth t join marts.identity_map m using (source, source_record_id)
            where t.person_id is not null
            group by all
        )
        select person_id, arg_max(customer_id, records) as customer_id from votes group by person_id
        """
    ).df()


def planted_section(con, truth_dir: Path, k: int = 10) -> dict:
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from ml.recommendations.placements import score_placements
    from ml.recommendations.ranking import recall_against
    from orchestration.recommendations.assets import load_champion

    future_csv, identity_csv = truth_dir / "future_purchases.csv", truth_dir / "identity.csv"
    if not (future_csv.exists() and identity_csv.exists()):
        return {"skipped": f"no planted truth in {truth_dir} (only generated data has one)"}
    persons = person_to_customer(con, identity_csv)
    future = pd.read_csv(future_csv, dtype={"person_id": str, "product_id": str})
    truth = future.merge(persons, on="person_id")[["customer_id", "product_id"]].drop_duplicates()
    served = con.execute(
        "select customer_id, rank, product_id from ml.recommendations where placement = 'home'"
    ).df()
    truth = truth[truth["customer_id"].isin(served["customer_id"])]

    # The same serving path with the CF weights zeroed: segment popularity only.
    champion = load_champion()
    if champion is None:
        return {"skipped": "`recommender` has no @champion (materialize ml/recommender and its gate)"}
    _, model, params = champion
    state = dict(model.state, weights=sp.csr_matrix(model.state["weights"].shape, dtype=np.float32))
    customers = con.execute("select customer_id, rfm_segment as segment from marts.customer_360").df()
    customers = customers[customers["customer_id"].isin(truth["customer_id"])]
    interactions = con.execute(
        "select customer_id, product_id, purchase_count, last_event_at from intermediate.int_interactions_weighted"
    ).df()
    products = con.execute(
        "select product_id, category, is_discontinued from staging.stg_catalog__products"
    ).df()
    repurchase_categories = [c for c in params.get("repurchase_categories", "").split(",") if c]
    available = set(products.loc[~products["is_discontinued"], "product_id"])
    repurchase = set(products.loc[products["category"].isin(repurchase_categories), "product_id"])
    empty_rules = pd.DataFrame({"antecedent": [], "consequent": [], "confidence": []})
    popular = pd.concat(
        score_placements(state, customers, interactions, empty_rules, available, repurchase, k),
        ignore_index=True,
    )
    popular = popular[popular["placement"] == "home"]
    new_only = truth.merge(
        interactions[interactions["purchase_count"] > 0][["customer_id", "product_id"]],
        how="left",
        indicator=True,
    )
    new_only = new_only[new_only["_merge"] == "left_only"]
    return {
        "persons_with_future_purchases": int(future["person_id"].nunique()),
        "customers_evaluated": int(truth["customer_id"].nunique()),
        "platform_recall@10": round(recall_against(truth, served, k), 4),
        "popularity_recall@10": round(recall_against(truth, popular, k), 4),
        "platform_recall@10_new_products": round(recall_against(new_only, served, k), 4),
        "popularity_recall@10_new_products": round(recall_against(new_only, popular, k), 4),
    }


def bundles_section(con, truth_dir: Path) -> dict:
    import pandas as pd

    from ml.recommendations.placements import bundle_recovery

    bundles_csv = truth_dir / "bundles.csv"
    if not bundles_csv.exists():
        return {"skipped": f"no planted bundles at {bundles_csv}"}
    rules = con.execute(
        "select antecedent, consequent, support, confidence, lift from ml.cross_sell_rules"
    ).df()
    bundles = pd.read_csv(bundles_csv, dtype=str)
    recovery = bundle_recovery(rules, bundles)
    recovery["rules"] = len(rules)
    return _round(recovery)


def _print(console, title: str, rows: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("model")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    for name, metrics in rows.items():
        table.add_row(name, *(f"{metrics.get(m, float('nan')):.4f}" for m in METRICS))
    console.print(table)


@click.command(
    "recs",
    help="Recommender offline evaluation: MovieLens 100k (platform vs popularity vs ALS), "
    "a temporal split of the warehouse, recall@10 against planted future purchases and "
    "planted bundle recovery; writes reports/eval_recs.json.",
)
@click.option("--movielens/--no-movielens", default=True, help="Run the MovieLens 100k benchmark.")
@click.option("--holdout-days", default=60, show_default=True, help="Days held out for the temporal split.")
def eval_recs_command(movielens: bool, holdout_days: int) -> None:
    from rich.console import Console

    from c360.settings import get_settings
    from cli.evals import write_report

    console = Console()
    settings = get_settings()
    payload: dict = {}
    if movielens:
        payload["movielens100k"] = movielens_section()
        if "skipped" in payload["movielens100k"]:
            console.print(payload["movielens100k"]["skipped"])
        else:
            _print(console, "MovieLens 100k, per-user temporal split (last 20%)", payload["movielens100k"])
    if settings.warehouse.exists():
        con = duckdb.connect(str(settings.warehouse), read_only=True)
        try:
            payload["platform_temporal"] = platform_temporal_section(con, holdout_days)
            section = payload["platform_temporal"]
            if "skipped" not in section:
                _print(
                    console,
                    f"Platform data, trained before {section['cutoff']}, scored on purchases after",
                    {"platform": section["platform"], "popularity": section["popularity"]},
                )
            payload["planted_future_purchases"] = planted_section(con, settings.truth)
            payload["planted_bundles"] = bundles_section(con, settings.truth)
        finally:
            con.close()
        console.print({"planted_future_purchases": payload["planted_future_purchases"]})
        console.print({"planted_bundles": payload["planted_bundles"]})
    else:
        console.print(f"no warehouse at {settings.warehouse}: platform sections skipped")
    console.print(f"written {write_report('recs', payload)}")
