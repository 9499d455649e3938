import pytest

from ml import uplift


def test_sample_size_matches_the_textbook_two_proportion_formula():
    # 10% -> 12% at 5% significance and 80% power needs ~3,840 per group with an even split.
    treated, held = uplift.required_people_per_group(0.10, 0.02, holdout_share=0.5)
    assert treated == held
    assert 3800 <= treated <= 3860


def test_a_small_holdout_needs_more_people_in_all():
    even = sum(uplift.required_people_per_group(0.10, 0.02, holdout_share=0.5))
    treated, held = uplift.required_people_per_group(0.10, 0.02, holdout_share=0.1)
    assert treated + held > 2 * even
    assert held == pytest.approx(0.1 * (treated + held), abs=2)


def test_a_larger_lift_needs_fewer_people():
    assert sum(uplift.required_people_per_group(0.1, 0.05)) < sum(uplift.required_people_per_group(0.1, 0.02))


@pytest.mark.parametrize(
    ("baseline", "lift", "share"), [(0, 0.02, 0.5), (0.1, 0, 0.5), (0.99, 0.05, 0.5), (0.1, 0.02, 1)]
)
def test_sample_size_refuses_impossible_rates(baseline, lift, share):
    with pytest.raises(ValueError):
        uplift.required_people_per_group(baseline, lift, holdout_share=share)


def test_verdict_says_no_effect_when_the_interval_covers_zero():
    assert uplift.verdict(0.01, -0.02, 0.04) == "no effect detectable at this size"
    assert uplift.verdict(0.05, 0.01, 0.09).startswith("the campaign raised conversion by 5.0 points")
    assert uplift.verdict(-0.05, -0.09, -0.01).startswith("the campaign lowered conversion by 5.0 points")
    assert uplift.verdict(None, None, None).startswith("not measurable")
