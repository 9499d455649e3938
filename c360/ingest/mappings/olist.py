"""Olist (Brazilian marketplace) tables -> landing-contract files, plus identity truth.

``map_olist(src_dir, out_dir)`` reads the nine published Olist CSVs and writes
``out_dir/<source>/olist_*.csv`` for ``crm_customers``, ``products``, ``ecommerce_orders``,
``ecommerce_order_items`` and ``product_reviews`` with exactly the contract's columns, in order,
left empty where Olist has nothing. ``marketing_consent``, ``web_events``, ``pos_transactions``
and ``service_tickets`` are not written: Olist holds nothing they could honestly be derived from.

Whose records are linked to whom (the point of the identity measurement):

* Olist gives every order its own ``customer_id``; ``customer_unique_id`` is the person. There
  are no names, emails or phones, only zip prefix, city and state.
* ``crm_customers``: one record per Olist ``customer_id`` (``customer_ref = OL-<customer_id>``),
  carrying zip/city/state - the customer table exactly as Olist publishes it, one profile
  snapshot per order. A person with two orders has two CRM records that share no key.
* ``ecommerce_orders.account_id`` (and the reviews' account) is, by default, the
  ``customer_unique_id``: it *is* the marketplace's person key, the id a login would give, so a
  shop account grouping one person's orders is what a real shop export would contain.
  ``account_key="customer_id"`` instead gives every order its own account (a guest-checkout
  shop): then nothing deterministic links a person's orders and the truth file measures how
  much identity resolution can recover from addresses alone.
* ``_truth/identity.csv`` (``source,source_record_id,person_id``) gives ``customer_unique_id``
  for every CRM record, order and review written. Products and order lines carry no person.

Value choices (all deterministic, so re-running writes byte-identical files):

* ``ordered_at`` = ``order_purchase_timestamp``; ``channel`` = ``web`` (Olist is a web
  marketplace); ``currency`` = ``BRL``; ``shipping_postcode`` = the customer's 5-digit zip prefix.
* ``amount`` = sum of the order's payments (vouchers included), not items + freight: every order
  has payments, while 775 sampled orders (cancelled/unavailable) have no items. The two agree to
  the cent on all but 32 of the orders that have both (installment interest).
* ``status``: see ``ORDER_STATUSES`` (``unavailable`` -> ``cancelled``; ``invoiced``,
  ``processing``, ``approved`` -> ``paid``; ``created`` -> ``placed``).
* ``payment_method``: the largest non-voucher payment's type, mapped by ``PAYMENT_METHODS``:
  credit and debit cards -> ``card``; ``boleto`` (a bank slip paid *before* shipping, so not
  cash on delivery), ``voucher`` (store credit) and ``not_defined`` have no contract value and
  are left empty rather than mislabelled.
* Order lines: ``order_item_id = <order_id>-<order_item_id>``, ``line_no`` = Olist's item number,
  ``quantity`` 1 (Olist has one row per unit), ``unit_price`` = ``price``. Freight is in the
  order amount only.
* Products: ``category`` = the English category name (``CATEGORY_SUPPLEMENT`` fills the two
  names the translation file lacks; ``unknown`` when Olist has none), ``product_name`` =
  ``<category> <first 8 chars of product_id>`` (Olist has no names), ``price`` = median sold
  price of the product (Olist has no list price).
* CRM: ``signup_date`` and ``updated_at`` are the record's order purchase time (Olist has no
  profile dates); ``city`` / ``region`` = Olist city / state; ``postcode`` = zip prefix.
* Reviews: Olist reuses a ``review_id`` for reviews of several orders, so the contract key is
  ``<review_id>-<order_id>``. ``product_id`` = the order's first item; orders without items give
  an *empty* product id (the loader quarantines those rows as ``missing_required`` - visible, not
  dropped here). ``text`` = title + " " + message with line breaks replaced by one space (landing
  files have no multi-line fields); empty when both are empty. ``created_at`` =
  ``review_creation_date``.

Through the loader the sample loads whole except 778 reviews of item-less orders
(``missing_required``) and 7 orders (4 lines) one person submitted twice within 60 seconds
with the same basket and amount (``duplicate``) - real findings, left to the pipeline to report.

The review file is dirty (comments with commas, comments spanning lines with CRLF inside):
``parse_olist_reviews`` recognises a record by its shape - 32-hex review id, 32-hex order id,
score 1-5 at the start, two timestamps at the end - and reassembles what is between as the
title and message. Anything it cannot read is returned with its line number, never dropped.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from c360.contracts import SOURCES
from c360.settings import PROJECT_ROOT

AccountKey = Literal["customer_unique_id", "customer_id"]

ORDER_STATUSES = {
    "created": "placed",
    "approved": "paid",
    "processing": "paid",
    "invoiced": "paid",
    "shipped": "shipped",
    "delivered": "delivered",
    "canceled": "cancelled",
    "unavailable": "cancelled",
}
PAYMENT_METHODS = {
    "credit_card": "card",
    "debit_card": "card",
    "boleto": "",
    "voucher": "",
    "not_defined": "",
}
CATEGORY_SUPPLEMENT = {
    "pc_gamer": "pc_gamer",
    "portateis_cozinha_e_preparadores_de_alimentos": "portable_kitchen_and_food_preparers",
}
UNKNOWN_CATEGORY = "unknown"

REVIEW_COLUMNS = [
    "review_id",
    "order_id",
    "review_score",
    "review_comment_title",
    "review_comment_message",
    "review_creation_date",
    "review_answer_timestamp",
]
_REVIEW_START = re.compile(r"^([0-9a-f]{32}),([0-9a-f]{32}),([1-5]),")
_TS = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
_REVIEW_END = re.compile(rf",({_TS}),({_TS})\r?$")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")

# Landing file name per contract source.
OUTPUT_FILES = {
    "crm_customers": "olist_customers.csv",
    "products": "olist_products.csv",
    "ecommerce_orders": "olist_orders.csv",
    "ecommerce_order_items": "olist_order_items.csv",
    "product_reviews": "olist_order_reviews.csv",
}
# Sources whose records belong to a person, and their key: what the truth file covers.
PERSON_SOURCES = ("crm_customers", "ecommerce_orders", "product_reviews")


def olist_dir() -> Path:
    """Where the Olist sample lives: ``$C360_OLIST_DIR``, else the team's shared data folder."""
    default = PROJECT_ROOT.parent / "shared" / "data" / "olist_sample"
    return Path(os.environ.get("C360_OLIST_DIR", default))


