"""``c360 keys``, ``c360 reveal``, ``c360 erase`` and ``c360 scan-pii``: the privacy commands over
``c360.privacy`` (keys, access, erasure, scan)."""

from __future__ import annotations

import csv
import sys
import time
import warnings
from pathlib import Path

import click

from c360.privacy.access import REVEALABLE_FIELDS, ROLES, AccessDenied, reveal
from c360.privacy.erasure import RETRAIN_NOTICE, IncompleteErasure, erase_and_compact
from c360.privacy.keys import (
    ENV_ENCRYPTION_KEYS,
    ENV_HMAC_KEY,
    Keyring,
    ensure_dev_keys,
    key_file_path,
    write_key_file,
)
from c360.privacy.scan import scan
from c360.settings import get_settings


def announce_dev_keys(settings=None) -> None:
    """``ensure_dev_keys`` and say where the keys come from (``make demo``, ``keys init --if-missing``)."""
    settings = settings or get_settings()
    existed = key_file_path(settings).exists()
    path = ensure_dev_keys(settings)
    if path is None:
        click.echo(f"Using encryption keys from {ENV_ENCRYPTION_KEYS} / {ENV_HMAC_KEY}.")
    elif existed:
        click.echo(f"Using key file {path}")
    else:
        click.echo(f"Created development key file {path} (0600). Back it up: encrypted data needs it.")


@click.group("keys")
def keys_command() -> None:
    """Manage the encryption and pseudonymisation keys."""


@keys_command.command("init")
@click.option(
    "--if-missing", is_flag=True, help="Keep an existing key file (or env keys) instead of failing."
)
def init_keys(if_missing: bool) -> None:
    """Create a key file with a fresh AES-256 key and HMAC key."""
    if if_missing:
        announce_dev_keys(get_settings())
        return
    path = key_file_path(get_settings())
    if Keyring.from_env() is not None:
        click.echo(f"Note: {ENV_ENCRYPTION_KEYS} is set and takes precedence over {path}.", err=True)
    try:
        write_key_file(Keyring.generate(), path)
    except FileExistsError:
        raise click.ClickException(f"{path} already exists; use `c360 keys rotate` to add a key") from None
    click.echo(f"Created {path} (mode 0600, active key k1). Keep it out of the repository and back it up.")


@keys_command.command("rotate")
def rotate_keys() -> None:
    """Add a new active encryption key to the key file; old keys keep decrypting."""
    path = key_file_path(get_settings())
    if not path.is_file():
        raise click.ClickException(f"no key file at {path}; run `c360 keys init` first")
    if Keyring.from_env() is not None:
        raise click.ClickException(
            f"keys come from {ENV_ENCRYPTION_KEYS}; rotate them where they are managed"
        )
    keyring = Keyring.from_file(path).rotated()
    write_key_file(keyring, path, overwrite=True)
    click.echo(
        f"Active key is now {keyring.active_key_id} (kept: {', '.join(sorted(keyring.encryption_keys))}). "
        "Existing tokens still decrypt; `c360 keys rewrap` re-encrypts them so old keys can be retired."
    )


@keys_command.command("rewrap")
@click.option("--batch-size", default=50_000, show_default=True, help="Rows re-encrypted per batch.")
def rewrap_keys(batch_size: int) -> None:
    """Re-encrypt every stored token under the active key (run after `c360 keys rotate`)."""
    from c360.privacy.rewrap import remaining_key_ids, rewrap_warehouse
    from c360.warehouse import warehouse

    keyring = Keyring.load(get_settings())
    with warehouse() as con:
        counts = rewrap_warehouse(con, keyring, batch_size)
        remaining = remaining_key_ids(con)
        con.execute("checkpoint")
    for column, n in counts.items():
        click.echo(f"{column}: {n} rewrapped")
    click.echo(
        f"Tokens per key now: {', '.join(f'{k}={n}' for k, n in sorted(remaining.items())) or 'none'} "
        f"(active {keyring.active_key_id})."
    )


