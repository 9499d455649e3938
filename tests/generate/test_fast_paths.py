"""The generator's fast paths give exactly what the straightforward numpy/pyarrow versions give.

Each fast path (packed-key sorts, byte-matrix ids, per-layout variants, the popularity grid, the
C++ CSV writer) replaced a slower formulation; the seed's bytes depend on them being equal.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from c360.contracts import SOURCES
from c360.generate import identity as ident
from c360.generate.catalogue import build_catalogue
from c360.generate.clickstream import time_order
from c360.generate.order import lexsort
from c360.generate.writer import CODE, Sink, money_strings


@pytest.mark.parametrize("n", [0, 1, 7, 5000])
def test_lexsort_matches_numpy_with_ties(n):
    rng = np.random.default_rng(n)
    keys = (rng.integers(0, 3, n), rng.integers(-5, 5, n), rng.integers(0, 4, n))
    assert np.array_equal(lexsort(keys), np.lexsort(keys))
    assert np.array_equal(lexsort(keys[1:2]), np.lexsort(keys[1:2]))


def test_lexsort_falls_back_when_keys_do_not_fit_or_are_not_integers():
    rng = np.random.default_rng(1)
    wide = (rng.integers(0, 2**40, 1000), rng.integers(0, 2**40, 1000))
    assert np.array_equal(lexsort(wide), np.lexsort(wide))
    no_room_for_rows = (rng.integers(0, 2**30, 5000), rng.integers(0, 4, 5000) * 2**29)
    assert np.array_equal(lexsort(no_room_for_rows), np.lexsort(no_room_for_rows))
    floats = (rng.random(1000), rng.integers(0, 3, 1000))
    assert np.array_equal(lexsort(floats), np.lexsort(floats))


def test_time_order_matches_lexsort_with_appended_rows_and_ties():
    rng = np.random.default_rng(2)
    for trial in range(200):
        count = rng.integers(1, 6, rng.integers(1, 40))
        sess = np.repeat(np.arange(len(count)), count)
        pos = np.arange(len(sess)) - np.repeat(np.cumsum(count) - count, count)
        extra = rng.integers(0, len(count), rng.integers(0, 6))
        # As the generator appends them (after the session's last event), or anywhere.
        extra_pos = count[extra] if trial % 2 else rng.integers(0, 7, len(extra))
        all_sess, all_pos = np.concatenate([sess, extra]), np.concatenate([pos, extra_pos])
        t = rng.integers(1000, 1000 + rng.integers(1, 15), len(all_sess))
        expected = np.lexsort((all_pos, all_sess, t))
        assert np.array_equal(time_order(t, all_sess, all_pos, len(sess)), expected), trial


@pytest.mark.parametrize(
    "numbers,width,prefix",
    [
        ([0, 7, 123, 9999999], 7, "U"),
        ([1, 22, 333], 3, "TX202401"),
        ([5, 12345], 3, "ST"),  # wider than the width: left as is
        ([3, 40], 6, ""),
        ([], 4, "P"),
    ],
)
def test_padded_matches_cast_pad_join(numbers, width, prefix):
    x = np.array(numbers, dtype=np.int64)
    plain = pc.utf8_lpad(pc.cast(pa.array(x), pa.string()), width, "0")
    expected = pc.binary_join_element_wise(prefix, plain, "") if prefix else plain
    assert ident.padded(x, width, prefix).to_pylist() == expected.to_pylist()


def test_variants_match_choose_over_every_layout():
    rng = np.random.default_rng(3)
    phones = ident.mobile_numbers(rng, 3000)
    emails = pa.array([f"user{i}@qq.com" for i in range(3000)])
    for fn, values in ((ident.phone_variants, phones), (ident.email_variants, emails)):
        got = fn(values, np.random.default_rng(9))
        # The layout weights as the functions define them (defaults: 40% / 60% clean).
        r_phone, r_email = 0.6 / 6, 0.4 / 5
        weights = (
            [0.4] + [r_phone] * 6
            if fn is ident.phone_variants
            else [0.6, r_email * 1.5, r_email * 1.5, r_email, r_email, r_email * 0.5]
        )
        style = ident.weighted(np.random.default_rng(9), weights, len(values))
        if fn is ident.phone_variants:
            a, b, c = (pc.utf8_slice_codeunits(values, i, j) for i, j in ((0, 3), (3, 7), (7, 11)))
            j = ident.join
            layouts = [
                values,
                j("+86 ", a, " ", b, " ", c),
                j("+86-", a, "-", b, "-", c),
                j(a, "-", b, "-", c),
                j(a, " ", b, " ", c),
                j("0086 ", values),
                j("(+86)", values),
            ]
        else:
            cap = pc.utf8_capitalize(values)
            layouts = [
                values,
                pc.utf8_upper(values),
                cap,
                ident.join(" ", values),
                ident.join(values, "  "),
                ident.join(" ", pc.utf8_swapcase(cap), " "),
            ]
        assert got.to_pylist() == pc.choose(pa.array(style), *layouts).to_pylist()
        assert len(set(style)) == len(layouts)


def test_catalogue_locate_matches_searchsorted():
    cat = build_catalogue(np.random.default_rng(4), 100_000, 730)
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [rng.random(200_000) * cat.cum_weight[-1], cat.cum_weight, [0.0, cat.cum_weight[-1] * 1.5]]
    )
    assert np.array_equal(cat.locate(x), np.searchsorted(cat.cum_weight, x, side="right"))


def test_money_strings_two_decimals_sign_and_nulls():
    values = pa.array([0.05, 1.234, -0.5, 741.0, -0.004, 0.0, None, 123456789.99, -12.5])
    assert money_strings(values).to_pylist() == [
        "0.05",
        "1.23",
        "-0.50",
        "741.00",
        "0.00",
        "0.00",
        None,
        "123456789.99",
        "-12.50",
    ]


def product_columns(names: list[str | None]) -> dict[str, pa.Array]:
    n = len(names)
    return {
        "product_id": pa.array([f"P{i}" for i in range(n)]),
        "product_name": pa.array(names, pa.string()),
        "category": ident.labels(["toys", "books"], np.arange(n) % 2),
        "brand": pa.array([None] * n, pa.string()),
        "price": pa.array([1.5 + i for i in range(n)]),
        "launched_at": pa.array([dt.date(2025, 1, 1 + i) for i in range(n)], pa.date32()),
        "discontinued": pa.array([i % 2 == 0 for i in range(n)]),
    }


def test_csv_quotes_only_what_needs_it_and_both_paths_agree(tmp_path):
    sink = Sink(tmp_path, "csv", seed=1)
    sink.write("products", "plain", product_columns(["Tea", "Rice 5kg"]))
    sink.write("products", "quoted", product_columns(["Tea", 'Nuts, 500g "big"']))
    sink.close()
    header = ",".join(SOURCES["products"].column_names)
    assert (tmp_path / "products" / "plain.csv").read_text() == (
        f"{header}\nP0,Tea,toys,,1.50,2025-01-01,true\nP1,Rice 5kg,books,,2.50,2025-01-02,false\n"
    )
    assert (tmp_path / "products" / "quoted.csv").read_text() == (
        f'{header}\nP0,Tea,toys,,1.50,2025-01-01,true\nP1,"Nuts, 500g ""big""",books,,2.50,2025-01-02,false\n'
    )


