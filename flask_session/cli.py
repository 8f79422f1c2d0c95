"""``flask session ...`` commands."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import AppGroup

from .errors import StoreUnavailable
from .interface import ServerSideSessionInterface
from .stores.upgrade08 import Upgrade08

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
        report = interface.session_store.cleanup(stale_temp_after=stale_temp_after)
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


@session_cli.command("upgrade-08")
@click.option(
    "--finish",
    is_flag=True,
    help="Move every session left in Flask-Session 0.8's layout to this package's and"
    " delete 0.8's copies (only once no 0.8 server is left and SESSION_08_SERVERS is off).",
)
def upgrade_08_command(finish: bool) -> None:
    """Count the sessions in Flask-Session 0.8's layout (a rolling upgrade's progress).

    Prints how many 0.8 sessions no server of this package has used yet, and how many
    0.8 copies are kept for 0.8's servers (SESSION_08_SERVERS). Exits 1 while any is
    left, so a deploy script can wait on it.
    """
    interface = current_app.session_interface
    if not isinstance(interface, ServerSideSessionInterface):
        raise click.ClickException("this app does not use flask_session: call Session(app)")
    store = interface.store
    if not isinstance(store, Upgrade08):
        raise click.ClickException(
            f"the {store.name} store cannot serve a rolling upgrade from Flask-Session 0.8;"
            " see the docs' 'Upgrading from Flask-Session 0.8'"
        )
    try:
        if finish:
            moved = store.finish_08()
            if moved.note:
                click.echo(f"{moved.note}.")
                return
            click.echo(
                f"Moved {moved.not_carried_over} Flask-Session 0.8 session(s) not yet carried"
                f" over, and dropped {moved.mirrored} 0.8 copy(ies) of this package's sessions."
            )
        count = store.count_08()
    except RuntimeError as error:  # refused while 0.8 servers may still serve
        raise click.ClickException(str(error)) from error
    except StoreUnavailable as error:
        raise click.ClickException(str(error)) from error
    if count.note:
        click.echo(f"{count.note}.")
        return
    click.echo(
        f"Flask-Session 0.8 sessions in the store: {count.total} ({count.not_carried_over}"
        f" not yet carried over, {count.mirrored} kept current for 0.8 servers)."
    )
    if count.total:
        raise SystemExit(1)
