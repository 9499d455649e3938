import duckdb
import pytest


@pytest.fixture
def warehouse_file(tmp_path, monkeypatch):
    """An empty warehouse file in a fresh C360_HOME."""
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    path = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(path)).close()
    return path
