"""``c360 compact``: a readable report of the rewrite, or a clear error and exit 1."""

import duckdb
from click.testing import CliRunner

from cli.main import main


def test_compact_reports_the_sizes_and_what_it_checked(c360_home):
    path = c360_home / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.t as select range as id from range(300000)")
        con.execute("checkpoint")
        con.execute("delete from marts.t where id % 2 = 0")
        con.execute("insert into marts.t select range from range(300000) where range % 2 = 0")
    result = CliRunner().invoke(main, ["compact"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Compacted {path} in ")
    before, after, reclaimed = (float(line.split()[1].replace(",", "")) for line in lines[1:4])
    assert [line.split()[0] for line in lines[1:4]] == ["before", "after", "reclaimed"]
    # Each figure is rounded to 0.1 MB on its own.
    assert reclaimed > 0 and abs(reclaimed - (before - after)) <= 0.11
    assert after == round(path.stat().st_size / 1e6, 1)
    assert "300,000 rows" in lines[4]


def test_compact_without_a_warehouse_says_so(c360_home):
    result = CliRunner().invoke(main, ["compact"])
    assert result.exit_code == 1
    assert f"no warehouse at {c360_home / 'warehouse.duckdb'}: nothing to compact" in result.output
