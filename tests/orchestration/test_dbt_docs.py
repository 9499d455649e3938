"""The dbt docs site is generated again only when what it shows changed: the project (manifest)
or the warehouse's relations and columns (the catalog). A daily run that adds rows only keeps the
site as it is, which is still exact."""

import json

import dagster as dg
import duckdb

from orchestration.dbt.assets import DBT_DOCS_KEY, dbt_docs
from orchestration.dbt.definitions import defs as dbt_defs
from orchestration.resources import WarehouseResource


def build_docs(warehouse) -> bool:
    result = dg.materialize(
        [dbt_docs],
        resources={"dbt": dbt_defs.resources["dbt"], "warehouse": WarehouseResource(path=str(warehouse))},
    )
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == DBT_DOCS_KEY]
    return event.materialization.metadata["regenerated"].value


def test_docs_regenerate_only_when_the_project_or_the_warehouse_layout_changed(demo_copy, monkeypatch):
    home = demo_copy("warehouse.duckdb")
    warehouse = home / "warehouse.duckdb"
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    catalog = home / "dbt" / "docs" / "catalog.json"

    assert build_docs(warehouse)
    assert catalog.exists()
    generated = catalog.stat().st_mtime_ns

    # New rows only (a daily run): the site stays.
    con = duckdb.connect(str(warehouse))
    con.execute("insert into raw.service_tickets select * from raw.service_tickets limit 1")
    con.close()
    assert not build_docs(warehouse)
    assert catalog.stat().st_mtime_ns == generated

    # A new column: the catalog must show it.
    con = duckdb.connect(str(warehouse))
    con.execute("alter table marts.customer_360 add column docs_probe integer")
    con.close()
    assert build_docs(warehouse)
    columns = json.loads(catalog.read_text())["nodes"]["model.customer_360.customer_360"]["columns"]
    assert "docs_probe" in {name.lower() for name in columns}
