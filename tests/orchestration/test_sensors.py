"""Landing and clickstream sensors (each file once, by checksum), the cart-abandonment
micro-batch, and the run-failure alert."""

import json
import os
import shutil
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import dagster as dg
import duckdb
import pytest


@pytest.fixture(scope="module")
def platform_defs():
    """The platform's definitions (sensors, jobs and the activation assets among them)."""
    from orchestration.definitions import defs

    return defs


def _settle(path):
    old = path.stat().st_mtime - 60
    os.utime(path, (old, old))


def _tick(defs, name, instance, cursor=None):
    sensor = defs.get_sensor_def(name)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, repository_def=defs.get_repository_def()
    )
    return sensor.evaluate_tick(context)


def test_landing_sensor_requests_each_new_file_once(c360_home, platform_defs):
    from c360.ingest.loader import file_checksum, load_source
    from c360.privacy.keys import Keyring
    from c360.settings import get_settings
    from c360.warehouse import connect

    settings = get_settings()
    folder = settings.landing / "products"
    folder.mkdir(parents=True)
    new = folder / "products_2026-11-01.csv"
    new.write_text(
        "product_id,product_name,category,brand,price,launched_at,discontinued\n"
        "P1,Kettle,home,Acme,19.90,2024-01-01,false\n"
    )
    _settle(new)
    with dg.DagsterInstance.ephemeral() as instance:
        first = _tick(platform_defs, "landing_sensor", instance)
        [request] = first.run_requests
        assert request.run_key == file_checksum(new)
        keys = {k.to_user_string() for k in request.asset_selection}
        assert "raw/products" in keys and "marts/customer_360" in keys
        assert "ml/clv_model" not in keys and "ml/clv" not in keys  # retrained weekly, not per file

        # Requested but not loaded yet: the next tick does not ask again.
        assert _tick(platform_defs, "landing_sensor", instance, first.cursor).run_requests == []

        con = connect()
        load_source(con, "products", settings.landing, Keyring.load(settings))
        con.close()
        # Loaded (raw._load_log): the same bytes under another name are not new either.
        shutil.copy(new, folder / "products_copy.csv")
        _settle(folder / "products_copy.csv")
        after_load = _tick(platform_defs, "landing_sensor", instance, first.cursor)
        assert after_load.run_requests == []
        assert json.loads(after_load.cursor) == {"requested": []}
        # Web events are the clickstream sensor's, not this one's.
        (settings.landing / "web_events").mkdir()
        (settings.landing / "web_events" / "e.csv").write_text("event_id\n")
        _settle(settings.landing / "web_events" / "e.csv")
        assert _tick(platform_defs, "landing_sensor", instance, after_load.cursor).run_requests == []


def _clickstream_file(con, path, shift_hours: int) -> dict:
    """Events for three known consenting devices and one non-consenting device, after the data."""
    latest = con.execute("select max(occurred_at) from raw.web_events").fetchone()[0]
    t0 = latest + timedelta(hours=shift_hours)
    devices = con.execute(
        """
        select c.consent_push or c.consent_email as consents, m.source_record_id as device_id, c.customer_id
        from marts.identity_map m join marts.customer_360 c using (customer_id)
        where m.source = 'web_events'
        order by c.customer_id
        """
    ).fetchall()
    consenting = [d for d in devices if d[0]]
    quiet = next(d for d in devices if not d[0])
    abandoner, buyer, recent = consenting[0], consenting[1], consenting[2]
    products = [
        r[0] for r in con.execute("select product_id from raw.products order by 1 limit 4").fetchall()
    ]
    fmt = "%Y-%m-%d %H:%M:%S"
    rows = [
        ("A1", t0, abandoner[1], "add_to_cart", products[0]),
        ("B1", t0, buyer[1], "add_to_cart", products[1]),
        ("B2", t0 + timedelta(minutes=3), buyer[1], "purchase", products[1]),
        ("Q1", t0, quiet[1], "add_to_cart", products[2]),
        ("R1", t0 + timedelta(minutes=10), recent[1], "add_to_cart", products[3]),
        ("N1", t0 + timedelta(minutes=15), abandoner[1], "page_view", None),
    ]
    lines = [
        "event_id,occurred_at,session_id,device_id,user_id,event_type,product_id,search_query,channel,order_id"
    ]
    for event_id, at, device, kind, product in rows:
        lines.append(
            f"T{shift_hours}-{event_id},{at.strftime(fmt)},S-{device},{device},,{kind},{product or ''},,web,"
        )
    path.write_text("\n".join(lines) + "\n")
    return {"abandoner": abandoner[2], "buyer": buyer[2], "quiet": quiet[2], "recent": recent[2]}


