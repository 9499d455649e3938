import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from ml import segments

CATEGORIES = ["beauty", "electronics", "grocery"]


def shoppers(n_per_group: int = 60, seed: int = 0) -> pd.DataFrame:
    """Three planted habits: app evening beauty deal-hunters, store morning grocery shoppers,
    web afternoon electronics buyers (with a little noise)."""
    rng = np.random.default_rng(seed)
    groups = [
        {
            "share_app": 0.9,
            "share_web": 0.1,
            "share_store": 0.0,
            "share_evening": 0.85,
            "share_afternoon": 0.15,
            "promotion_sensitivity": 0.7,
            "category_beauty": 0.9,
            "category_grocery": 0.1,
        },
        {
            "share_store": 0.95,
            "share_web": 0.05,
            "share_morning": 0.8,
            "share_afternoon": 0.2,
            "promotion_sensitivity": 0.05,
            "category_grocery": 0.85,
            "category_beauty": 0.15,
        },
        {
            "share_web": 0.85,
            "share_app": 0.15,
            "share_afternoon": 0.75,
            "share_evening": 0.25,
            "promotion_sensitivity": 0.1,
            "category_electronics": 0.9,
            "category_grocery": 0.1,
        },
    ]
    columns = [f"share_{c}" for c in segments.CHANNELS] + [f"share_{t}" for t in segments.TIMES_OF_DAY]
    columns += ["promotion_sensitivity"] + [f"category_{c}" for c in CATEGORIES]
    rows = []
    for g, habits in enumerate(groups):
        for i in range(n_per_group):
            row = {c: max(0.0, habits.get(c, 0.0) + rng.normal(0, 0.03)) for c in columns}
            rows.append({"customer_id": f"g{g}-{i:03d}", "planted": g, **row})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def segmented():
    df = shoppers()
    return df, segments.segment_customers(df.drop(columns="planted"), k_range=range(2, 7))


def test_silhouette_picks_the_number_of_planted_habits(segmented):
    _, result = segmented
    assert result.k == 3
    assert result.silhouette == max(result.silhouette_by_k.values())


def test_each_planted_group_lands_in_its_own_segment(segmented):
    df, result = segmented
    crosstab = pd.crosstab(df["planted"], result.labels)
    assert (crosstab.gt(0).sum(axis=1) == 1).all()
    assert (crosstab.gt(0).sum(axis=0) == 1).all()


def test_segments_are_named_from_their_centroids(segmented):
    df, result = segmented
    name_of_group = {g: result.names[int(result.labels[df["planted"] == g][0])] for g in range(3)}
    assert name_of_group[0] == "app-first evening deal-seeking beauty buyers"
    assert name_of_group[1] == "store-first morning grocery buyers"
    assert name_of_group[2] == "web-first afternoon electronics buyers"


def test_profiles_hold_size_and_centroid_per_segment(segmented):
    df, result = segmented
    assert result.profiles["customers"].sum() == len(df)
    assert set(result.profiles.index) == set(result.names)
    assert result.profiles["customer_share"].sum() == pytest.approx(1.0)
    assert list(result.profiles["customers"]) == sorted(result.profiles["customers"], reverse=True)


def test_a_refit_keeps_the_k_in_use_unless_another_is_clearly_better(segmented):
    df, _ = segmented
    planted = segments.feature_matrix(df.drop(columns=["customer_id", "planted"]))
    # Three planted habits: k = 3 beats a k = 4 in use by far more than the margin, so it wins.
    k, scores = segments.choose_k(planted, range(2, 7), incumbent=4)
    assert k == 3 and scores[3] - scores[4] >= segments.K_CHANGE_MARGIN
    # No structure at all: every k scores about the same, and which wins is noise.
    rng = np.random.default_rng(0)
    noise = pd.DataFrame(rng.random((400, planted.shape[1])), columns=planted.columns)
    best, scores = segments.choose_k(noise, range(3, 7))
    in_use = min((k for k in scores if k != best), key=lambda k: scores[best] - scores[k])
    assert scores[best] - scores[in_use] < segments.K_CHANGE_MARGIN
    assert segments.choose_k(noise, range(3, 7), incumbent=in_use)[0] == in_use
    assert segments.choose_k(noise, range(3, 7), incumbent=in_use, margin=0.0)[0] == best
    # A k in use outside the range tried is not kept.
    assert segments.choose_k(noise, range(3, 7), incumbent=9)[0] == best


def test_buyers_with_one_identical_habit_make_one_segment():
    # Orders-only data (CDNOW): every buyer looks the same, so k-means leaves all clusters but one
    # empty. The chosen k still reads its silhouette; the segmentation keeps the one real segment.
    same = shoppers(10).drop(columns="planted")
    same[[c for c in same.columns if c != "customer_id"]] = same.iloc[0].drop("customer_id").to_numpy()
    with pytest.warns(Warning):  # scikit-learn: fewer distinct clusters than k
        result = segments.segment_customers(same, k_range=range(3, 5))
    assert result.k == 3 and result.silhouette == -1.0
    assert result.assignment.k == len(result.names) == 1
    assert (segments.assign_segments(result.assignment, same) == 0).all()


def test_the_stored_model_assigns_every_customer_as_the_fit_did(segmented):
    df, result = segmented
    stored = segments.SegmentModel.from_json(result.assignment.to_json())
    assert stored.k == result.k and stored.names == result.names
    # The centroids keep the fit's segment ids (ordered by size), so the daily assignment of the
    # same habits gives the same segments.
    assert (segments.assign_segments(stored, df.drop(columns="planted")) == result.labels).all()


def test_a_new_buyer_is_placed_by_the_habits_the_model_knows(segmented):
    df, result = segmented
    grocery_shopper = df[df["planted"] == 1].iloc[[0]].drop(columns=["planted", "category_electronics"])
    # A category the model was not fitted on is left out; one it knows but the row lacks counts 0.
    newcomer = grocery_shopper.assign(customer_id="new-001", category_garden=0.4)
    [segment] = segments.assign_segments(result.assignment, newcomer)
    assert result.names[int(segment)] == "store-first morning grocery buyers"
    assert len(segments.assign_segments(result.assignment, newcomer.iloc[:0])) == 0


def test_clashing_names_are_made_unique():
    overall = pd.Series(
        {
            "share_web": 0.3,
            "share_app": 0.3,
            "share_store": 0.4,
            "share_morning": 0.25,
            "share_afternoon": 0.25,
            "share_evening": 0.25,
            "share_night": 0.25,
            "promotion_sensitivity": 0.1,
            "category_beauty": 0.3,
            "category_toys": 0.3,
        }
    )
    twin = overall.copy()
    twin[["share_app", "share_evening", "category_beauty"]] = [0.9, 0.8, 0.6]
    profiles = pd.DataFrame([twin, twin.replace({0.3: 0.31})], index=[0, 1])
    names = segments.name_segments(profiles, overall)
    assert len(set(names.values())) == 2
    assert names[0] == "app-first evening beauty buyers"


def test_missing_feature_columns_are_named():
    with pytest.raises(KeyError, match="share_night"):
        segments.feature_matrix(pd.DataFrame({"share_web": [1.0]}))


def test_too_few_customers_is_a_clear_error():
    with pytest.raises(segments.NotEnoughCustomers, match="2 customers"):
        segments.segment_customers(shoppers(1).drop(columns="planted").head(2))


def test_segments_figure_draws_sizes_and_habits(segmented):
    _, result = segmented
    figure = segments.segments_figure(result.profiles)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 3  # sizes, heat map, colour bar
