"""Review and ticket sentiment, trained offline on star-rated review text.

The model learns from whatever review corpus it is given (generated English reviews, Olist's
Portuguese ones): stars 1-2 are ``negative``, 3 ``neutral``, 4-5 ``positive``. Word n-grams
carry the vocabulary; character n-grams (within word boundaries) absorb typos, missing accents
and Portuguese inflection. The continuous score is ``P(positive) - P(negative)`` in [-1, 1].

Texts without stars (service tickets) are scored by the model trained on reviews. Each unique
text is tokenised once: ``fit_and_score`` (the asset's path) trains, evaluates on held-out
reviews and scores every text from one TF-IDF pass, and repeated (templated) texts are scored
once. Where fewer
than ``MIN_TRAINING_REVIEWS`` labelled texts exist, ``train_sentiment`` raises
``NotEnoughReviews`` and callers pass ``model=None`` to ``score_texts`` / ``label_texts``, which
then use a small built-in English/Portuguese lexicon. Empty or missing text scores 0 and has no
label. Nothing is downloaded.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

LABELS = ("negative", "neutral", "positive")
MIN_TRAINING_REVIEWS = 200
# A lexicon score beyond this is a clear opinion; closer to 0 is neutral.
LEXICON_LABEL_THRESHOLD = 0.25


class NotEnoughReviews(ValueError):
    """Too few labelled review texts to train a classifier; use the lexicon (``model=None``)."""


def star_label(score) -> str | None:
    """1-2 stars negative, 3 neutral, 4-5 positive; anything else None."""
    import pandas as pd

    if score is None or pd.isna(score):
        return None
    score = int(score)
    if score in (1, 2):
        return "negative"
    if score == 3:
        return "neutral"
    if score in (4, 5):
        return "positive"
    return None


def _clean(texts: Iterable) -> list[str]:
    return ["" if t is None or (isinstance(t, float) and np.isnan(t)) else str(t).strip() for t in texts]


def sentiment_estimator(random_state: int = 0) -> Pipeline:
    """Unfitted TF-IDF (word 1-2 + char 2-5 grams) + logistic regression pipeline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    shared = {"min_df": 2, "sublinear_tf": True, "strip_accents": "unicode", "lowercase": True}
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), **shared)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), **shared)),
        ]
    )
    # Balanced weights: the neutral class is small (8% of Olist texts) and would otherwise
    # almost never be predicted; this trades ~3 points of accuracy for ~6 of macro-F1.
    classifier = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=random_state)
    return Pipeline([("features", features), ("classifier", classifier)])


def _factorize(texts: Sequence) -> tuple[np.ndarray, list[str]]:
    """Per input its index among the unique cleaned texts, and those texts ("" for empty or
    missing). Templated reviews and tickets repeat: each unique text is tokenised only once."""
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(_clean(texts), dtype=object))
    return codes, list(uniques)


def _star_labels(scores: Sequence) -> list[str | None]:
    import pandas as pd

    stars = pd.Series(list(scores), dtype=object)
    by_value = {value: star_label(value) for value in stars.dropna().unique()}
    return [None if pd.isna(value) else by_value[value] for value in stars]


