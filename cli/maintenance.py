"""``c360 compact``: rewrite the warehouse densely, by hand (the weekly job does it on Sundays)."""

from __future__ import annotations

import click


@click.command("compact")
def compact_command() -> None:
    """Rewrite the warehouse file densely and give back the space daily runs leave. Needs the file
    to itself (no run, the insights app closed); the copy is checked before it replaces the file."""
    from c360.compaction import CompactionError, compact

    try:
        result = compact()
    except CompactionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Compacted {result.path} in {result.seconds:.1f} s")
    click.echo(f"  {'before':<10}{result.bytes_before / 1e6:>12,.1f} MB")
    click.echo(f"  {'after':<10}{result.bytes_after / 1e6:>12,.1f} MB")
    click.echo(f"  {'reclaimed':<10}{result.reclaimed_bytes / 1e6:>12,.1f} MB")
    click.echo(
        f"  checked: {result.tables} tables ({result.rows:,} rows) and {result.views} views, "
        "equal in the copy"
    )
    if result.erasures_completed:
        click.echo(
            f"  completed {result.erasures_completed} erasure(s) whose own rewrite had failed "
            "(privacy.erasure_log.compacted)"
        )
