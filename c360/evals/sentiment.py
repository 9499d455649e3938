"""Held-out accuracy of the review/ticket sentiment model, on the platform's own reviews and on
the real Olist reviews (Portuguese), against the majority-class and lexicon baselines.

``sentiment_scores`` is shared by the ``ml/text_sentiment`` asset (materialization metadata) and
the ``c360 eval sentiment`` command (``reports/eval_sentiment.json``).
"""

from collections.abc import Sequence
from pathlib import Path

import duckdb

from ml import sentiment

TEXTS_TABLE = "intermediate.int_customer_texts_unioned"
REVIEW_TEXTS_SQL = f"""
select text, stars from {TEXTS_TABLE}
where source = 'product_reviews' and stars is not null and nullif(trim(text), '') is not null
order by record_id
"""
HEADLINE = ("accuracy", "macro_f1", "majority_baseline_accuracy", "lexicon_accuracy", "n_train", "n_test")


def evaluate_or_reason(texts: Sequence, stars: Sequence) -> dict:
    """``evaluate_sentiment`` on a stratified 80/20 split, or ``{"skipped": reason}`` when there
    are too few labelled reviews to hold any out."""
    try:
        return sentiment.evaluate_sentiment(list(texts), list(stars))
    except (sentiment.NotEnoughReviews, ValueError) as exc:
        return {"skipped": str(exc)}


def olist_scores(src: Path | None = None) -> dict:
    """Held-out scores on the Olist reviews with text, or ``{"skipped": reason}`` without them."""
    from c360.ingest.mappings.olist import olist_dir

    folder = Path(src or olist_dir())
    if not (folder / "olist_order_reviews_dataset.csv").exists():
        return {"skipped": f"no Olist reviews in {folder}"}
    reviews = sentiment.olist_review_texts(folder)
    reviews = reviews[reviews["text"].str.strip() != ""]
    return {"source": str(folder), **evaluate_or_reason(reviews["text"], reviews["score"])}


def sentiment_scores(
    texts: Sequence, stars: Sequence, olist_src: Path | None = None, olist: bool = True
) -> dict:
    """``{"generated": {...}, "olist": {...}}``, each with accuracy, macro-F1 and baselines."""
    payload = {"generated": evaluate_or_reason(texts, stars)}
    if olist:
        payload["olist"] = olist_scores(olist_src)
    return payload


def flat_metrics(payload: dict) -> dict[str, float]:
    """``generated_accuracy``, ``olist_macro_f1``... for MLflow and metadata."""
    return {
        f"{corpus}_{key}": float(scores[key])
        for corpus, scores in payload.items()
        if isinstance(scores, dict)
        for key in HEADLINE
        if key in scores
    }


def warehouse_reviews(warehouse: Path) -> tuple[list[str], list[int]]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(REVIEW_TEXTS_SQL).fetchall()
    finally:
        con.close()
    return [t for t, _ in rows], [int(s) for _, s in rows]


def _print(console, payload: dict) -> None:
    from rich.table import Table

    table = Table(title="Sentiment: held-out 3-class accuracy (20% of labelled reviews)")
    corpora = [c for c, s in payload.items() if isinstance(s, dict) and "skipped" not in s]
    for col in ("metric", *corpora):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key in HEADLINE:
        cells = [payload[c].get(key) for c in corpora]
        table.add_row(key, *(f"{v:.3f}" if isinstance(v, float) else f"{v:,}" for v in cells))
    console.print(table)
    for corpus, scores in payload.items():
        if isinstance(scores, dict) and "skipped" in scores:
            console.print(f"{corpus}: skipped ({scores['skipped']})")


def _command():
    import click

    @click.command(
        help="Held-out accuracy of the sentiment model on the generated reviews in the warehouse "
        "and on the Olist reviews; writes reports/eval_sentiment.json."
    )
    @click.option("--olist/--no-olist", default=True, help="Also evaluate on the Olist reviews.")
    @click.option("--olist-src", type=click.Path(path_type=Path), default=None, help="Olist folder.")
    def eval_sentiment(olist: bool, olist_src: Path | None) -> None:
        from rich.console import Console

        from c360.cli import write_report
        from c360.settings import get_settings

        settings = get_settings()
        if not settings.warehouse.exists():
            raise click.ClickException(
                f"no warehouse at {settings.warehouse}: run `c360 run` (make demo) first"
            )
        try:
            texts, stars = warehouse_reviews(settings.warehouse)
        except duckdb.CatalogException as exc:
            raise click.ClickException(f"{TEXTS_TABLE} is missing: run `c360 run` first ({exc})") from exc
        payload = sentiment_scores(texts, stars, olist_src, olist)
        console = Console()
        _print(console, payload)
        console.print(f"written {write_report('sentiment', payload)}")

    return eval_sentiment


eval_sentiment_command = _command()
