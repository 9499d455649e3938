"""``c360 eval sentiment``: held-out accuracy of the review/ticket sentiment model, on the
platform's own reviews and on the real Olist reviews (Portuguese), against the majority-class and
lexicon baselines (``ml.sentiment.sentiment_scores``, which the ``ml/text_sentiment`` asset
reports too).
"""

from pathlib import Path

import click
import duckdb

from ml import sentiment

# A template, not an f-string on orchestration's TEXTS_TABLE: importing orchestration at module
# level would load Dagster (seconds) for every `c360` command, `--help` included.
REVIEW_TEXTS_SQL = """
select text, stars from {texts_table}
where source = 'product_reviews' and stars is not null and nullif(trim(text), '') is not null
order by record_id
"""


def warehouse_reviews(warehouse: Path) -> tuple[list[str], list[int]]:
    from orchestration.customer.assets import TEXTS_TABLE

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(REVIEW_TEXTS_SQL.format(texts_table=TEXTS_TABLE)).fetchall()
    finally:
        con.close()
    return [t for t, _ in rows], [int(s) for _, s in rows]


def _print(console, payload: dict) -> None:
    from rich.table import Table

    table = Table(title="Sentiment: held-out 3-class accuracy (20% of labelled reviews)")
    corpora = [c for c, s in payload.items() if isinstance(s, dict) and "skipped" not in s]
    for col in ("metric", *corpora):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key in sentiment.HEADLINE:
        cells = [payload[c].get(key) for c in corpora]
        table.add_row(key, *(f"{v:.3f}" if isinstance(v, float) else f"{v:,}" for v in cells))
    console.print(table)
    for corpus, scores in payload.items():
        if isinstance(scores, dict) and "skipped" in scores:
            console.print(f"{corpus}: skipped ({scores['skipped']})")


@click.command(
    "sentiment",
    help="Held-out accuracy of the sentiment model on the generated reviews in the warehouse "
    "and on the Olist reviews; writes reports/eval_sentiment.json.",
)
@click.option("--olist/--no-olist", default=True, help="Also evaluate on the Olist reviews.")
@click.option("--olist-src", type=click.Path(path_type=Path), default=None, help="Olist folder.")
def eval_sentiment_command(olist: bool, olist_src: Path | None) -> None:
    from rich.console import Console

    from c360.settings import get_settings
    from cli.evals import write_report
    from orchestration.customer.assets import TEXTS_TABLE

    settings = get_settings()
    if not settings.warehouse.exists():
        raise click.ClickException(f"no warehouse at {settings.warehouse}: run `c360 run` (make demo) first")
    try:
        texts, stars = warehouse_reviews(settings.warehouse)
    except duckdb.CatalogException as exc:
        raise click.ClickException(f"{TEXTS_TABLE} is missing: run `c360 run` first ({exc})") from exc
    payload = sentiment.sentiment_scores(texts, stars, olist_src, olist)
    console = Console()
    _print(console, payload)
    console.print(f"written {write_report('sentiment', payload)}")