@dataclass(frozen=True)
class UnparsedReview:
    line: int  # 1-based line number in the file where the record starts
    text: str
    reason: str


@dataclass
class ParsedReviews:
    rows: pd.DataFrame  # REVIEW_COLUMNS + ``line`` (first line of the record), all strings
    unparsed: list[UnparsedReview] = field(default_factory=list)
    # Records whose title/message split was ambiguous (unquoted commas): kept, but flagged.
    ambiguous_lines: list[int] = field(default_factory=list)


def _split_title_message(middle: str) -> tuple[str, str, bool] | None:
    """Split the raw ``title,message`` part of a review record. Quoted fields follow RFC 4180;
    unquoted commas make more than two fields, which are rejoined (ambiguous=True). Returns
    None for an unterminated quote or a missing separator."""
    fields: list[tuple[str, bool]] = []
    i, n = 0, len(middle)
    while True:
        if middle.startswith('"', i):
            buf, j = [], i + 1
            while True:
                k = middle.find('"', j)
                if k < 0:
                    return None
                buf.append(middle[j:k])
                if middle.startswith('"', k + 1):
                    buf.append('"')
                    j = k + 2
                    continue
                j = k + 1
                break
            # Text after the closing quote and before the next comma is kept, not lost.
            end = middle.find(",", j)
            end = n if end < 0 else end
            fields.append(("".join(buf) + middle[j:end], True))
        else:
            end = middle.find(",", i)
            end = n if end < 0 else end
            fields.append((middle[i:end], False))
        if end >= n:
            break
        i = end + 1
    if len(fields) < 2:
        return None
    if len(fields) == 2:
        return fields[0][0], fields[1][0], False
    # Commas sit far more often in the (long) message than in the title, unless the message
    # is the quoted last field.
    if fields[-1][1]:
        return ",".join(f for f, _ in fields[:-1]), fields[-1][0], True
    return fields[0][0], ",".join(f for f, _ in fields[1:]), True


def parse_olist_reviews(path: Path) -> ParsedReviews:
    """Read ``olist_order_reviews_dataset.csv`` record by record (see the module docstring)."""
    with open(path, encoding="utf-8", newline="") as fh:
        lines = fh.read().split("\n")
    header = lines[0].rstrip("\r").split(",")
    if header != REVIEW_COLUMNS:
        raise ValueError(f"{path}: header {header} is not the Olist review header {REVIEW_COLUMNS}")
    records: list[tuple[int, list[str]]] = []
    unparsed: list[UnparsedReview] = []
    for number, line in enumerate(lines[1:], start=2):
        if _REVIEW_START.match(line):
            records.append((number, [line]))
        elif records:
            records[-1][1].append(line)
        elif line.strip():
            unparsed.append(UnparsedReview(number, line, "text before the first review record"))
    # The file's final newline leaves one empty piece after the last record.
    if records and records[-1][1][-1] == "":
        records[-1][1].pop()

    rows, ambiguous = [], []
    for number, parts in records:
        record = "\n".join(parts)
        start, end = _REVIEW_START.match(record), _REVIEW_END.search(record)
        if end is None or end.start() < start.end() - 1:
            unparsed.append(UnparsedReview(number, record, "does not end with two timestamps"))
            continue
        split = _split_title_message(record[start.end() : end.start()])
        if split is None:
            unparsed.append(UnparsedReview(number, record, "title/message cannot be separated"))
            continue
        title, message, is_ambiguous = split
        if is_ambiguous:
            ambiguous.append(number)
        rows.append([*start.groups(), title, message, *end.groups(), number])
    frame = pd.DataFrame(rows, columns=[*REVIEW_COLUMNS, "line"], dtype=object)
    return ParsedReviews(frame, sorted(unparsed, key=lambda u: u.line), ambiguous)


def review_text(title: str | None, message: str | None) -> str:
    """Title and message as one landing-safe line (no line breaks, trimmed)."""
    parts = [_LINE_BREAKS.sub(" ", p or "").strip() for p in (title, message)]
    return " ".join(p for p in parts if p)


def _read(src_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(src_dir / name, dtype=str, keep_default_na=False, encoding="utf-8")


def _crm_customers(customers: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    ordered = customers.merge(
        orders[["customer_id", "order_purchase_timestamp"]], on="customer_id", how="left"
    )
    ts = ordered["order_purchase_timestamp"]
    return pd.DataFrame(
        {
            "customer_ref": "OL-" + ordered["customer_id"],
            "city": ordered["customer_city"],
            "region": ordered["customer_state"],
            "postcode": ordered["customer_zip_code_prefix"],
            "signup_date": ts.str.slice(0, 10),
            "updated_at": ts,
        }
    )


def _products(products: pd.DataFrame, items: pd.DataFrame, translation: pd.DataFrame) -> pd.DataFrame:
    english = dict(zip(translation["product_category_name"], translation["product_category_name_english"]))
    english.update(CATEGORY_SUPPLEMENT)
    category = products["product_category_name"].map(lambda c: english.get(c, c) or UNKNOWN_CATEGORY)
    sold_price = items.assign(p=items["price"].astype(float)).groupby("product_id")["p"].median().round(2)
    return pd.DataFrame(
        {
            "product_id": products["product_id"],
            "product_name": category + " " + products["product_id"].str.slice(0, 8),
            "category": category,
            "price": products["product_id"].map(sold_price),
        }
    )


def _payment_method(payments: pd.DataFrame) -> pd.Series:
    ranked = payments.assign(
        value=payments["payment_value"].astype(float),
        seq=payments["payment_sequential"].astype(int),
        is_voucher=payments["payment_type"].eq("voucher"),
    ).sort_values(["order_id", "is_voucher", "value", "seq"], ascending=[True, True, False, True])
    primary = ranked.drop_duplicates("order_id").set_index("order_id")["payment_type"]
    unknown = set(primary) - set(PAYMENT_METHODS)
    if unknown:
        raise ValueError(f"Olist payment types without a mapping: {sorted(unknown)}")
    return primary.map(PAYMENT_METHODS)


def _ecommerce_orders(
    orders: pd.DataFrame, payments: pd.DataFrame, customers: pd.DataFrame, account_key
) -> pd.DataFrame:
    unknown = set(orders["order_status"]) - set(ORDER_STATUSES)
    if unknown:
        raise ValueError(f"Olist order statuses without a mapping: {sorted(unknown)}")
    amount = (
        payments.assign(v=payments["payment_value"].astype(float)).groupby("order_id")["v"].sum().round(2)
    )
    joined = orders.merge(customers, on="customer_id", how="left")
    return pd.DataFrame(
        {
            "order_id": joined["order_id"],
            "account_id": joined[account_key],
            "ordered_at": joined["order_purchase_timestamp"],
            "channel": "web",
            "status": joined["order_status"].map(ORDER_STATUSES),
            "payment_method": joined["order_id"].map(_payment_method(payments)),
            "amount": joined["order_id"].map(amount),
            "currency": "BRL",
            "shipping_postcode": joined["customer_zip_code_prefix"],
        }
    )


def _order_items(items: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_item_id": items["order_id"] + "-" + items["order_item_id"],
            "order_id": items["order_id"],
            "line_no": items["order_item_id"],
            "product_id": items["product_id"],
            "quantity": 1,
            "unit_price": items["price"],
        }
    )


def _product_reviews(
    reviews: pd.DataFrame, ecommerce_orders: pd.DataFrame, items: pd.DataFrame
) -> pd.DataFrame:
    first_item = (
        items.assign(n=items["order_item_id"].astype(int)).sort_values("n").drop_duplicates("order_id")
    ).set_index("order_id")["product_id"]
    account = ecommerce_orders.set_index("order_id")["account_id"]
    return pd.DataFrame(
        {
            "review_id": reviews["review_id"] + "-" + reviews["order_id"],
            "account_id": reviews["order_id"].map(account),
            "product_id": reviews["order_id"].map(first_item).fillna(""),
            "order_id": reviews["order_id"],
            "score": reviews["review_score"],
            "text": [
                review_text(t, m)
                for t, m in zip(reviews["review_comment_title"], reviews["review_comment_message"])
            ],
            "created_at": reviews["review_creation_date"],
        }
    )


def _to_contract(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Exactly the contract's columns in order; columns Olist cannot fill are empty."""
    names = SOURCES[source].column_names
    extra = set(frame.columns) - set(names)
    if extra:
        raise ValueError(f"{source}: mapping produced columns outside the contract: {sorted(extra)}")
    missing = {name: "" for name in names if name not in frame.columns}
    return frame.assign(**missing)[names]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # QUOTE_MINIMAL quotes fields holding commas or quotes (RFC 4180); no field holds a newline.
    frame.to_csv(path, index=False, encoding="utf-8", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def load_olist(src_dir: Path) -> dict[str, pd.DataFrame]:
    """The Olist tables this mapping uses, as string DataFrames (reviews parsed robustly)."""
    src_dir = Path(src_dir)
    tables = {
        name: _read(src_dir, f"olist_{name}_dataset.csv")
        for name in ("customers", "orders", "order_items", "order_payments", "products")
    }
    tables["translation"] = _read(src_dir, "product_category_name_translation.csv")
    return tables


def map_olist(src_dir: Path, out_dir: Path, account_key: AccountKey = "customer_unique_id") -> dict:
    """Write Olist as landing-contract files under ``out_dir`` (see the module docstring).

    Returns a summary: files written, rows per source, truth rows, review-parsing problems
    (``reviews_unparsed`` with line numbers, ``reviews_ambiguous_lines``) and the number of
    reviews whose order has no item (``reviews_without_product``)."""
    if account_key not in ("customer_unique_id", "customer_id"):
        raise ValueError(f"account_key must be 'customer_unique_id' or 'customer_id', not {account_key!r}")
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    t = load_olist(src_dir)
    parsed = parse_olist_reviews(src_dir / "olist_order_reviews_dataset.csv")

    orders = _ecommerce_orders(t["orders"], t["order_payments"], t["customers"], account_key)
    frames = {
        "crm_customers": _crm_customers(t["customers"], t["orders"]),
        "products": _products(t["products"], t["order_items"], t["translation"]),
        "ecommerce_orders": orders,
        "ecommerce_order_items": _order_items(t["order_items"]),
        "product_reviews": _product_reviews(parsed.rows, orders, t["order_items"]),
    }
    files, rows = {}, {}
    for source, frame in frames.items():
        path = out_dir / source / OUTPUT_FILES[source]
        _write_csv(_to_contract(frame, source), path)
        files[source], rows[source] = path, len(frame)

    person_of_customer = t["customers"].set_index("customer_id")["customer_unique_id"]
    person_of_order = t["orders"].set_index("order_id")["customer_id"].map(person_of_customer)
    truth = pd.concat(
        [
            pd.DataFrame(
                {
                    "source": "crm_customers",
                    "source_record_id": frames["crm_customers"]["customer_ref"],
                    "person_id": frames["crm_customers"]["customer_ref"]
                    .str.removeprefix("OL-")
                    .map(person_of_customer),
                }
            ),
            pd.DataFrame(
                {
                    "source": "ecommerce_orders",
                    "source_record_id": orders["order_id"],
                    "person_id": orders["order_id"].map(person_of_order),
                }
            ),
            pd.DataFrame(
                {
                    "source": "product_reviews",
                    "source_record_id": frames["product_reviews"]["review_id"],
                    "person_id": parsed.rows["order_id"].map(person_of_order),
                }
            ),
        ],
        ignore_index=True,
    )
    truth_path = out_dir / "_truth" / "identity.csv"
    _write_csv(truth, truth_path)
    return {
        "account_key": account_key,
        "files": files,
        "rows": rows,
        "truth_file": truth_path,
        "truth_rows": len(truth),
        "persons": int(truth["person_id"].nunique()),
        "reviews_unparsed": [(u.line, u.reason) for u in parsed.unparsed],
        "reviews_ambiguous_lines": parsed.ambiguous_lines,
        "reviews_without_product": int((frames["product_reviews"]["product_id"] == "").sum()),
    }
