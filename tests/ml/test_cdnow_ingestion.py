"""CDNOW end to end through the platform's ingestion: landing CSV -> load_source -> raw -> fit."""

import pytest

from c360.ingest.mappings import cdnow as cdnow_mapping
from cli.evals.clv import ingest_cdnow
from ml import cdnow

CDNOW_ROWS = 6919


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    return ingest_cdnow(tmp_path_factory.mktemp("cdnow"))


def test_every_cdnow_row_is_loaded_including_same_day_and_zero_dollar_orders(ingested):
    orders, stats = ingested
    assert stats["rows_in"] == CDNOW_ROWS
    assert stats["rows_loaded"] == CDNOW_ROWS
    assert stats["rows_quarantined"] == 0
    assert stats["quarantined_by_rule"] == {}
    assert len(orders) == CDNOW_ROWS
    assert (orders["amount"] == 0).sum() > 0
    assert orders["amount"].sum() == pytest.approx(cdnow_mapping.read_cdnow()["dollars"].sum())


def test_params_fitted_from_raw_orders_match_the_published_cdnow_fit_within_one_percent(ingested):
    orders, _ = ingested
    validation = cdnow.cdnow_validation(orders)
    assert validation["customers"] == 2357
    for name, published in cdnow.PUBLISHED.items():
        assert validation["params"][name] == pytest.approx(published, rel=0.01), name
    assert validation["holdout"]["actual_repeat"] == 1882
