import csv
from pathlib import Path

import pandas as pd
import pytest

from c360.contracts import SOURCES
from c360.ingest.mappings import MAPPINGS
from c360.ingest.mappings.olist import (
    ORDER_STATUSES,
    OUTPUT_FILES,
    PERSON_SOURCES,
    REVIEW_COLUMNS,
    map_olist,
    olist_dir,
    parse_olist_reviews,
)

OLIST = olist_dir()
MISSING = f"Olist sample not found at {OLIST} (set C360_OLIST_DIR; it is not redistributed in the repo)"
needs_olist = pytest.mark.skipif(not (OLIST / "olist_orders_dataset.csv").exists(), reason=MISSING)
A, B, C, D = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)
TS = "2018-01-01 00:00:00,2018-01-02 10:00:00"


def read_landing(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    if not (OLIST / "olist_orders_dataset.csv").exists():
        pytest.skip(MISSING)
    out = tmp_path_factory.mktemp("landing")
    summary = map_olist(OLIST, out)
    frames = {source: read_landing(path) for source, path in summary["files"].items()}
    return summary, frames, read_landing(summary["truth_file"])


def test_olist_is_registered_as_a_mapping():
    assert MAPPINGS["olist"] is map_olist


def test_parser_reassembles_unquoted_commas_and_multiline_comments_and_reports_the_rest(tmp_path):
    src = tmp_path / "reviews.csv"
    src.write_text(
        ",".join(REVIEW_COLUMNS) + "\n"
        "stray text before any record\n"
        f"{A},{B},5,Bom,entrega rapida, produto bom, recomendo,{TS}\n"
        f'{B},{C},1,,"chegou quebrado,\r\nnao recomendo\r\n""nunca mais""",{TS}\n'
        f"{C},{D},3,sem data no fim\n"
        f"{D},{A},4,,,{TS}\n",
        encoding="utf-8",
    )
    parsed = parse_olist_reviews(src)
    assert [(u.line, u.reason) for u in parsed.unparsed] == [
        (2, "text before the first review record"),
        (7, "does not end with two timestamps"),
    ]
    assert parsed.ambiguous_lines == [3]
    rows = parsed.rows.set_index("review_id")
    assert rows.loc[A, "review_comment_message"] == "entrega rapida, produto bom, recomendo"
    assert rows.loc[B, "review_comment_message"] == 'chegou quebrado,\r\nnao recomendo\r\n"nunca mais"'
    assert rows.loc[D, ["review_comment_title", "review_comment_message"]].tolist() == ["", ""]
    assert rows["line"].tolist() == [3, 4, 8]


def test_parser_rejects_a_file_that_is_not_the_review_table(tmp_path):
    src = tmp_path / "reviews.csv"
    src.write_text("review_id,score\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is not the Olist review header"):
        parse_olist_reviews(src)


@needs_olist
def test_parser_recovers_all_8225_olist_reviews_exactly_as_a_csv_reader_does():
    parsed = parse_olist_reviews(OLIST / "olist_order_reviews_dataset.csv")
    assert parsed.unparsed == [] and parsed.ambiguous_lines == []
    with open(OLIST / "olist_order_reviews_dataset.csv", newline="", encoding="utf-8") as fh:
        reference = list(csv.reader(fh))[1:]
    assert len(parsed.rows) == 8225
    assert parsed.rows[REVIEW_COLUMNS].values.tolist() == reference


def test_every_written_file_has_exactly_the_contract_columns(mapped):
    summary, frames, _ = mapped
    assert set(frames) == set(OUTPUT_FILES)
    for source, path in summary["files"].items():
        with open(path, newline="", encoding="utf-8") as fh:
            assert next(csv.reader(fh)) == SOURCES[source].column_names, source


def test_row_counts_match_the_olist_sample(mapped):
    summary, frames, _ = mapped
    source_items = len(pd.read_csv(OLIST / "olist_order_items_dataset.csv", dtype=str))
    expected = {
        "crm_customers": 8135,
        "ecommerce_orders": 8135,
        "ecommerce_order_items": source_items,
        "product_reviews": 8225,
        "products": 5460,
    }
    assert {s: len(f) for s, f in frames.items()} == expected == summary["rows"]
    assert summary["reviews_unparsed"] == []


def test_keys_are_unique_and_required_columns_filled_except_reviews_of_itemless_orders(mapped):
    summary, frames, _ = mapped
    for source, frame in frames.items():
        contract = SOURCES[source]
        assert frame[contract.key].is_unique, source
        for col in (c.name for c in contract.columns if c.required):
            empty = int((frame[col] == "").sum())
            if (source, col) == ("product_reviews", "product_id"):
                assert empty == summary["reviews_without_product"] == 778
            else:
                assert empty == 0, (source, col)


def test_files_are_single_line_rfc4180(mapped):
    summary, frames, _ = mapped
    for source, path in summary["files"].items():
        raw = path.read_text(encoding="utf-8")
        assert "\r" not in raw
        assert raw.count("\n") == len(frames[source]) + 1, source
        with open(path, newline="", encoding="utf-8") as fh:
            widths = {len(row) for row in csv.reader(fh)}
        assert widths == {len(SOURCES[source].columns)}, source


def test_review_text_with_commas_and_line_breaks_comes_out_intact_on_one_line(mapped):
    _, frames, _ = mapped
    text = frames["product_reviews"].set_index("order_id")["text"]
    # A comment with commas (quoted in the source) and one spanning two lines (CRLF inside).
    assert text["cadd4c5765abf658117f2cc7e2a639c2"].startswith(
        "prazo entrega Espero receber esta semana, o que não seria tão extravagante, porém...mais atrazo"
    )
    assert text["2e5dc86c8c4aa663549caf5e31de840d"] == (
        "fiz minha compra faz 30 dias e não recebi ainda meu produto. Precisa melhorar nas entregas"
    )
    assert text["4540a046d78b66514285266847c73d3c"] == (
        "Produto de qualidade, preço justo, entrega dentro do prazo. "
        "O produto atendeu as minhas expectativas. Recomendo o vendedor."
    )


def test_identity_truth_covers_every_person_record_written(mapped):
    _, frames, truth = mapped
    expected = {(source, key) for source in PERSON_SOURCES for key in frames[source][SOURCES[source].key]}
    assert set(zip(truth["source"], truth["source_record_id"])) == expected
    assert len(truth) == len(expected)
    assert (truth["person_id"] != "").all()
    assert truth["person_id"].nunique() == 8016


def test_default_shop_account_is_the_person_so_one_persons_orders_share_it(mapped):
    _, frames, truth = mapped
    orders = frames["ecommerce_orders"]
    person = truth[truth["source"] == "ecommerce_orders"].set_index("source_record_id")["person_id"]
    assert (orders["account_id"] == orders["order_id"].map(person)).all()
    assert orders["account_id"].nunique() == 8016


@needs_olist
def test_guest_checkout_mode_gives_every_order_its_own_account(tmp_path):
    summary = map_olist(OLIST, tmp_path, account_key="customer_id")
    orders = read_landing(summary["files"]["ecommerce_orders"])
    reviews = read_landing(summary["files"]["product_reviews"])
    assert orders["account_id"].nunique() == 8135
    assert set(reviews["account_id"]) <= set(orders["account_id"])
    assert read_landing(summary["truth_file"])["person_id"].nunique() == 8016


def test_unknown_account_key_is_refused(tmp_path):
    with pytest.raises(ValueError, match="account_key must be"):
        map_olist(tmp_path, tmp_path, account_key="email")


def test_order_values_stay_in_the_contract_vocabulary(mapped):
    _, frames, _ = mapped
    orders = frames["ecommerce_orders"]
    assert set(orders["status"]) == set(ORDER_STATUSES.values())
    assert set(orders["payment_method"]) == {"card", ""}
    assert set(orders["channel"]) == {"web"} and set(orders["currency"]) == {"BRL"}
    assert (orders["amount"].astype(float) >= 0).all()
    items = frames["ecommerce_order_items"]
    assert set(items["product_id"]) <= set(frames["products"]["product_id"])
    assert set(items["order_id"]) <= set(orders["order_id"])


@needs_olist
def test_the_olist_sample_loads_through_every_quality_gate(tmp_path):
    # A real second shop must pass the raw gates: its own currency (BRL) and its own product
    # categories are not data errors. `c360 eval identity` builds Olist this way.
    import os
    import subprocess
    import sys

    env = dict(os.environ, C360_HOME=str(tmp_path / "home"), DAGSTER_HOME=str(tmp_path / "home" / "dagster"))
    cli = [sys.executable, "-m", "cli.main"]
    subprocess.run([*cli, "keys", "init", "--if-missing"], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [*cli, "ingest", "--mapping", "olist", "--src", str(OLIST)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "check failed" not in done.stdout
    # The process ends without Python's teardown (cli/process.py): the run closed the warehouse
    # itself, so nothing is left in a write-ahead log for the next open to replay.
    assert (tmp_path / "home" / "warehouse.duckdb").exists()
    assert not list((tmp_path / "home").glob("*.wal"))
