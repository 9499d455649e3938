"""What a cross-sell rules recount costs the recommendations (issue 20, "left": any rule change
used to rescore every customer). On a COPY of a home (``C360_HOME``: warehouse.duckdb and mlflow/
with its paths pointing into the copy), materializes ``ml/recommendations`` alone:

1. ``full``: rules counted from the baskets before the last ``--days`` days, score table
   dropped: everyone scored;
2. ``recount``: the rules recounted over every basket (what the daily ``ml/cross_sell_rules``
   does after ``--days`` new days) and the table scored again.

Prints, per run, the customers rescored (and why), the asset's ``score_seconds``, the process's
wall and CPU seconds and the load average. Run it with the code to compare on ``sys.path`` first
(e.g. ``cd <checkout> && python <this file>``).
"""

import argparse
import json
import os
import resource
import time
from datetime import timedelta

import dagster as dg
import duckdb

from orchestration.recommendations.assets import CrossSellConfig, recommendations
from orchestration.resources import WarehouseResource

# ml/cross_sell_rules' query, over the features.cross_sell_pairs logic with a basket cutoff.
RULES_SQL = """
create or replace table ml.cross_sell_rules as
with baskets as (
    select distinct 'order:' || i.order_id as basket_id, i.product_id
    from staging.stg_ecommerce__order_items i join staging.stg_ecommerce__orders o using (order_id)
    where o.status not in ('cancelled') and o.ordered_at < $cutoff
    union
    select distinct 'pos:' || transaction_id as basket_id, product_id
    from staging.stg_pos__transaction_lines where occurred_at < $cutoff
),
totals as (select cast(count(distinct basket_id) as double) as n from baskets),
item_counts as (select product_id, count(*) as baskets from baskets group by product_id),
pair_counts as (
    select a.product_id as antecedent, b.product_id as consequent, count(*) as baskets
    from baskets a join baskets b on a.basket_id = b.basket_id and a.product_id <> b.product_id
    group by 1, 2
),
pairs as (
    select p.antecedent, p.consequent, p.baskets, p.baskets / t.n as support,
        p.baskets / cast(ia.baskets as double) as confidence,
        (p.baskets / cast(ia.baskets as double)) / (ic.baskets / t.n) as lift
    from pair_counts p cross join totals t
    join item_counts ia on ia.product_id = p.antecedent
    join item_counts ic on ic.product_id = p.consequent
)
select * from pairs
where baskets >= $min_baskets and support >= $min_support
  and confidence >= $min_confidence and lift >= $min_lift
order by lift desc, support desc, antecedent, consequent
"""


def count_rules(warehouse: str, cutoff) -> int:
    params = {**CrossSellConfig().model_dump(), "cutoff": cutoff}
    with duckdb.connect(warehouse) as con:
        con.execute(RULES_SQL, params)
        return con.execute("select count(*) from ml.cross_sell_rules").fetchone()[0]


def score(warehouse: str) -> dict:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [recommendations], resources={"warehouse": WarehouseResource(path=warehouse)}, instance=instance
        )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    meta = {
        k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()
    }
    keys = (
        "customers",
        "customers_rescored",
        "customers_rescored_for_rules",
        "anchors_rescored_for_rules",
        "rescored_everyone_because",
        "rows_rescored",
        "score_seconds",
    )
    return {
        **{k: meta[k] for k in keys if k in meta},
        "wall": round(wall, 2),
        "cpu": round(after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime, 2),
        "load": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    warehouse = str(os.path.join(os.environ["C360_HOME"], "warehouse.duckdb"))
    with duckdb.connect(warehouse) as con:
        last = con.execute(
            "select greatest((select max(ordered_at) from staging.stg_ecommerce__orders), "
            "(select max(occurred_at) from staging.stg_pos__transaction_lines))"
        ).fetchone()[0]
        con.execute("drop table if exists ml.recommendations")
    cutoff = last - timedelta(days=args.days)
    out = {"old_rules": count_rules(warehouse, cutoff), "full": score(warehouse)}
    out["new_rules"] = count_rules(warehouse, last + timedelta(days=1))
    out["recount"] = score(warehouse)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
