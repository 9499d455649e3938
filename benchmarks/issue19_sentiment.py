"""Issue 19, sentiment: the ``ml/text_sentiment`` asset's work before (train, evaluate on a fresh
fit, score, label: four TF-IDF passes over every text) and after (``ml.sentiment.fit_and_score``:
one pass over the unique texts), side by side in one process; and the Olist held-out accuracy.

    .venv/bin/python benchmarks/issue19_sentiment.py --warehouse W [--olist DIR] [--repeat 1]
        [--before COMMIT]

``--repeat k`` concatenates the warehouse's texts k times (a larger, equally templated corpus).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml import sentiment as after

TEXTS_SQL = "select source, record_id, text, stars from intermediate.int_customer_texts_unioned"


def load_before(commit: str):
    source = subprocess.run(
        ["git", "show", f"{commit}:ml/sentiment.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "sentiment_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("sentiment_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sentiment_before"] = module
    spec.loader.exec_module(module)
    return module


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return value, round(time.perf_counter() - wall, 2), round(time.process_time() - cpu, 2)


def asset_before(module, texts: pd.DataFrame):
    reviews = texts[texts["source"] == "product_reviews"]
    model = module.train_sentiment(reviews["text"], reviews["stars"])
    labelled = reviews[reviews["stars"].notna() & reviews["text"].fillna("").str.strip().ne("")]
    evaluation = module.evaluate_or_reason(labelled["text"], labelled["stars"])
    scores = module.score_texts(model, texts["text"])
    labels = module.label_texts(model, texts["text"])
    return evaluation, scores, labels


def asset_after(texts: pd.DataFrame):
    stars = texts["stars"].where(texts["source"] == "product_reviews")
    result = after.fit_and_score(texts["text"], stars)
    return result["evaluation"], result["scores"], result["labels"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="4d42bfb")
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--olist", type=Path)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    before = load_before(args.before)
    con = duckdb.connect(args.warehouse, read_only=True)
    texts = con.execute(TEXTS_SQL).df()
    con.close()
    texts = pd.concat([texts] * args.repeat, ignore_index=True)
    report = {
        "texts": len(texts),
        "unique_texts": int(texts["text"].fillna("").str.strip().nunique()),
        "reviews_with_stars": int(texts["stars"].notna().sum()),
    }
    (ev_b, s_b, l_b), wall_b, cpu_b = timed(lambda: asset_before(before, texts))
    report["before"] = {
        "wall_s": wall_b,
        "cpu_s": cpu_b,
        "generated": {k: ev_b.get(k) for k in after.HEADLINE},
    }
    (ev_a, s_a, l_a), wall_a, cpu_a = timed(lambda: asset_after(texts))
    report["after"] = {
        "wall_s": wall_a,
        "cpu_s": cpu_a,
        "generated": {k: ev_a.get(k) for k in after.HEADLINE},
    }
    report["labels_agree"] = float(np.mean(np.asarray(l_a, dtype=object) == np.asarray(l_b, dtype=object)))
    report["score_max_abs_diff"] = float(np.max(np.abs(np.asarray(s_a) - np.asarray(s_b))))
    if args.olist:
        for label, module in (("before", before), ("after", after)):
            scores, wall, cpu = timed(lambda module=module: module.olist_scores(args.olist))
            report[f"olist_{label}"] = {
                "wall_s": wall,
                "cpu_s": cpu,
                **{k: scores.get(k) for k in after.HEADLINE},
            }
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