def _labelled_rows(codes: np.ndarray, uniques: list[str], scores: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Rows with text and a star label, and those labels."""
    if len(codes) != len(scores):
        raise ValueError(f"{len(codes)} texts but {len(scores)} star scores")
    labels = _star_labels(scores)
    rows = [i for i, (code, label) in enumerate(zip(codes, labels)) if label is not None and uniques[code]]
    return np.asarray(rows, dtype=int), np.asarray([labels[i] for i in rows], dtype=object)


def _enough(y: np.ndarray) -> None:
    if len(y) < MIN_TRAINING_REVIEWS or len(set(y)) < 2:
        raise NotEnoughReviews(
            f"{len(y)} labelled review texts in {len(set(y))} classes; need at least "
            f"{MIN_TRAINING_REVIEWS} in 2 classes to train. Score with the lexicon (model=None)."
        )


def _fit_tfidf(vectoriser: TfidfVectorizer, fit_texts: list[str], rows: np.ndarray, rest_texts: list[str]):
    """Fit ``vectoriser`` on distinct texts that stand for ``rows[i]`` rows each, exactly as if it
    were fitted on the rows (document frequencies, ``min_df`` and IDF count rows), tokenising each
    text once. Returns the TF-IDF matrices of ``fit_texts`` and ``rest_texts``."""
    from sklearn.feature_extraction.text import CountVectorizer

    counter = CountVectorizer(
        **{k: v for k, v in vectoriser.get_params().items() if k in CountVectorizer().get_params()}
    ).set_params(min_df=1, max_df=1.0, max_features=None)
    counts = counter.fit_transform(fit_texts)
    n_rows = int(rows.sum())
    document_frequency = np.asarray((counts > 0).T @ rows).ravel()
    min_df = vectoriser.min_df if isinstance(vectoriser.min_df, int) else vectoriser.min_df * n_rows
    max_df = vectoriser.max_df if isinstance(vectoriser.max_df, int) else vectoriser.max_df * n_rows
    keep = np.flatnonzero((document_frequency >= min_df) & (document_frequency <= max_df))
    if not len(keep):
        raise ValueError("no term is frequent enough to train on; add reviews or lower min_df")
    terms = sorted(counter.vocabulary_, key=counter.vocabulary_.get)
    vectoriser.vocabulary_ = {terms[i]: j for j, i in enumerate(keep)}
    vectoriser.fixed_vocabulary_ = False
    smooth = int(vectoriser.smooth_idf)
    vectoriser.idf_ = np.log((n_rows + smooth) / (document_frequency[keep] + smooth)) + 1.0
    # The weighting the idf_ setter built; vectoriser.transform(fit_texts) would tokenise them again.
    fitted = vectoriser._tfidf.transform(counts[:, keep].astype(np.float64))
    rest = vectoriser.transform(rest_texts) if rest_texts else None
    return fitted, rest


def _vectorise(vectoriser: FeatureUnion, uniques: list[str], fit_codes: np.ndarray):
    """The TF-IDF matrix of every unique text (row i = ``uniques[i]``) from one pass: the
    vocabulary and IDF are fitted on the training rows ``fit_codes`` (indices into ``uniques``,
    repeated as often as the text occurs), the other texts transformed."""
    from scipy import sparse

    fit_ids, rows = np.unique(fit_codes, return_counts=True)
    rest = np.setdiff1d(np.arange(len(uniques)), fit_ids, assume_unique=True)
    fit_texts, rest_texts = [uniques[i] for i in fit_ids], [uniques[i] for i in rest]
    fitted, others = [], []
    for _, part in vectoriser.transformer_list:
        fit_part, rest_part = _fit_tfidf(part, fit_texts, rows, rest_texts)
        fitted.append(fit_part)
        others.append(rest_part)
    blocks = [sparse.hstack(fitted, format="csr")]
    if len(rest):
        blocks.append(sparse.hstack(others, format="csr"))
    position = np.empty(len(uniques), dtype=int)
    position[np.concatenate([fit_ids, rest])] = np.arange(len(uniques))
    return sparse.vstack(blocks, format="csr")[position]


def _fit_classifier(classifier: LogisticRegression, X_unique, codes: np.ndarray, y: np.ndarray):
    """Fit on labelled rows given as (unique text, label): each distinct pair once, weighted by
    how often it occurs times its class's balanced weight over the rows. The same loss as one row
    per review with ``class_weight="balanced"``, on far fewer rows when texts repeat."""
    import pandas as pd

    pairs = pd.DataFrame({"text": codes, "label": y}).value_counts().reset_index(name="rows")
    classes, counts = np.unique(y, return_counts=True)
    balanced = dict(zip(classes, len(y) / (len(classes) * counts), strict=True))
    weight = pairs["rows"].to_numpy() * pairs["label"].map(balanced).to_numpy()
    classifier.set_params(class_weight=None)
    return classifier.fit(X_unique[pairs["text"].to_numpy()], pairs["label"].to_numpy(), sample_weight=weight)


def _split(y: np.ndarray, test_size: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of the labelled rows (plain when a class has a single row)."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    stratify = y if pd.Series(y).value_counts().min() >= 2 else None
    return train_test_split(
        np.arange(len(y)), test_size=test_size, random_state=random_state, stratify=stratify
    )


def _from_proba(proba: np.ndarray, classes: list) -> tuple[np.ndarray, np.ndarray]:
    """(P(positive) - P(negative), most likely class) per row of ``proba``."""
    column = {label: proba[:, classes.index(label)] if label in classes else 0.0 for label in LABELS}
    return column["positive"] - column["negative"], np.asarray(classes, dtype=object)[proba.argmax(axis=1)]


def _lexicon_label(score: float) -> str:
    if score > LEXICON_LABEL_THRESHOLD:
        return "positive"
    return "negative" if score < -LEXICON_LABEL_THRESHOLD else "neutral"


def _by_unique(uniques: list[str], model: Pipeline | None, X_unique=None) -> tuple[np.ndarray, np.ndarray]:
    """Score and label of each unique text (0 and None for the empty one)."""
    scores = np.zeros(len(uniques))
    labels = np.full(len(uniques), None, dtype=object)
    present = np.array([i for i, t in enumerate(uniques) if t], dtype=int)
    if not len(present):
        return scores, labels
    if model is None:
        scores[present] = [lexicon_score(uniques[i]) for i in present]
        labels[present] = [_lexicon_label(s) for s in scores[present]]
        return scores, labels
    classifier = model.named_steps["classifier"]
    if X_unique is None:
        proba = model.predict_proba([uniques[i] for i in present])
    else:
        proba = classifier.predict_proba(X_unique[present])
    scores[present], labels[present] = _from_proba(proba, list(classifier.classes_))
    return scores, labels


def score_and_label(model: Pipeline | None, texts: Sequence) -> tuple[np.ndarray, list[str | None]]:
    """``score_texts`` and ``label_texts`` of ``texts`` from one pass over the unique ones."""
    codes, uniques = _factorize(texts)
    scores, labels = _by_unique(uniques, model)
    return scores[codes], labels[codes].tolist()


def train_sentiment(texts: Sequence, scores: Sequence, random_state: int = 0) -> Pipeline:
    """Fit the classifier on reviews with text and a 1-5 star score (others are ignored)."""
    codes, uniques = _factorize(texts)
    rows, y = _labelled_rows(codes, uniques, scores)
    _enough(y)
    model = sentiment_estimator(random_state)
    X_unique = _vectorise(model.named_steps["features"], uniques, codes[rows])
    _fit_classifier(model.named_steps["classifier"], X_unique, codes[rows], y)
    return model


def score_texts(model: Pipeline | None, texts: Sequence) -> np.ndarray:
    """Sentiment in [-1, 1] per text: P(positive) - P(negative), or the lexicon score when
    ``model`` is None. Empty or missing text scores 0."""
    return score_and_label(model, texts)[0]


def label_texts(model: Pipeline | None, texts: Sequence) -> list[str | None]:
    """Most likely class per text (lexicon thresholds when ``model`` is None); None when empty."""
    return score_and_label(model, texts)[1]


def _held_out_predictions(classifier, X_unique, test_ids: np.ndarray) -> np.ndarray:
    """Predicted class of the held-out unique texts (None elsewhere)."""
    predicted = np.full(X_unique.shape[0], None, dtype=object)
    proba = classifier.predict_proba(X_unique[test_ids])
    predicted[test_ids] = np.asarray(classifier.classes_, dtype=object)[proba.argmax(axis=1)]
    return predicted


def _evaluation(uniques, test_codes: np.ndarray, y_train, y_test, predicted_unique) -> dict:
    import pandas as pd
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    predicted = predicted_unique[test_codes]
    majority = pd.Series(y_train).value_counts().idxmax()
    lexicon = {i: _lexicon_label(lexicon_score(uniques[i])) for i in np.unique(test_codes)}
    return {
        "n_train": len(y_train),
        "n_test": len(y_test),
        "accuracy": float(accuracy_score(y_test, predicted)),
        "macro_f1": float(f1_score(y_test, predicted, labels=list(LABELS), average="macro", zero_division=0)),
        "majority_class": majority,
        "majority_baseline_accuracy": float(np.mean(y_test == majority)),
        "lexicon_accuracy": float(accuracy_score(y_test, [lexicon[i] for i in test_codes])),
        "labels": list(LABELS),
        # Rows are the true class, columns the predicted one, both in ``labels`` order.
        "confusion_matrix": confusion_matrix(y_test, predicted, labels=list(LABELS)).tolist(),
    }


def fit_and_score(
    texts: Sequence, scores: Sequence, evaluate: bool = True, test_size: float = 0.2, random_state: int = 0
) -> dict:
    """Train on the texts with a star score, evaluate on held-out ones and score every text, with
    one TF-IDF pass over the unique texts.

    The vocabulary and IDF are fitted on the evaluation's training texts (``1 - test_size`` of
    the labelled ones, stratified): the held-out texts stay unseen, and the final classifier,
    fitted on every labelled text, reuses those features, so no text is tokenised twice.
    Returns ``{"model": Pipeline | None, "scores": array, "labels": list, "evaluation": dict}``;
    ``evaluation`` is ``evaluate_sentiment``'s dict or ``{"skipped": reason}``. With too few
    labelled texts ``model`` is None and the lexicon scores.
    """
    from sklearn.base import clone

    codes, uniques = _factorize(texts)
    rows, y = _labelled_rows(codes, uniques, scores)
    try:
        _enough(y)
    except NotEnoughReviews as exc:
        by_unique = _by_unique(uniques, None)
        return {
            "model": None,
            "scores": by_unique[0][codes],
            "labels": by_unique[1][codes].tolist(),
            "evaluation": {"skipped": str(exc)},
        }
    model = sentiment_estimator(random_state)
    train = test = None
    evaluation: dict = {"skipped": "not asked for"}
    if evaluate:
        try:
            train, test = _split(y, test_size, random_state)
            _enough(y[train])
        except ValueError as exc:  # NotEnoughReviews is one
            train = test = None
            evaluation = {"skipped": str(exc)}
    fit_rows = rows if train is None else rows[train]
    X_unique = _vectorise(model.named_steps["features"], uniques, codes[fit_rows])
    if train is not None:
        held_out = clone(model.named_steps["classifier"])
        _fit_classifier(held_out, X_unique, codes[rows[train]], y[train])
        test_codes = codes[rows[test]]
        predicted = _held_out_predictions(held_out, X_unique, np.unique(test_codes))
        evaluation = _evaluation(uniques, test_codes, y[train], y[test], predicted)
    _fit_classifier(model.named_steps["classifier"], X_unique, codes[rows], y)
    by_unique = _by_unique(uniques, model, X_unique)
    return {
        "model": model,
        "scores": by_unique[0][codes],
        "labels": by_unique[1][codes].tolist(),
        "evaluation": evaluation,
    }


def evaluate_sentiment(
    texts: Sequence, scores: Sequence, test_size: float = 0.2, random_state: int = 0
) -> dict:
    """Hold out ``test_size`` of the labelled reviews (stratified), train on the rest and report
    3-class accuracy and macro-F1 against the majority-class baseline and the lexicon."""
    codes, uniques = _factorize(texts)
    rows, y = _labelled_rows(codes, uniques, scores)
    train, test = _split(y, test_size, random_state)
    _enough(y[train])
    model = sentiment_estimator(random_state)
    # Only the training texts and the held-out ones are tokenised, each once.
    needed = np.zeros(len(uniques), dtype=bool)
    needed[codes[rows]] = True
    kept = np.flatnonzero(needed)
    remap = np.full(len(uniques), -1)
    remap[kept] = np.arange(len(kept))
    kept_uniques = [uniques[i] for i in kept]
    X_unique = _vectorise(model.named_steps["features"], kept_uniques, remap[codes[rows[train]]])
    classifier = _fit_classifier(
        model.named_steps["classifier"], X_unique, remap[codes[rows[train]]], y[train]
    )
    test_codes = remap[codes[rows[test]]]
    predicted = _held_out_predictions(classifier, X_unique, np.unique(test_codes))
    return _evaluation(kept_uniques, test_codes, y[train], y[test], predicted)


def olist_review_texts(src_dir: Path | None = None) -> pd.DataFrame:
    """Olist reviews as ``review_id, order_id, score, text`` (text = title + message on one
    line, empty when the customer wrote nothing), read with the Olist mapping's parser."""
    import pandas as pd

    from c360.ingest.mappings.olist import olist_dir, parse_olist_reviews, review_text

    path = Path(src_dir or olist_dir()) / "olist_order_reviews_dataset.csv"
    rows = parse_olist_reviews(path).rows
    return pd.DataFrame(
        {
            "review_id": rows["review_id"],
            "order_id": rows["order_id"],
            "score": rows["review_score"].astype(int),
            "text": [
                review_text(t, m)
                for t, m in zip(rows["review_comment_title"], rows["review_comment_message"])
            ],
        }
    )


