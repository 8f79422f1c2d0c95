"""Default settings of the counter service: every setting it reads, in one place.

``sessionapp.create_app`` loads this file first, then applies environment overrides
with Flask's convention: ``FLASK_<NAME>`` overrides ``NAME``, and values are parsed as
JSON where they can be (``FLASK_SESSION_LOCKING=false`` is the boolean False,
``FLASK_SESSION_LOCK_TIMEOUT=5`` the number 5, anything else stays a string). Examples::

    FLASK_SESSION_TYPE=redis FLASK_SESSION_REDIS_URL=redis://127.0.0.1:6379/0 make run
    FLASK_SESSION_FILE_DIR=/var/lib/sessionapp/sessions make run

Settings that are not read from here: where gunicorn listens and how many processes it
runs are in ``gunicorn.conf.py`` (``SESSIONAPP_BIND``, ``SESSIONAPP_WORKERS``,
``SESSIONAPP_THREADS``).
"""

import os

# Lower case, so Flask does not take it for a setting.
_repo_root = os.path.dirname(os.path.abspath(__file__))

# --- Where sessions (and the shared counter) live -----------------------------------------

# "filesystem": one file per session in SESSION_FILE_DIR; needs no server, but every app
# server must see the same directory (one machine, or a shared filesystem with working
# flock). "redis": sessions in Redis at SESSION_REDIS_URL; any number of app servers.
SESSION_TYPE = "filesystem"

# The filesystem store's directory (created with mode 0700 if missing). The shared
# counter is a file in the same directory.
SESSION_FILE_DIR = os.path.join(_repo_root, "instance", "flask_session")

# The Redis store's server, e.g. "redis://127.0.0.1:6379/0" or
# "rediss://:password@redis.internal:6380/0". There is deliberately no default: with
# SESSION_TYPE = "redis" and no URL the service refuses to start instead of quietly
# talking to whatever listens on localhost.
SESSION_REDIS_URL = None

# A ready redis.Redis client instead of a URL (only settable from Python, e.g. in
# create_app(test_config)). Retries are fine (every store command is safe to repeat);
# decode_responses is not: see flask_session's docs.
SESSION_REDIS = None

# The Redis server must use maxmemory-policy noeviction: any other policy deletes live
# sessions and the shared counter when memory runs out, so the service refuses to start.
# True starts anyway (with a warning), accepting that sessions may be lost.
SESSION_REDIS_ALLOW_EVICTION = False

# Prefix of every session's Redis key and of the hashed session file names.
SESSION_KEY_PREFIX = "session:"

# How session data is encoded in the store: "json" or "msgpack". Never pickle.
SESSION_SERIALIZATION_FORMAT = "json"

# Random bytes in a session id (32 bytes = 256 bits from `secrets`).
SESSION_ID_LENGTH = 32

# --- Concurrency ---------------------------------------------------------------------------

# Serialize read-modify-write code on one session (session["n"] += 1) with a per-session
# lock taken on first access and released when the response is saved. /inc and /dec use
# the atomic session.incr, which needs no lock; /reset (read, then write 0) and reads of
# the session run under it, so an increment never lands in the middle of a reset.
SESSION_LOCKING = True

# Seconds a request waits for a session's lock (and a crashed holder's Redis lock lives)
# before the request answers 503. Also bounds the wait for the shared counter's file lock.
SESSION_LOCK_TIMEOUT = 10

# --- Session lifetime and cookie -----------------------------------------------------------

# Sessions are permanent: the cookie has an expiry date, and the server drops a session
# that has been idle for PERMANENT_SESSION_LIFETIME.
SESSION_PERMANENT = True

# Idle timeout of a session, in seconds (31 days, Flask's default).
PERMANENT_SESSION_LIFETIME = 31 * 24 * 3600

# Push the expiry out on every request that uses the session (a sliding window). With
# False a session expires PERMANENT_SESSION_LIFETIME after it was last changed.
SESSION_REFRESH_EACH_REQUEST = True

# The cookie holding the session id. A "__Host-" name (e.g. "__Host-session") makes the
# browser refuse the cookie over plain HTTP and from subdomains; it needs
# SESSION_COOKIE_SECURE = True.
SESSION_COOKIE_NAME = "session"

# Scripts in the page can never read the session cookie.
SESSION_COOKIE_HTTPONLY = True

# "Lax": the browser does not send the cookie with cross-site POSTs (nor with requests
# made by other sites' scripts), which is what keeps another site from pressing this
# service's buttons for you.
SESSION_COOKIE_SAMESITE = "Lax"

# Send the cookie over HTTPS only. Off by default so that plain-HTTP clients on
# localhost (make run, curl) keep their session. Turn it on (FLASK_SESSION_COOKIE_SECURE=true)
# as soon as the service is reached over HTTPS, e.g. behind a TLS-terminating proxy.
SESSION_COOKIE_SECURE = False

# Cookie Domain and Path attributes; None means Flask's defaults (this host only, "/").
SESSION_COOKIE_DOMAIN = None
SESSION_COOKIE_PATH = None

# CHIPS "Partitioned" attribute: only for a service embedded in other sites' frames
# (it needs SESSION_COOKIE_SECURE). The counter page is not meant to be framed, so it stays off.
SESSION_COOKIE_PARTITIONED = False

# --- The shared counter --------------------------------------------------------------------

# Redis key of the shared counter (SESSION_TYPE = "redis"). It must not start with
# SESSION_KEY_PREFIX, so it can never collide with a session.
SHARED_COUNTER_KEY = "sessionapp:shared-counter"

# File name of the shared counter inside SESSION_FILE_DIR (SESSION_TYPE = "filesystem").
# A plain name: no "/", no leading ".", not ending in ".session" or ".tmp", so that
# `flask --app app session cleanup` never mistakes it for a session or a temp file.
SHARED_COUNTER_FILE = "shared-counter"

# --- Flask ---------------------------------------------------------------------------------

# Not needed by the sessions: their ids are random, unguessable and checked against the
# store, so nothing is signed with it. Set it (FLASK_SECRET_KEY) if you add something
# that signs data, such as Flask's flash messages on a cookie session.
SECRET_KEY = None

# --- Security headers (sessionapp/security.py) ---------------------------------------------

# Strict-Transport-Security max-age in seconds; 0 sends no HSTS header. Set it (for
# example 31536000, one year) only once the service is reached over HTTPS alone:
# browsers remember it and will refuse plain HTTP to this host for that long.
SECURITY_HSTS_SECONDS = 0
