"""Behaviour segments: k-means on how customers buy (category mix, time of day, promotion
sensitivity, channel), k chosen by silhouette, each cluster named from its centroid.

Input: one row per customer with share columns (``share_web`` ... ``share_night``,
``promotion_sensitivity`` and one ``category_<name>`` spend share per category), as built by the
segments asset from ``int_customer_behaviour_summarised``. Features are standardised, so a
rare but distinctive habit (night buying) weighs as much as a common one.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from sklearn.pipeline import Pipeline

CHANNELS = ("web", "app", "store")
TIMES_OF_DAY = ("morning", "afternoon", "evening", "night")
CATEGORY_PREFIX = "category_"
DEFAULT_K_RANGE = range(3, 9)
SILHOUETTE_SAMPLE = 3000
# A refit keeps the k in use unless another k's silhouette beats it by this much. On real
# behaviour the silhouettes of neighbouring k are close (0.098-0.107 for k = 5..8 on the demo),
# and which one wins moves with the 3,000-customer sample: two builds of the same demo data,
# whose customers sort differently (ids from each home's keyed hashes), chose k = 5 and k = 7.
# Without this, a weekly refit could redraw every segment for noise.
K_CHANGE_MARGIN = 0.01
# A channel with this share of a cluster's purchases makes it "<channel>-first"; failing that,
# a channel this many times its average share makes it "<channel>-leaning".
CHANNEL_FIRST_SHARE = 0.5
CHANNEL_LEANING_LIFT = 1.3
# A cluster whose promotion share is this many times the average is "deal-seeking".
DEAL_SEEKING_LIFT = 1.5


MIN_CUSTOMERS = 3


class NotEnoughCustomers(ValueError):
    """Fewer customers than the smallest k can split meaningfully."""


def feature_columns(df: "pd.DataFrame") -> list[str]:
    """Channel shares, time-of-day shares, promotion sensitivity and category shares present."""
    fixed = (
        [f"share_{c}" for c in CHANNELS] + [f"share_{t}" for t in TIMES_OF_DAY] + ["promotion_sensitivity"]
    )
    missing = [c for c in fixed if c not in df.columns]
    if missing:
        raise KeyError(f"behaviour features missing columns: {missing}")
    return fixed + sorted(c for c in df.columns if c.startswith(CATEGORY_PREFIX))


def feature_matrix(df: "pd.DataFrame") -> "pd.DataFrame":
    """The numeric features, missing shares as 0."""
    return df[feature_columns(df)].astype(float).fillna(0.0)


def estimator(k: int, random_state: int = 0, n_init: int = 4) -> "Pipeline":
    """Unfitted standardise + k-means pipeline."""
    from sklearn.cluster import KMeans
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("kmeans", KMeans(n_clusters=k, n_init=n_init, random_state=random_state)),
        ]
    )


def choose_k(
    features: "pd.DataFrame",
    k_range: Sequence[int] = DEFAULT_K_RANGE,
    sample_size: int = SILHOUETTE_SAMPLE,
    random_state: int = 0,
    incumbent: int | None = None,
    margin: float = K_CHANGE_MARGIN,
) -> tuple[int, dict[int, float]]:
    """The k with the best silhouette, each k fitted and scored on the same random sample
    (silhouette is quadratic in rows). With ``incumbent`` (the k of the segmentation in use) that
    k is kept unless the best beats its silhouette by ``margin``. Returns (k, {k: silhouette})."""
    from sklearn.metrics import silhouette_score

    ks = [k for k in k_range if 2 <= k < len(features)]
    if not ks:
        raise NotEnoughCustomers(f"{len(features)} customers cannot be split into any of k={list(k_range)}")
    sample = features.sample(min(sample_size, len(features)), random_state=random_state)
    scores = {}
    for k in ks:
        model = estimator(k, random_state).fit(sample)
        labels = model.named_steps["kmeans"].labels_
        scaled = model.named_steps["scale"].transform(sample)
        scores[k] = float(silhouette_score(scaled, labels)) if len(set(labels)) > 1 else -1.0
    best = max(scores, key=lambda k: (round(scores[k], 4), -k))  # ties go to the smaller k
    if incumbent in scores and scores[best] - scores[incumbent] < margin:
        best = incumbent
    return best, scores


def profile_segments(features: "pd.DataFrame", labels: np.ndarray) -> "pd.DataFrame":
    """Mean of every feature per segment (the centroid in original units), plus customers and
    share of customers, indexed by segment_id."""
    import pandas as pd

    profiles = features.groupby(np.asarray(labels)).mean()
    profiles.index.name = "segment_id"
    sizes = pd.Series(np.asarray(labels)).value_counts()
    profiles.insert(0, "customers", sizes.reindex(profiles.index).astype(int))
    profiles.insert(1, "customer_share", profiles["customers"] / profiles["customers"].sum())
    return profiles


def name_segment(centroid: "pd.Series", overall: "pd.Series") -> str:
    """ "<channel> <time> [deal-seeking] <category> buyers" from a centroid and the overall
    means: the dominant channel (50% of purchases; else one 1.3x its average share is
    "-leaning"; else "omnichannel"), the time of day most above
    its average, deal-seeking when promotions are 1.5x the average, and the category most above
    its average share (by lift, among categories with at least 10% of the cluster's spend)."""
    channels = {c: centroid[f"share_{c}"] for c in CHANNELS}
    top_channel = max(channels, key=channels.get)
    lift = {c: channels[c] / max(overall[f"share_{c}"], 1e-9) for c in CHANNELS}
    leaning = max(lift, key=lift.get)
    if channels[top_channel] >= CHANNEL_FIRST_SHARE:
        channel = f"{top_channel}-first"
    elif lift[leaning] >= CHANNEL_LEANING_LIFT:
        channel = f"{leaning}-leaning"
    else:
        channel = "omnichannel"
    time_lift = {t: centroid[f"share_{t}"] - overall[f"share_{t}"] for t in TIMES_OF_DAY}
    time = max(time_lift, key=time_lift.get)
    deals = centroid["promotion_sensitivity"] >= DEAL_SEEKING_LIFT * max(
        overall["promotion_sensitivity"], 1e-9
    )
    categories = [c for c in centroid.index if c.startswith(CATEGORY_PREFIX)]
    candidates = [c for c in categories if centroid[c] >= 0.10] or categories
    category = (
        max(candidates, key=lambda c: centroid[c] / max(overall[c], 1e-9))[len(CATEGORY_PREFIX) :]
        if candidates
        else "mixed"
    )
    words = [channel, time] + (["deal-seeking"] if deals else []) + [category.replace("_", " "), "buyers"]
    return " ".join(words)


def name_segments(profiles: "pd.DataFrame", overall: "pd.Series") -> dict[int, str]:
    """A readable, unique name per segment; clashing names get their second-strongest category."""
    names = {int(i): name_segment(row, overall) for i, row in profiles.iterrows()}
    seen: dict[str, int] = {}
    for segment_id, name in sorted(names.items()):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            categories = [c for c in profiles.columns if c.startswith(CATEGORY_PREFIX)]
            row = profiles.loc[segment_id, categories].sort_values(ascending=False)
            second = row.index[1][len(CATEGORY_PREFIX) :] if len(row) > 1 else str(seen[name])
            names[segment_id] = name.replace(" buyers", f" & {second} buyers")
            if list(names.values()).count(names[segment_id]) > 1:
                names[segment_id] = f"{name} ({seen[name]})"
    return names


@dataclass
class SegmentModel:
    """A fitted segmentation as plain numbers: what assigning a customer to a segment needs
    (the standardisation and the centroids, row i = segment i), stored as JSON between the
    weekly fit and the daily assignment, which then needs neither scikit-learn nor a refit."""

    columns: list[str]
    mean: np.ndarray
    scale: np.ndarray
    centroids: np.ndarray
    names: dict[int, str]

    @property
    def k(self) -> int:
        return len(self.centroids)

    def to_json(self) -> str:
        import json

        return json.dumps(
            {
                "columns": self.columns,
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "centroids": self.centroids.tolist(),
                "names": {str(i): name for i, name in self.names.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "SegmentModel":
        import json

        data = json.loads(text)
        return cls(
            list(data["columns"]),
            np.asarray(data["mean"], dtype=float),
            np.asarray(data["scale"], dtype=float),
            np.asarray(data["centroids"], dtype=float),
            {int(i): name for i, name in data["names"].items()},
        )


def assign_segments(model: SegmentModel, behaviour: "pd.DataFrame") -> np.ndarray:
    """Each customer's nearest centroid (k-means' own rule) in the model's standardised space.
    Category columns the model was not fitted on (a category new since) are left out and those it
    was fitted on but absent here count 0, so a customer is placed by the habits the segments
    describe; the next fit takes the new ones in."""
    features = feature_matrix(behaviour).reindex(columns=model.columns, fill_value=0.0)
    scaled = (features.to_numpy(dtype=float) - model.mean) / model.scale
    # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centroid of a row.
    distances = (model.centroids**2).sum(axis=1)[None, :] - 2.0 * scaled @ model.centroids.T
    return distances.argmin(axis=1).astype(np.int32)


@dataclass
class Segmentation:
    # The k chosen. Not the assignment's: k-means can leave a cluster empty (customers with one
    # identical habit, e.g. CDNOW's orders-only buyers), and only non-empty segments are kept.
    k: int
    silhouette_by_k: dict[int, float]
    labels: np.ndarray
    profiles: "pd.DataFrame"
    # The fitted segmentation as plain numbers, segment ids as in ``labels`` (ordered by size).
    assignment: SegmentModel = field(repr=False)

    @property
    def names(self) -> dict[int, str]:
        return self.assignment.names

    @property
    def silhouette(self) -> float:
        return self.silhouette_by_k[self.k]


def segment_customers(
    behaviour: "pd.DataFrame",
    k_range: Sequence[int] = DEFAULT_K_RANGE,
    sample_size: int = SILHOUETTE_SAMPLE,
    random_state: int = 0,
    incumbent_k: int | None = None,
    k_change_margin: float = K_CHANGE_MARGIN,
) -> Segmentation:
    """Choose k (keeping ``incumbent_k``, the k in use, unless another is clearly better), fit
    k-means on every customer, profile and name the segments. Segment ids are ordered by size
    (0 = largest) so they read the same across reruns."""
    import pandas as pd

    features = feature_matrix(behaviour)
    if len(features) < MIN_CUSTOMERS:
        raise NotEnoughCustomers(
            f"{len(features)} customers with purchases: need at least {MIN_CUSTOMERS} to segment"
        )
    k, scores = choose_k(features, k_range, sample_size, random_state, incumbent_k, k_change_margin)
    model = estimator(k, random_state).fit(features)
    raw = model.named_steps["kmeans"].labels_
    by_size = pd.Series(raw).value_counts().index.tolist()
    labels = np.asarray(pd.Series(raw).map({old: new for new, old in enumerate(by_size)}))
    profiles = profile_segments(features, labels)
    names = name_segments(profiles, features.mean())
    profiles.insert(0, "segment_name", pd.Series(names))
    scaler, kmeans = model.named_steps["scale"], model.named_steps["kmeans"]
    assignment = SegmentModel(
        list(features.columns),
        np.asarray(scaler.mean_, dtype=float),
        np.asarray(scaler.scale_, dtype=float),
        np.asarray(kmeans.cluster_centers_[by_size], dtype=float),
        names,
    )
    return Segmentation(k, scores, labels, profiles, assignment)


def segments_figure(profiles: "pd.DataFrame") -> "Figure":
    """Segment sizes beside a heat map of each segment's habits (share columns, 0-1)."""
    from matplotlib.figure import Figure

    shares = profiles[
        [
            c
            for c in profiles.columns
            if c.startswith(("share_", CATEGORY_PREFIX)) or c == "promotion_sensitivity"
        ]
    ]
    labels = [f"{i}: {n}" for i, n in profiles["segment_name"].items()]
    figure = Figure(figsize=(13, 1.2 + 0.55 * len(profiles)), layout="constrained")
    size_ax, heat_ax = figure.subplots(1, 2, width_ratios=[1, 4], sharey=True)
    y = np.arange(len(profiles))
    size_ax.barh(y, profiles["customers"], color="#4472c4")
    size_ax.set(yticks=y, yticklabels=labels, xlabel="customers", title="Segment size")
    size_ax.invert_yaxis()
    image = heat_ax.imshow(shares.to_numpy(), aspect="auto", cmap="Blues", vmin=0, vmax=1)
    columns = [
        c.removeprefix("share_").removeprefix(CATEGORY_PREFIX).replace("promotion_sensitivity", "promo")
        for c in shares.columns
    ]
    heat_ax.set_xticks(np.arange(len(columns)), columns, rotation=60, ha="right")
    heat_ax.set_title("What each segment does (share of purchases / spend)")
    figure.colorbar(image, ax=heat_ax, fraction=0.03)
    return figure