HEADLINE = ("accuracy", "macro_f1", "majority_baseline_accuracy", "lexicon_accuracy", "n_train", "n_test")


def evaluate_or_reason(texts: Sequence, stars: Sequence) -> dict:
    """``evaluate_sentiment`` on a stratified 80/20 split, or ``{"skipped": reason}`` when there
    are too few labelled reviews to hold any out."""
    try:
        return evaluate_sentiment(list(texts), list(stars))
    except (NotEnoughReviews, ValueError) as exc:
        return {"skipped": str(exc)}


def olist_scores(src: Path | None = None) -> dict:
    """Held-out scores on the Olist reviews with text, or ``{"skipped": reason}`` without them."""
    from c360.ingest.mappings.olist import olist_dir

    folder = Path(src or olist_dir())
    if not (folder / "olist_order_reviews_dataset.csv").exists():
        return {"skipped": f"no Olist reviews in {folder}"}
    reviews = olist_review_texts(folder)
    reviews = reviews[reviews["text"].str.strip() != ""]
    return {"source": str(folder), **evaluate_or_reason(reviews["text"], reviews["score"])}


def sentiment_scores(
    texts: Sequence, stars: Sequence, olist_src: Path | None = None, olist: bool = True
) -> dict:
    """``{"generated": {...}, "olist": {...}}``, each with accuracy, macro-F1 and baselines, for
    ``c360 eval sentiment``. The ``ml/text_sentiment`` asset gets the same ``generated`` figures
    from ``fit_and_score`` (same split, same fits) without tokenising the texts again."""
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


