"""A campaign with a known effect: the answer key ``c360 eval campaigns`` measures against.

The generator's 24 months end before any export, and a campaign's effect is what happens after
it, so the effect is planted by a separate step run after an export rather than inside the
generator's time line: :func:`plant_campaign_effect` reads one campaign's assignments from the
warehouse and writes, into the landing zone, the web orders its people place in the ``days`` after
their export (default 28: inside the 30-day attribution window, and within the 30-day freshness
gate of the feeds the simulation does not extend, such as store receipts and clickstream). Each person buys with probability ``base_rate``, plus ``uplift[segment]`` when
contacted (treatment) and in that segment; segments not named get no effect. The orders go to
each person's own shop account, so they reach ``marts.campaign_results`` the way real orders
would: ingestion, identity resolution, ``int_purchases_unioned``. The planted effects are written
to ``_truth/campaign_<campaign>.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SEGMENT_COLUMNS = ("rfm_segment", "churn_risk_band", "lifecycle_stage")

PEOPLE_SQL = """
with accounts as (
    select m.customer_id, arg_max(o.account_id, o.ordered_at) as account_id
    from raw.ecommerce_orders o
    join marts.identity_map m on m.source = 'ecommerce_orders' and m.source_record_id = o.order_id
    where o.account_id is not null
    group by m.customer_id
)
select a.customer_id, a.campaign_group, a.{by} as segment, a.exported_at, c.account_id
from activation.campaign_assignments a
left join accounts c using (customer_id)
where a.campaign = ?
order by a.customer_id
"""


def plant_campaign_effect(
    con,
    landing: Path,
    campaign: str,
    uplift: dict[str, float],
    by: str = "rfm_segment",
    base_rate: float = 0.15,
    days: int = 28,
    seed: int = 0,
) -> dict:
    """Write the campaign's post-export orders into ``landing``; return the truth (also written
    to ``landing/_truth/campaign_<campaign>.json``). ``con``: a warehouse connection after the
    export (reads ``activation.campaign_assignments``, ``raw.ecommerce_orders``,
    ``marts.identity_map``, ``raw.products``)."""
    import pandas as pd

    if by not in SEGMENT_COLUMNS:
        raise ValueError(f"by must be one of {SEGMENT_COLUMNS}, not {by!r}")
    for segment, lift in uplift.items():
        if not 0 <= base_rate + lift <= 1:
            raise ValueError(
                f"base_rate + uplift for {segment!r} must be a probability, not {base_rate + lift}"
            )
    people = con.execute(PEOPLE_SQL.format(by=by), [campaign]).df()
    if people.empty:
        raise ValueError(f"campaign {campaign!r} has no assignments: export it first")
    unreachable = int(people["account_id"].isna().sum())
    people = people[people["account_id"].notna()].reset_index(drop=True)
    products = con.execute(
        "select product_id, price from raw.products where not coalesce(discontinued, false)"
    ).df()

    rng = np.random.default_rng([seed, 23])
    treated = (people["campaign_group"] == "treatment").to_numpy()
    lift = people["segment"].map(uplift).fillna(0.0).to_numpy()
    p_buy = base_rate + np.where(treated, lift, 0.0)
    buys = rng.random(len(people)) < p_buy
    buyers = people[buys].reset_index(drop=True)
    # Somewhere in the first ``days``, never in the last hour (keeps clear of the window's end).
    offset_s = rng.integers(60, days * 86400 - 3600, len(buyers))
    ordered_at = pd.to_datetime(buyers["exported_at"]) + pd.to_timedelta(offset_s, unit="s")
    pick = rng.integers(0, len(products), len(buyers))
    quantity = rng.integers(1, 3, len(buyers))
    unit_price = products["price"].to_numpy()[pick]
    order_id = [f"CMP{seed:03d}{i:07d}" for i in range(len(buyers))]
    orders = pd.DataFrame(
        {
            "order_id": order_id,
            "account_id": buyers["account_id"],
            "ordered_at": ordered_at.dt.strftime("%Y-%m-%d %H:%M:%S"),
            "channel": np.where(rng.random(len(buyers)) < 0.5, "web", "app"),
            "status": "delivered",
            "payment_method": "card",
            "amount": np.round(unit_price * quantity, 2),
            "currency": "CNY",
        }
    )
    items = pd.DataFrame(
        {
            "order_item_id": [f"{o}-1" for o in order_id],
            "order_id": order_id,
            "line_no": 1,
            "product_id": products["product_id"].to_numpy()[pick],
            "quantity": quantity,
            "unit_price": unit_price,
            "discount": 0.0,
        }
    )
    landing = Path(landing)
    name = f"campaign_{campaign}_{seed}.csv"
    for source, frame in (("ecommerce_orders", orders), ("ecommerce_order_items", items)):
        (landing / source).mkdir(parents=True, exist_ok=True)
        frame.to_csv(landing / source / f"{source}_{name}", index=False)

    truth = {
        "campaign": campaign,
        "by": by,
        "uplift": {str(k): float(v) for k, v in uplift.items()},
        "base_rate": base_rate,
        "days": days,
        "seed": seed,
        "people": len(people) + unreachable,
        "unreachable_without_account": unreachable,
        "orders": len(orders),
    }
    (landing / "_truth").mkdir(parents=True, exist_ok=True)
    (landing / "_truth" / f"campaign_{campaign}.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth
