"""The PII scanner behind ``c360 scan-pii``: find plaintext personal data where none should be.

It searches every column of every table of the DuckDB warehouse (read-only; the regexes run
inside DuckDB) and every file under C360_HOME except the landing zone and the keys, which
covers reports, Great Expectations results, Dagster storage (incl. its SQLite run and event
log databases) and MLflow (``mlflow.db`` and artifacts). Parquet and DuckDB files found there
are scanned through DuckDB, SQLite files table by table, everything else as text.

It looks for four kinds: emails, mainland mobile phones (with or without +86/0086 and
separators), 18-character PRC resident ids with a valid check character, and Luhn-valid 13-19
digit payment cards (first digit 2-6, the ISO/IEC 7812 payment-card industries). The check
digits run only on regex candidates. Loyalty card numbers (``LC`` + digits) are sensitive but
are deliberately not a target: they are meaningless outside the business and look like any
other id. Pseudonyms (hex), encryption tokens (base64url), UUIDs and numeric ids never match
because a candidate must stand alone between word boundaries, and masked values
(``j***@example.com``, ``*******5678``) no longer have the shape of the original. Digits that
follow a decimal point are ignored so that floats in logs and metrics are not mistaken for
phones or cards. A check digit passes by chance for about one random number in ten, so a
location where at least 20 values have the shape of a card (or id) but under 30% pass is
taken to hold numeric ids and is not reported (a single real card among many numeric ids in
one column would be missed).

Only masked samples are ever reported.
"""

from __future__ import annotations

import gzip
import os
import re
import sqlite3
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from c360.checkdigits import luhn_valid_sql, prc_id_valid_sql
from c360.privacy.crypto import (
    luhn_valid,
    mask_card,
    mask_email,
    mask_national_id,
    mask_phone,
    prc_id_valid,
)
from c360.settings import Settings, get_settings

