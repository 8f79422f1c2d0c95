"""The counter service exactly as ``app:app`` builds it, plus one test-only hook.

A request carrying ``X-Test-Delay: <seconds>`` sleeps after its view returned and before
its session is saved (``after_request`` runs before ``save_session``), so a test can
hold a request "in the middle": its session loaded (and locked, if the view read it),
its answer not yet saved. Without the header the app behaves exactly as the service.
Served by gunicorn as ``tests.reliability.slow_service:app``.
"""

from __future__ import annotations

import time

from flask import request

from sessionapp import create_app

MAX_DELAY = 10.0

app = create_app()


@app.after_request
def delay_before_save(response):
    delay = request.headers.get("X-Test-Delay")
    if delay:
        time.sleep(min(float(delay), MAX_DELAY))
    return response
