import pytest

from c360.generate import generate
from c360.ingest.loader import load_source, quarantine_duplicate_orders
from c360.privacy.keys import Keyring
from c360.warehouse import connect

LOAD_ORDER = ("products", "crm_customers", "ecommerce_orders", "ecommerce_order_items")
AFTER_ORDERS = ("web_events", "pos_transactions", "service_tickets", "product_reviews", "marketing_consent")


@pytest.fixture(scope="session")
def loaded_home(tmp_path_factory):
    """300 generated customers loaded into raw (no dbt): the warehouse file and landing folder."""
    home = tmp_path_factory.mktemp("c360")
    generate(home / "landing", customers=300, seed=7, progress=False)
    keyring = Keyring.generate()
    con = connect(home / "warehouse.duckdb")
    for source in LOAD_ORDER:
        load_source(con, source, home / "landing", keyring)
    quarantine_duplicate_orders(con, "test")
    for source in AFTER_ORDERS:
        load_source(con, source, home / "landing", keyring)
    con.close()
    return home