# Bilingual (English / Portuguese) opinion words, accents removed, lowercase. Deliberately small:
# it is a fallback, not a model. Stems end in "*" and match any word starting with them.
_POSITIVE = """
good great excellent perfect love loved amazing awesome fantastic happy satisfied recommend
recommended fast quick quickly helpful thanks thank nice beautiful wonderful best easy works
resolved solved pleased friendly smooth reliable quality superb fine
bom boa bons boas otimo otima excelente perfeito perfeita amei adorei gostei lindo linda maravilh*
satisfeit* recomend* rapid* rapidez agil eficien* obrigad* parabens feliz top qualidade
certinho correto antes chegou confiavel conforme super
"""
_NEGATIVE = """
bad poor terrible awful horrible worst broken damaged defective late delay delayed never missing
wrong refund cancel* complaint complain disappointed disappointing angry useless
problem problems issue slow rude waste fake lost unacceptable annoyed frustrated error failed
ruim pessim* horrivel terrivel pior quebrad* danificad* defeito defeituos* atras* demor* nunca
errad* faltando falta reembolso devolu* reclama* decepcion* problema* lento lenta enganad* golpe
pirata mentira insatisfeit* absurdo descaso lixo vergonha nao_recebi
"""
_NEGATORS = {"not", "no", "never", "dont", "didnt", "doesnt", "isnt", "wasnt", "nao", "nem", "nunca", "sem"}
_TOKEN = re.compile(r"[a-z]+")
_CLAUSE_BREAK = re.compile(r"[.,;:!?\n]+")


