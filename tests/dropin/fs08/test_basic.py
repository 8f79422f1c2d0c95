# Vendored from Flask-Session 0.8.0 (https://github.com/pallets-eco/flask-session,
# tests/test_basic.py, BSD-3-Clause, (c) Flask-Session contributors) to prove the drop-in.
# Changes, each marked "drop-in:" below: SESSION_TYPE "null" set explicitly
# (our default is filesystem).
import flask
import pytest

import flask_session


def test_null_session():
    """Invalid session should fail to get/set the flask session"""
    with pytest.raises(ValueError):
        app = flask.Flask(__name__)
        app.secret_key = "alsdkfjaldkjsf"
        # drop-in: 0.8's default SESSION_TYPE is "null" (refused); ours is "filesystem",
        # so the unknown type is spelled out.
        app.config["SESSION_TYPE"] = "null"
        flask_session.Session(app)