def test_a_new_clickstream_file_lists_only_consenting_abandoners(
    demo_home, tmp_path, monkeypatch, platform_defs
):
    home = tmp_path / "home"
    shutil.copytree(demo_home, home, ignore=shutil.ignore_patterns("dagster", "mlflow", "reports"))
    monkeypatch.setenv("C360_HOME", str(home))
    monkeypatch.delenv("C360_WAREHOUSE", raising=False)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    new = home / "landing" / "web_events" / "web_events_live_0001.csv"
    who = _clickstream_file(con, new, shift_hours=1)
    con.close()
    _settle(new)

    with dg.DagsterInstance.ephemeral() as instance:
        tick = _tick(platform_defs, "clickstream_sensor", instance)
        [request] = tick.run_requests
        assert _tick(platform_defs, "clickstream_sensor", instance, tick.cursor).run_requests == []
        job = platform_defs.resolve_job_def("cart_abandonment_job")
        result = job.execute_in_process(run_config=request.run_config, instance=instance, tags=request.tags)
        assert result.success
        materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert materialized == {"raw/web_events", "activation/cart_abandoned"}  # no dbt rebuild
        assert [e.passed for e in result.get_asset_check_evaluations()] == [True]  # rows conserved

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    audience = dict(
        con.execute("select customer_id, minutes_since_add from activation.cart_abandoned").fetchall()
    )
    groups = dict(
        con.execute(
            "select customer_id, campaign_group from activation.campaign_assignments where campaign = 'cart_abandoned'"
        ).fetchall()
    )
    con.close()
    # The abandoner is in the campaign; contacted unless the random holdout drew them.
    assert groups[who["abandoner"]] in ("treatment", "holdout")
    assert audience.get(who["abandoner"]) == (15 if groups[who["abandoner"]] == "treatment" else None)
    assert who["buyer"] not in audience  # bought within 10 minutes
    assert who["quiet"] not in audience  # no push or email consent
    assert who["recent"] not in audience  # only 5 minutes old


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_failed_run_is_recorded_posted_and_handed_to_the_command(c360_home, tmp_path, monkeypatch):
    from orchestration.alerts.sensors import run_failure_alert_sensor

    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("C360_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/alert")
    monkeypatch.setenv("C360_ALERT_COMMAND", f"cat > {tmp_path / 'command_got.json'}")

    @dg.op
    def open_warehouse():
        raise RuntimeError('IO Error: Could not set lock on file "warehouse.duckdb"')

    @dg.job
    def nightly():
        open_warehouse()

    with dg.DagsterInstance.ephemeral() as instance:
        result = nightly.execute_in_process(instance=instance, raise_on_error=False)
        run = instance.get_run_by_id(result.run_id)
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=failure,
        ).for_run_failure()
        run_failure_alert_sensor(context)
    server.shutdown()

    [alert] = [json.loads(line) for line in (c360_home / "reports" / "alerts.jsonl").read_text().splitlines()]
    assert alert["run_id"] == result.run_id and alert["job"] == "nightly"
    assert alert["failures"][0]["step"] == "open_warehouse"
    assert "Could not set lock" in alert["failures"][0]["error"]
    assert "Close it, then re-execute the run from failure" in alert["what_to_do"]
    assert alert["hooks"] == {"webhook": "ok", "command": "ok"}
    assert _Hook.received[0]["run_id"] == result.run_id
    assert json.loads((tmp_path / "command_got.json").read_text())["run_id"] == result.run_id
