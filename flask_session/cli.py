"""``flask session ...`` commands."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import AppGroup

from .errors import StoreUnavailable
from .interface import ServerSideSessionInterface

session_cli = AppGroup("session", help="Manage server-side sessions.")

_STALE_TEMP_OPTION = click.option(
    "--stale-temp-after",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Remove writers' temp files older than this many seconds (left by a killed writer).",
)
_VERBOSE_OPTION = click.option("-v", "--verbose", is_flag=True, help="List every file removed.")


@session_cli.command("cleanup")
@_STALE_TEMP_OPTION
@_VERBOSE_OPTION
def cleanup_command(stale_temp_after: float, verbose: bool) -> None:
    """Remove expired sessions and stale temp files. Never removes a live session.

    Safe to run while the app serves requests, for example from cron.
    """
    run_cleanup(stale_temp_after, verbose)


#: Flask-Session 0.8's name for the same command (its cron lines say `flask session_cleanup`)
_aliases = AppGroup()


@_aliases.command("session_cleanup")
@_STALE_TEMP_OPTION
@_VERBOSE_OPTION
def session_cleanup_alias(stale_temp_after: float, verbose: bool) -> None:
    """Same as `flask session cleanup` (Flask-Session 0.8's name for it)."""
    run_cleanup(stale_temp_after, verbose)


def run_cleanup(stale_temp_after: float, verbose: bool) -> None:
    """Clean up the current app's session store, reporting what was removed."""
    interface = current_app.session_interface
    if not isinstance(interface, ServerSideSessionInterface):
        raise click.ClickException("this app does not use flask_session: call Session(app)")
    started = time.monotonic()
    try:
        report = interface.store.cleanup(stale_temp_after=stale_temp_after)
    except StoreUnavailable as error:
        raise click.ClickException(str(error)) from error
    elapsed = time.monotonic() - started
    if verbose:
        for path in report.removed_paths:
            click.echo(f"removed {path}")
    if report.note:
        click.echo(report.note)
        return
    click.echo(
        f"Removed {report.expired_removed} expired session(s) and {report.temp_removed}"
        f" stale temp file(s) in {elapsed:.2f} s; kept {report.live_kept} live session(s)."
    )
    if report.index_removed:
        click.echo(
            f"Removed {report.index_removed} per-user index entries of sessions that were gone."
        )
