"""The promotion gate of every registered model, as a blocking asset check.

Each model follows one lifecycle: its training asset fits, logs the run with its lineage and
registers a new version as ``@challenger`` (``ml.registry.register_challenger``), recording
``model_version``, ``promotion_margin`` and (optionally) ``promotion_floor`` in its
materialization; this check then moves ``@champion`` to it when it wins
(``ml.registry.promote_challenger``) and fails, blocking the scoring assets downstream, only
when no acceptable champion is left.
"""

import dagster as dg

from ml import registry


def model_metadata(version: int, margin: float, floor: float | None = None) -> dict:
    """What the training asset records for its gate."""
    return {"model_version": version, "promotion_margin": margin} | (
        {"promotion_floor": floor} if floor is not None else {}
    )


def build_champion_gate(
    model_key: dg.AssetKey, model_name: str, metric: str, higher_is_better: bool = True
) -> dg.AssetChecksDefinition:
    direction = "higher" if higher_is_better else "lower"

    @dg.asset_check(
        asset=model_key,
        name=f"{model_name}_champion_gate",
        blocking=True,
        description=f"Promotion gate: the new `{model_name}` version (@challenger) becomes @champion only "
        f"if its {metric} ({direction} is better) clears the floor and beats the champion's by the "
        f"margin (config of {model_key.to_user_string()}). Fails, blocking scoring, when no "
        "acceptable champion remains.",
    )
    def _gate(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        event = context.instance.get_latest_materialization_event(model_key)
        if event is None or event.asset_materialization is None:
            return dg.AssetCheckResult(
                passed=False, metadata={"reason": f"{model_key.to_user_string()} was never materialized"}
            )
        meta = event.asset_materialization.metadata
        if "model_version" not in meta:  # e.g. the recommender's spark_als engine registers nothing
            return dg.AssetCheckResult(
                passed=True, metadata={"reason": "the last materialization registered no model version"}
            )
        floor = meta.get("promotion_floor")
        registry.configure()
        outcome = registry.promote_challenger(
            model_name,
            int(meta["model_version"].value),
            metric,
            higher_is_better=higher_is_better,
            margin=float(meta["promotion_margin"].value),
            floor=float(floor.value) if floor is not None else None,
        )
        context.log.info(outcome["reason"])
        return dg.AssetCheckResult(
            passed=outcome["has_acceptable_champion"],
            metadata={k: v for k, v in outcome.items() if v is not None},
        )

    return _gate


def lineage(context: dg.AssetExecutionContext, warehouse) -> dict:
    """``ml.registry.log_lineage`` arguments that say which run and warehouse trained a model."""
    from c360.settings import get_settings

    return {
        "dagster_run_id": context.run.run_id,
        "asset_key": context.asset_key.to_user_string(),
        "warehouse": f"duckdb://{warehouse.path or get_settings().warehouse}",
    }