def _lexicon(words: str) -> tuple[frozenset[str], tuple[str, ...]]:
    items = words.split()
    return frozenset(w for w in items if not w.endswith("*")), tuple(w[:-1] for w in items if w.endswith("*"))


_POS_WORDS, _POS_STEMS = _lexicon(_POSITIVE)
_NEG_WORDS, _NEG_STEMS = _lexicon(_NEGATIVE)


def _polarity(token: str) -> int:
    if token in _POS_WORDS or token.startswith(_POS_STEMS):
        return 1
    if token in _NEG_WORDS or token.startswith(_NEG_STEMS):
        return -1
    return 0


def _clauses(text: str) -> list[list[str]]:
    """Lowercase ASCII tokens per clause (negation does not cross punctuation)."""
    plain = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    plain = plain.replace("n't", "nt").replace("'", "")
    clauses = []
    for clause in _CLAUSE_BREAK.split(plain):
        tokens = _TOKEN.findall(clause)
        # "não recebi" (not received) is the commonest Olist complaint: one negative cue.
        clauses.append(
            [
                "nao_recebi" if a == "nao" and b.startswith("receb") else a
                for a, b in zip(tokens, tokens[1:] + [""])
            ]
        )
    return clauses


def lexicon_score(text: str | None) -> float:
    """Built-in English/Portuguese lexicon score in [-1, 1]; 0 for empty or opinion-free text.

    A negator ("not", "não", "nunca"...) within the two previous words of the same clause flips
    a word's polarity.
    The score is (positive - negative) / (positive + negative + 1), so one cue gives +-0.5."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return 0.0
    total = hits = 0
    for tokens in _clauses(str(text)):
        for i, token in enumerate(tokens):
            polarity = _polarity(token)
            if not polarity:
                continue
            if token != "nao_recebi" and any(t in _NEGATORS for t in tokens[max(0, i - 2) : i]):
                polarity = -polarity
            total += polarity
            hits += 1
    return float(total / (hits + 1))