@pytest.mark.parametrize("names", [["a", "b", "c", "d", "e"], ["a", "b, c", "d", "e", "f"]])
def test_broken_lines_are_spliced_in_place_and_reported_by_line_number(tmp_path, names):
    codes = np.zeros(len(names), dtype=np.int8)
    codes[[0, 2, len(names) - 1]] = CODE["malformed_line"]
    sink = Sink(tmp_path, "csv", seed=2)
    sink.write("products", "p", product_columns(names), codes)
    defects = sink.defects_table()
    sink.close()
    lines = (tmp_path / "products" / "p.csv").read_text().split("\n")
    assert lines[-1] == "" and len(lines) == len(names) + 2
    for row in (1, 3):
        assert lines[row + 1].startswith(f"P{row},")
    assert defects.column("record_id").to_pylist() == ["line:2", "line:4", f"line:{len(names) + 1}"]
    assert set(defects.column("defect_type").to_pylist()) == {"malformed_line"}


def test_a_writer_error_is_raised_to_the_caller(tmp_path):
    sink = Sink(tmp_path, "csv", seed=3)
    columns = product_columns(["Tea"])
    columns["price"] = pa.array(["not a number"])
    with pytest.raises(pa.ArrowInvalid):  # from this write if already done, else from flush
        sink.write("products", "p", columns)
        sink.flush()
    sink.close()
