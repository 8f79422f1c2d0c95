"""Two ``session=`` cookies in one request: the one naming a live session wins.

A sibling subdomain can set a cookie of the same name for the parent domain, and the
browser then sends both (in an order the attacker can influence). Every well-formed
candidate is tried in order; the store says which one is live. On every store.
"""

from __future__ import annotations

import pytest

from flask_session.ids import new_session_id

from .conftest import stored_items


def live_session(app, increments: int = 3) -> str:
    client = app.test_client()
    for _ in range(increments):
        client.post("/inc")
    return client.get_cookie("session").value


def send(app, method: str, path: str, *cookies: str):
    """A request carrying exactly these ``session`` cookies, in this order."""
    header = "; ".join(f"session={value}" for value in cookies)
    return app.test_client(use_cookies=False).open(path, method=method, headers={"Cookie": header})


def planted_ids(app) -> list[str]:
    id_bytes = app.config["SESSION_ID_LENGTH"]
    return [
        new_session_id(id_bytes),  # well-formed, unknown to the store
        "not-a-session-id",  # malformed
        "",  # empty
    ]


@pytest.mark.parametrize("order", ["planted first", "planted last"])
@pytest.mark.parametrize("kind", [0, 1, 2], ids=["unknown", "malformed", "empty"])
def test_the_live_session_wins_over_a_planted_cookie(app, order, kind):
    sid = live_session(app)
    planted = planted_ids(app)[kind]
    cookies = (planted, sid) if order == "planted first" else (sid, planted)
    # Read without the lock (a read-only view), read under the lock (/reset reads then
    # writes), and the atomic increment: every path finds the live session.
    assert send(app, "GET", "/counter", *cookies).get_json() == {"counter": 3}
    response = send(app, "POST", "/inc", *cookies)
    assert response.get_json() == {"counter": 4}
    assert f"session={sid};" in response.headers["Set-Cookie"]
    assert send(app, "POST", "/dec", *cookies).get_json() == {"counter": 3}
    assert send(app, "POST", "/reset", *cookies).get_json() == {"counter": 0}
    assert send(app, "GET", "/counter", sid).get_json() == {"counter": 0}


def test_several_planted_cookies_and_repeats_still_find_the_live_one(app):
    sid = live_session(app, increments=2)
    unknown = [new_session_id(app.config["SESSION_ID_LENGTH"]) for _ in range(3)]
    cookies = (*unknown, "junk", unknown[0], sid, sid)
    assert send(app, "POST", "/inc", *cookies).get_json() == {"counter": 3}
    assert send(app, "GET", "/counter", sid).get_json() == {"counter": 3}


def test_with_no_live_candidate_a_fresh_session_is_started_and_nothing_is_created_by_looking(
    app,
):
    unknown = [new_session_id(app.config["SESSION_ID_LENGTH"]) for _ in range(2)]
    assert send(app, "GET", "/counter", *unknown).get_json() == {"counter": 0}
    assert [item for item in stored_items(app) if "counter" not in item] == []
    response = send(app, "POST", "/inc", *unknown)
    assert response.get_json() == {"counter": 1}
    new_sid = response.headers["Set-Cookie"].split(";")[0].removeprefix("session=")
    assert new_sid not in unknown


def test_two_live_sessions_the_first_in_the_request_is_used(app):
    """Both live (the user's and one the planter made for itself): the browser's order
    decides, as with one cookie per name; neither session is changed by the other."""
    first, second = live_session(app, 1), live_session(app, 5)
    assert send(app, "POST", "/inc", first, second).get_json() == {"counter": 2}
    assert send(app, "GET", "/counter", second).get_json() == {"counter": 5}