# Addresses of tools and code hosts (git remotes in MLflow tags, vendor links in generated docs).
IGNORED_EMAIL_DOMAINS = ("github.com", "gitlab.com", "bitbucket.org", "users.noreply.github.com")
_FILE_EXTENSION_TLDS = ("png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "css", "js")

# Python ``re`` (with re.ASCII) and DuckDB's RE2 read these the same way.
_NOT_DECIMAL = r"\.?"  # captured so that a candidate right after a '.' can be dropped
PATTERNS = {
    "email": r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b",
    "phone": _NOT_DECIMAL
    + r"(?:(?:\+|\b00|\b)86[ \-]?|\(\+?86\)[ \-]?|\b)1[3-9][0-9](?:[ \-]?[0-9]{4}){2}\b",
    "national_id": _NOT_DECIMAL
    + r"\b[1-9][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]\b",
    "card": _NOT_DECIMAL + r"\b(?:[2-6][0-9]{12,18}|[2-6][0-9]{3}(?:[ \-][0-9]{4}){2,3}(?:[ \-][0-9]{1,3})?"
    r"|3[47][0-9]{2}[ \-][0-9]{6}[ \-][0-9]{5})\b",
}
KINDS = tuple(PATTERNS)
ANY_PATTERN = "|".join(f"(?:{p})" for p in PATTERNS.values())
_COMPILED = {kind: re.compile(p, re.ASCII) for kind, p in PATTERNS.items()}
_ANY = re.compile(ANY_PATTERN, re.ASCII)
_MASKERS: dict[str, Callable[[str], str | None]] = {
    "email": mask_email,
    "phone": mask_phone,
    "national_id": mask_national_id,
    "card": mask_card,
}
# Percent-, HTML- and JSON-escaped '@' as found in links and serialised logs.
_AT_ESCAPES = re.compile(r"%40|&#64;|&#x40;|\\u0040", re.IGNORECASE)
_SQLITE_MAGIC, _PARQUET_MAGIC, _GZIP_MAGIC = b"SQLite format 3\x00", b"PAR1", b"\x1f\x8b"
_MAX_TEXT_BYTES = 512 * 1024 * 1024
# Vendored static assets (the data docs' fonts carry their designers' contact addresses).
SKIPPED_SUFFIXES = (
    ".otf",
    ".ttf",
    ".woff",
    ".woff2",
    ".eot",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".ico",
    ".webp",
)


@dataclass(frozen=True)
class Finding:
    location: str  # "<db file>:<schema>.<table>.<column>", "<sqlite file>:<table>.<column>" or a file path
    kind: str  # email, phone, national_id or card
    count: int  # values (rows) holding at least one hit; for plain files, the number of hits
    sample: str  # masked, never the plaintext

    def __str__(self) -> str:
        return f"{self.location}: {self.count} {self.kind} (e.g. {self.sample})"


# --------------------------------------------------------------------------- matching


def _is_real(kind: str, match: str) -> bool:
    """The post-regex checks, in Python: check digits, decimals, ignored domains."""
    if kind == "email":
        domain = match.rsplit("@", 1)[1].lower()
        return domain not in IGNORED_EMAIL_DOMAINS and domain.rsplit(".", 1)[1] not in _FILE_EXTENSION_TLDS
    if match.startswith("."):
        return False
    if kind == "national_id":
        return prc_id_valid(match)
    if kind == "card":
        digits = re.sub(r"[^0-9]", "", match)
        return 13 <= len(digits) <= 19 and luhn_valid(digits)
    return True


def _sql_check(kind: str) -> str:
    """The same checks as ``_is_real`` as a DuckDB boolean over lambda variable ``m``."""
    if kind == "email":
        domains = ", ".join(f"'{d}'" for d in IGNORED_EMAIL_DOMAINS)
        exts = "|".join(_FILE_EXTENSION_TLDS)
        return (
            f"split_part(lower(m), '@', -1) not in ({domains}) "
            f"and not regexp_matches(lower(m), '\\.({exts})$')"
        )
    digits = "regexp_replace(m, '[^0-9]', '', 'g')"
    checks = {
        "phone": "true",
        "national_id": prc_id_valid_sql("m"),
        "card": f"length({digits}) between 13 and 19 and {luhn_valid_sql(digits)}",
    }
    return f"not starts_with(m, '.') and {checks[kind]}"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# A check digit passes by chance for ~1 in 10 random numbers. Where many candidates have the
# shape of a card or id but only about that share pass, the column holds numeric ids, not cards.
_CHECKED_KINDS = ("card", "national_id")
_CHANCE_MIN_CANDIDATES, _CHANCE_MAX_SHARE = 20, 0.3


def _looks_like_chance(kind: str, valid: int, candidates: int) -> bool:
    return (
        kind in _CHECKED_KINDS
        and candidates >= _CHANCE_MIN_CANDIDATES
        and valid < _CHANCE_MAX_SHARE * candidates
    )


class _Tally:
    """Counts hits per (location, kind), keeping one masked sample."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], list] = {}

    def add(
        self, location: str, kind: str, count: int, candidates: int, plaintext_sample: str | None
    ) -> None:
        entry = self.counts.setdefault((location, kind), [0, 0, None])
        entry[0] += count
        entry[1] += candidates
        if entry[2] is None and count:
            entry[2] = _MASKERS[kind](plaintext_sample) or "***"

    def scan_text(self, location: str, text: str, per_value: bool) -> None:
        if not _ANY.search(text):
            return
        text = _AT_ESCAPES.sub("@", text)
        for kind, pattern in _COMPILED.items():
            matches = [m.group(0) for m in pattern.finditer(text)]
            hits = [m for m in matches if _is_real(kind, m)]
            if matches:
                n_hits = (1 if hits else 0) if per_value else len(hits)
                self.add(location, kind, n_hits, 1 if per_value else len(matches), hits[0] if hits else None)

    def findings(self) -> list[Finding]:
        return [
            Finding(loc, kind, n, sample)
            for (loc, kind), (n, candidates, sample) in self.counts.items()
            if n and not _looks_like_chance(kind, n, candidates)
        ]


# --------------------------------------------------------------------------- DuckDB


def _scannable(data_type: str) -> bool:
    t = data_type.upper()
    if t in ("VARCHAR", "JSON", "BLOB", "BIGINT", "UBIGINT", "HUGEINT", "UHUGEINT") or t.startswith(
        "DECIMAL"
    ):
        return True
    return any(marker in t for marker in ("[]", "STRUCT", "MAP", "UNION", "[")) or t.startswith("VARCHAR")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def scan_relation(
    con: duckdb.DuckDBPyConnection, relation_sql: str, columns: list[tuple[str, str]], location: str
) -> list[Finding]:
    """Scan ``columns`` ([(name, type)]) of a FROM-clause relation: one regex pass over all
    columns, then check digits and samples only for the columns that had candidates."""
    cols = [name for name, data_type in columns if _scannable(data_type)]
    if not cols:
        return []
    any_re = _sql_literal(ANY_PATTERN)
    values = {c: f"cast({_quote(c)} as varchar)" for c in cols}
    candidates = con.execute(
        "select "
        + ", ".join(f"count(*) filter (where regexp_matches({values[c]}, {any_re}))" for c in cols)
        + f" from {relation_sql}"
    ).fetchone()
    tally = _Tally()
    for column, n_candidates in zip(cols, candidates, strict=True):
        if not n_candidates:
            continue
        raw = ", ".join(f"regexp_extract_all(v, {_sql_literal(PATTERNS[k])}) as {k}" for k in KINDS)
        checked = ", ".join(f"{k}, list_filter({k}, lambda m: {_sql_check(k)}) as {k}_ok" for k in KINDS)
        stats = ", ".join(
            f"count(*) filter (where len({k}_ok) > 0), count(*) filter (where len({k}) > 0), "
            f"any_value({k}_ok[1]) filter (where len({k}_ok) > 0)"
            for k in KINDS
        )
        row = con.execute(
            f"select {stats} from (select {checked} from (select {raw} from "
            f"(select {values[column]} as v from {relation_sql}) where regexp_matches(v, {any_re})))"
        ).fetchone()
        for i, kind in enumerate(KINDS):
            count, n_candidates, sample = row[3 * i : 3 * i + 3]
            if n_candidates:
                tally.add(f"{location}.{column}", kind, count, n_candidates, sample)
    return tally.findings()


def scan_duckdb(path: Path, *, include_views: bool = False, label: str | None = None) -> list[Finding]:
    """Every base table (and optionally view) of a DuckDB database file, opened read-only."""
    label = label or str(path)
    findings: list[Finding] = []
    with duckdb.connect(str(path), read_only=True) as con:
        kinds = ("BASE TABLE", "VIEW") if include_views else ("BASE TABLE",)
        rows = con.execute(
            "select c.table_schema, c.table_name, c.column_name, c.data_type "
            "from information_schema.columns c join information_schema.tables t "
            "using (table_catalog, table_schema, table_name) "
            "where c.table_catalog = current_database() and t.table_type in ? "
            "order by c.table_schema, c.table_name, c.ordinal_position",
            [list(kinds)],
        ).fetchall()
        tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for schema, table, column, data_type in rows:
            tables.setdefault((schema, table), []).append((column, data_type))
        for (schema, table), columns in tables.items():
            relation = f"{_quote(schema)}.{_quote(table)}"
            findings += scan_relation(con, relation, columns, f"{label}:{schema}.{table}")
    return findings


def scan_parquet(path: Path) -> list[Finding]:
    with duckdb.connect() as con:
        relation = f"read_parquet({_sql_literal(str(path))})"
        columns = [(r[0], r[1]) for r in con.execute(f"describe select * from {relation}").fetchall()]
        return scan_relation(con, relation, columns, str(path))


# --------------------------------------------------------------------------- files


def scan_sqlite(path: Path) -> list[Finding]:
    """Every text, blob and integer value of every table of a SQLite file (opened read-only)."""
    tally = _Tally()
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            names = [r[1] for r in con.execute(f"pragma table_info({_quote(table)})")]
            cursor = con.execute(f"select {', '.join(_quote(n) for n in names)} from {_quote(table)}")
            while batch := cursor.fetchmany(5000):
                for row in batch:
                    for name, value in zip(names, row, strict=True):
                        if isinstance(value, (bytes, memoryview)):
                            value = bytes(value).decode("utf-8", "replace")
                        elif isinstance(value, int) and value > 10**10:
                            value = str(value)
                        if isinstance(value, str):
                            tally.scan_text(f"{path}:{table}.{name}", value, per_value=True)
    finally:
        con.close()
    return tally.findings()


def scan_file(path: Path) -> list[Finding]:
    """One file, by its content: SQLite, DuckDB, Parquet, gzip or anything else as text."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(_SQLITE_MAGIC):
        return scan_sqlite(path)
    if head[8:12] == b"DUCK":
        return scan_duckdb(path)
    if head.startswith(_PARQUET_MAGIC):
        return scan_parquet(path)
    opener = gzip.open if head.startswith(_GZIP_MAGIC) else open
    tally = _Tally()
    with opener(path, "rb") as handle:
        while block := handle.read(_MAX_TEXT_BYTES):
            # Blocks are huge, so a value split across two of them is a negligible miss.
            tally.scan_text(str(path), block.decode("utf-8", "replace"), per_value=False)
    return tally.findings()


def _walk(root: Path, excluded: set[Path]) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(s for s in subdirs if (Path(directory) / s).resolve() not in excluded)
        for name in sorted(files):
            yield Path(directory) / name


def iter_files(roots: Iterable[Path], exclude: Iterable[Path] = ()) -> Iterator[Path]:
    excluded = {p.resolve() for p in exclude}
    seen: set[Path] = set()
    for root in roots:
        root = root.resolve()
        if not root.exists() or root in excluded:
            continue
        for path in [root] if root.is_file() else _walk(root, excluded):
            path = path.resolve()
            if path in seen or path in excluded or not path.is_file():
                continue
            seen.add(path)
            yield path


# --------------------------------------------------------------------------- entry points


def default_scan_roots(settings: Settings) -> list[Path]:
    roots = [settings.home, settings.reports, settings.dagster_home, settings.mlflow_dir]
    artifacts = settings.mlflow_artifact_root
    if artifacts.startswith("file://"):
        roots.append(Path(artifacts.removeprefix("file://")))
    return roots


def default_excludes(settings: Settings) -> list[Path]:
    """The raw landing zone (plaintext by design), the keys, and the warehouse (scanned as a database)."""
    warehouse = settings.warehouse
    return [settings.landing, settings.keys_dir, warehouse, warehouse.with_name(warehouse.name + ".wal")]


def scan(
    settings: Settings | None = None,
    *,
    paths: Iterable[Path] | None = None,
    extra_paths: Iterable[Path] = (),
    exclude: Iterable[Path] = (),
    warehouse: bool = True,
    files: bool = True,
    include_views: bool = False,
) -> list[Finding]:
    """Scan the warehouse and the files under ``paths`` (default: C360_HOME and the Dagster and
    MLflow locations). Unreadable files are reported as warnings, not findings."""
    settings = settings or get_settings()
    findings: list[Finding] = []
    if warehouse and settings.warehouse.is_file():
        findings += scan_duckdb(settings.warehouse, include_views=include_views)
    if files:
        roots = list(paths) if paths is not None else default_scan_roots(settings)
        for path in iter_files([*roots, *extra_paths], [*default_excludes(settings), *exclude]):
            if path.suffix.lower() in SKIPPED_SUFFIXES:
                continue
            try:
                findings += scan_file(path)
            except (OSError, sqlite3.Error, duckdb.Error) as exc:
                warnings.warn(f"could not scan {path}: {exc}", stacklevel=2)
    return findings
