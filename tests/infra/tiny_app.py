"""A minimal Flask app for the support-code self-tests (served by granian and gunicorn)."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.get("/pid")
def pid():
    return {"pid": os.getpid()}


@app.get("/")
def index():
    return f'<!doctype html><title>tiny</title><p id="pid">{os.getpid()}</p>'


@app.get("/env/<name>")
def env(name):
    return {"value": os.environ.get(name)}