def _read_requests(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "customer_id" not in reader.fieldnames:
            raise click.ClickException(f"{path} needs a header with a customer_id column")
        return [row["customer_id"].strip() for row in reader if (row.get("customer_id") or "").strip()]


@click.command("erase")
@click.option("--customer-id", "customer_ids", multiple=True, help="A person to erase (repeatable).")
@click.option(
    "--file",
    "request_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="CSV with a customer_id column: a batch of requests.",
)
@click.option("--request-id", default=None, help="Your erasure request reference (default: a new uuid).")
def erase_command(customer_ids: tuple[str, ...], request_file: Path | None, request_id: str | None) -> None:
    """Erase people everywhere (raw, quarantine, derived tables, audiences) and keep them out."""
    ids = list(customer_ids) + (_read_requests(request_file) if request_file else [])
    if not ids:
        raise click.UsageError("give --customer-id or --file")
    try:
        result = erase_and_compact(sorted(set(ids)), request_id)
    except IncompleteErasure as exc:
        raise click.ClickException(str(exc)) from exc
    total = sum(result.rows_by_table.values())
    click.echo(
        f"Erasure {result.request_id}: {result.customers} person(s), {total} rows in {len(result.rows_by_table)} tables "
        f"({result.seconds:.1f}s, warehouse rewritten)."
    )
    for table, n in result.rows_by_table.items():
        click.echo(f"  {table}: {n}")
    click.echo(RETRAIN_NOTICE)


@click.command("scan-pii")
@click.option(
    "--path",
    "extra_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Also scan this file or directory.",
)
@click.option(
    "--exclude", multiple=True, type=click.Path(path_type=Path), help="Skip this file or directory."
)
@click.option("--no-files", is_flag=True, help="Scan only the warehouse.")
@click.option("--no-warehouse", is_flag=True, help="Scan only files.")
@click.option(
    "--include-views", is_flag=True, help="Also scan warehouse views (slower; tables are always scanned)."
)
def scan_pii_command(extra_paths, exclude, no_files, no_warehouse, include_views) -> None:
    """Find plaintext emails, phones, PRC ids and card numbers in the warehouse and the run outputs.

    Exits 1 when anything is found; samples are masked.
    """
    settings = get_settings()
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as problems:
        warnings.simplefilter("always")
        findings = scan(
            settings,
            extra_paths=extra_paths,
            exclude=exclude,
            warehouse=not no_warehouse,
            files=not no_files,
            include_views=include_views,
        )
    for problem in problems:
        click.echo(f"warning: {problem.message}", err=True)
    elapsed = time.perf_counter() - started
    if not findings:
        click.echo(f"No plaintext PII found ({elapsed:.1f}s).")
        return
    for finding in sorted(findings, key=lambda f: (f.location, f.kind)):
        click.echo(str(finding))
    click.echo(f"{len(findings)} location(s) with plaintext PII ({elapsed:.1f}s).", err=True)
    sys.exit(1)


@click.command("reveal")
@click.option("--customer-id", required=True, help="The person (marts.customer_360.customer_id).")
@click.option("--field", type=click.Choice(REVEALABLE_FIELDS), required=True, help="Which value to decrypt.")
@click.option("--reason", required=True, help="Why (ticket or request id); stored in the audit.")
@click.option("--role", type=click.Choice(list(ROLES)), required=True, help="The role you act in.")
@click.option("--as", "actor", default=None, help="Who is asking (default: the OS user).")
def reveal_command(customer_id: str, field: str, reason: str, role: str, actor: str | None) -> None:
    """Decrypt one sensitive field of one person for an authorised role; every attempt is audited
    in privacy.access_audit."""
    from c360.privacy.keys import MissingKeyError
    from c360.warehouse import warehouse

    try:
        keyring = Keyring.load()
    except MissingKeyError:
        keyring = None
    with warehouse() as con:
        try:
            result = reveal(con, customer_id, field, role=role, reason=reason, keyring=keyring, actor=actor)
        except AccessDenied as exc:
            raise click.ClickException(f"denied: {exc} (audited)") from None
        except LookupError as exc:
            raise click.ClickException(f"{exc} (audited)") from None
        except Exception as exc:  # noqa: BLE001 - any decryption failure is reported (and was audited)
            raise click.ClickException(f"could not decrypt: {type(exc).__name__}: {exc} (audited)") from None
    for record, value in result.values:
        click.echo(f"{record}\t{value}")
    click.echo(f"audit {result.audit_id}", err=True)
