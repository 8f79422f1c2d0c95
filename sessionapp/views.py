"""The routes: the page, each caller's own counter, the shared counter, and the health check.

The caller's counter lives in their server-side session under :data:`COUNTER_KEY`. It
only ever changes through ``session.incr``, which the store applies atomically, so
concurrent requests on one cookie, in any worker process or on any app server, never
lose a step. Every answer is ``{"counter": <int>}`` for API clients; a browser's form
post is sent back to the page (303) instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.exceptions import MethodNotAllowed

from flask_session import (
    ServerSideSession,
    ServerSideSessionInterface,
    StoreUnavailable,
    read_only_session,
)
from flask_session.stores.base import Store

from .negotiation import wants_html
from .shared_counter import shared_counter

COUNTER_KEY = "counter"

bp = Blueprint("counter", __name__)


def own_session() -> ServerSideSession:
    """``flask.session``, typed as the server-side session Session(app) installed."""
    return cast(ServerSideSession, session)


def current_store() -> Store:
    """The app's session store (for its name and its health)."""
    return cast(ServerSideSessionInterface, current_app.session_interface).store


View = TypeVar("View", bound=Callable[..., Response])


def changes_state(view: View) -> View:
    """Refuse HEAD on a route that accepts GET but changes something.

    GET is accepted on /inc, /dec and /reset for simple clients and links, and Flask
    answers HEAD wherever it answers GET. HEAD must be safe (link checkers and
    prefetchers send it without a second thought), so it gets a 405 instead of a count.
    """

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Response:
        if request.method == "HEAD":
            raise MethodNotAllowed(valid_methods=["GET", "POST"])
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def counter_answer(value: int, **page_args: Any) -> Response:
    """``{"counter": value}``, or for a browser's form post a 303 back to the page."""
    if wants_html():
        return redirect(url_for(".index", **page_args), code=303)  # type: ignore[return-value]
    return jsonify(counter=value)


@bp.after_request
def never_cache(response: Response) -> Response:
    # Every answer here depends on the caller's session or on the shared counter, and
    # a cached copy would show someone a stale (or someone else's) number. A scan, not
    # headers.setdefault: a miss there raises and catches an exception, every request.
    if not any(name.lower() == "cache-control" for name, _ in response.headers):
        response.headers.add("Cache-Control", "no-store")
    return response


@bp.get("/")
@read_only_session  # shows the counter; never waits behind a request holding the session
def index() -> str:
    # ?taken=N shows the number a form post (without JavaScript) just took; it only
    # ever shows the caller a number, so a hand-made URL can mislead nobody else.
    return render_template(
        "index.html",
        counter=session.get(COUNTER_KEY, 0),
        shared_counter=shared_counter().value(),
        taken=request.args.get("taken", type=int),
        store=current_store().name,
    )


@bp.route("/inc", methods=["GET", "POST"])
@changes_state
def increment() -> Response:
    return counter_answer(own_session().incr(COUNTER_KEY, 1))


@bp.route("/dec", methods=["GET", "POST"])
@changes_state
def decrement() -> Response:
    return counter_answer(own_session().incr(COUNTER_KEY, -1))


@bp.route("/reset", methods=["GET", "POST"])
@changes_state
def reset() -> Response:
    # Set to 0 under the session lock rather than deleting the session: an increment
    # racing with the reset then lands on this same session (it waits for the lock)
    # instead of starting a new one. A caller without a counter gets no session at all.
    if session.get(COUNTER_KEY, 0) != 0:
        session[COUNTER_KEY] = 0
    return counter_answer(0)


@bp.get("/counter")
@read_only_session
def counter() -> Response:
    # Reading takes no session lock and never creates a session: a new client gets 0,
    # no cookie, nothing stored.
    return jsonify(counter=session.get(COUNTER_KEY, 0))


@bp.post("/shared/inc")
def shared_increment() -> Response:
    value = shared_counter().increment()
    return counter_answer(value, taken=value)


@bp.get("/shared")
def shared_value() -> Response:
    return jsonify(counter=shared_counter().value())


@bp.post("/shared/reset")
def shared_reset() -> Response:
    shared_counter().reset()
    return counter_answer(0)


@bp.get("/healthz")
def healthz() -> Response:
    """200 when the store answers and would accept a write; else 503 with Retry-After
    and the reason (``StoreUnavailable.reason``, fit for clients), so a load balancer
    stops sending requests that would get 503 anyway. Never touches the session: a
    probe must not create sessions or set cookies."""
    store = current_store()
    try:
        store.ping()
    except StoreUnavailable as error:
        response = jsonify(status="unavailable", store=store.name, reason=error.reason)
        response.status_code = HTTPStatus.SERVICE_UNAVAILABLE
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    return jsonify(status="ok", store=store.name)
