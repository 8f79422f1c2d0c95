"""Default settings of the counter service: every setting it reads, in one place.

``sessionapp.create_app`` loads this file first, then applies environment overrides
with Flask's convention: ``FLASK_<NAME>`` overrides ``NAME``, and values are parsed as
JSON where they can be (``FLASK_SESSION_LOCK_TIMEOUT=5`` is the number 5, anything else
stays a string). Every setting is then checked at start-up, and a bad value stops the
service with a message naming it (``SessionConfigError``). Booleans accept true/false,
1/0, yes/no, on/off in any case (``FLASK_SESSION_COOKIE_SECURE=False`` is False);
numbers may be written as text (``"2"``) and must lie in the range given below; the
checked value is written back in its proper type. Examples::

    FLASK_SESSION_TYPE=redis FLASK_SESSION_REDIS_URL=redis://127.0.0.1:6379/0 make run
    FLASK_SESSION_FILE_DIR=/var/lib/sessionapp/sessions make run

Settings that are not read from here: where the server listens and how many processes it
runs are the ``SESSIONAPP_BIND``, ``SESSIONAPP_WORKERS`` and ``SESSIONAPP_THREADS``
variables, read by ``sessionapp/serve.py`` (granian, ``make run``) and ``gunicorn.conf.py``.
"""

import os

# Lower case, so Flask does not take it for a setting.
_repo_root = os.path.dirname(os.path.abspath(__file__))

# --- Where sessions (and the shared counter) live -----------------------------------------

# "filesystem": one file per session in SESSION_FILE_DIR; needs no server, but every app
# server must see the same directory (one machine, or a shared filesystem with working
# flock). "redis": sessions in Redis at SESSION_REDIS_URL; any number of app servers.
# "sqlalchemy": rows in PostgreSQL or SQLite at SESSION_SQLALCHEMY_URL. "memcached":
# items in memcached at SESSION_MEMCACHED_SERVERS (it may evict them: see the docs).
# Exactly one of the store names (lower case).
SESSION_TYPE = "filesystem"

# The filesystem store's directory (created with mode 0700 if missing). The shared
# counter is a file in the same directory (<name>.<prefix digest>.counter).
SESSION_FILE_DIR = os.path.join(_repo_root, "instance", "flask_session")

# The Redis store's server, e.g. "redis://127.0.0.1:6379/0" or
# "rediss://:password@redis.internal:6380/0". There is deliberately no default: with
# SESSION_TYPE = "redis" and no URL the service refuses to start instead of quietly
# talking to whatever listens on localhost.
SESSION_REDIS_URL = None

# The URL may also name a Redis Cluster ("redis+cluster://host1:6379,host2:6379") or a
# master watched by Sentinel ("redis+sentinel://host1:26379,host2:26379/mymaster/0");
# see docs/deployment.md.
#
# Durability across a Redis failover: with 1 (or more), every session write, increment
# and shared number is acknowledged only once that many replicas have it (Redis WAIT,
# up to SESSION_REDIS_WAIT_TIMEOUT seconds, else 503). With 0, a master that dies can
# take its last acknowledged writes with it. See docs/deployment.md for the cost.
SESSION_REDIS_MIN_REPLICAS = 0
SESSION_REDIS_WAIT_TIMEOUT = 1

# A ready redis.Redis client instead of a URL (only settable from Python, e.g. in
# create_app(test_config)). Retries are fine (every store command is safe to repeat);
# decode_responses is not: see flask_session's docs.
SESSION_REDIS = None

# The Redis server must use maxmemory-policy noeviction: any other policy deletes live
# sessions and the shared counter when memory runs out, so the service refuses to start.
# True starts anyway (with a warning), accepting that sessions may be lost.
SESSION_REDIS_ALLOW_EVICTION = False

# The sqlalchemy store's database, e.g. "postgresql+psycopg://app@127.0.0.1:5432/app" or
# "sqlite:////var/lib/sessionapp/sessions.db" (a file: the service refuses SQLite in
# memory, as each worker process would have its own; flask_session alone accepts it, for
# an app's tests). PostgreSQL and SQLite only. No default: with
# SESSION_TYPE = "sqlalchemy" it (or SESSION_SQLALCHEMY) must be set.
SESSION_SQLALCHEMY_URL = None

# Instead of a URL (only settable from Python, as in Flask-Session 0.8): a SQLAlchemy
# Engine, or a Flask-SQLAlchemy db whose SQLALCHEMY_DATABASE_URI (or the bind named by
# SESSION_SQLALCHEMY_BIND_KEY) is used. The store opens its own engine on that database.
SESSION_SQLALCHEMY = None
SESSION_SQLALCHEMY_BIND_KEY = None

# The sessions table (Flask-Session 0.8's name and layout, so its rows carry over) and its
# schema (None: the database's default). Made when missing, with <table>_locks and
# <table>_counters (the shared counter) beside it. Plain SQL names: letters, digits, "_".
SESSION_SQLALCHEMY_TABLE = "sessions"
SESSION_SQLALCHEMY_SCHEMA = None

# Create the sqlalchemy store's tables when missing. False: the app's migrations own them
# (Flask-Migrate/Alembic; DDL in docs/flask_session.md), and the service refuses to start
# if they are missing or lack a column it needs, naming what is missing.
SESSION_SQLALCHEMY_CREATE_TABLES = True

# Flask-Session 0.8's sequence for the sessions table's id (a plain SQL name), for a 0.8
# table made with one (its id column then has no default); made when missing. None: the
# id is the database's own autoincrementing key.
SESSION_SQLALCHEMY_SEQUENCE = None

# The memcached store's servers: "host:port", comma-separated for several (sessions are
# spread over them), e.g. "127.0.0.1:11211". No default: with SESSION_TYPE = "memcached"
# and neither this nor SESSION_MEMCACHED the service refuses to start (an app using the
# library without this key at all gets Flask-Session 0.8's 127.0.0.1:11211, with a
# warning). memcached evicts items (sessions and the shared counter too) when its memory
# is full and forgets everything on restart.
SESSION_MEMCACHED_SERVERS = None

# Instead of SESSION_MEMCACHED_SERVERS (only settable from Python, as in 0.8): a
# pymemcache Client, PooledClient or HashClient, whose servers the store uses.
SESSION_MEMCACHED = None

# Prefix of every session's Redis key and of the hashed session file names; also the
# namespace of the shared counter, so services with different prefixes on one store
# never share one. Any text ("" too).
SESSION_KEY_PREFIX = "session:"

# How session data is encoded in the store: "json" or "msgpack". Never pickle.
# Changing it logs nobody out: sessions written in the other format are still read,
# and rewritten in this one when next written (also during a rolling deploy).
SESSION_SERIALIZATION_FORMAT = "json"

# The largest session, in bytes of its keys and encoded values: a view that stores more
# gets a 500 naming the key (flask_session.UnstorableValue), and the stored session is
# left as it was. The counter routes store one integer. A whole number from 1 up to the
# store's own limit (memcached: 1,047,552; filesystem: none).
SESSION_MAX_SIZE = 1_000_000

# Also accept session cookies Flask-Session 0.8 signed (its SESSION_USE_SIGNER), checked
# against SECRET_KEY and then each of SECRET_KEY_FALLBACKS; new cookies carry the bare id.
SESSION_USE_SIGNER = False

# True only while Flask-Session 0.8 servers may still serve the same store (a rolling
# upgrade from 0.8): every session is then also kept current in 0.8's layout, and 0.8's
# writes are read back. The service is no 0.8 app: leave it False.
SESSION_08_SERVERS = False

# Random bytes in a session id (32 bytes = 256 bits from `secrets`): a whole number
# from 16 to 256.
SESSION_ID_LENGTH = 32

# --- Concurrency ---------------------------------------------------------------------------

# Serialize read-modify-write code on one session (session["n"] += 1) with a per-session
# lock taken on first access and released when the response is saved. /inc and /dec use
# the atomic session.incr, which needs no lock; /reset (read, then write 0) and reads of
# the session run under it, so an increment never lands in the middle of a reset.
SESSION_LOCKING = True

# Seconds a request waits for a session's lock (and a crashed holder's Redis lock lives)
# before the request answers 503. Also bounds the wait for the shared counter's file lock.
# A number from 0.01 to 3600.
SESSION_LOCK_TIMEOUT = 10

# --- Metrics -------------------------------------------------------------------------------

# The sessions' metrics (store verb latency, lock waits and timeouts, refusals by reason,
# sessions created, regenerated and cleaned up, sizes): None (off: nothing measured) or
# "prometheus" (prometheus_client, pip install 'Flask-Session-Atomic[metrics]'). Left as None here:
# setting SESSIONAPP_METRICS_BIND turns it on in every worker and serves GET /metrics on
# that address, summed over the workers (see docs/metrics.md).
SESSION_METRICS = None

# --- Session lifetime and cookie -----------------------------------------------------------

# Sessions are permanent: the cookie has an expiry date, and the server drops a session
# that has been idle for PERMANENT_SESSION_LIFETIME.
SESSION_PERMANENT = True

# Idle timeout of a session, in seconds (31 days, Flask's default): from 1 s to 3650
# days (ten years; now + lifetime must stay a date every cookie client can hold).
# Browsers keep a cookie at most 400 days whatever it says; the server keeps the
# session for the full lifetime.
PERMANENT_SESSION_LIFETIME = 31 * 24 * 3600

# Absolute timeout of a session, in seconds from its creation (1 s to 3650 days): the
# server drops it then however busy it is. None: no absolute timeout, only the idle one.
SESSION_ABSOLUTE_LIFETIME = None

# Seconds (0 to 60) a session's old id still reaches it after regenerate(), for requests
# in flight with it. The service never regenerates (it has no login); 0 ends it at once.
SESSION_REGENERATE_GRACE = 5

# Push the expiry out on every request that uses the session (a sliding window). With
# False a session expires PERMANENT_SESSION_LIFETIME after it was last changed.
SESSION_REFRESH_EACH_REQUEST = True

# The cookie holding the session id: a cookie-name token (letters, digits and
# !#$%&'*+-.^_`|~). A "__Host-" name (e.g. "__Host-session") makes the
# browser refuse the cookie over plain HTTP and from subdomains; it needs
# SESSION_COOKIE_SECURE = True.
SESSION_COOKIE_NAME = "session"

# Scripts in the page can never read the session cookie.
SESSION_COOKIE_HTTPONLY = True

# "Lax": the browser does not send the cookie with cross-site POSTs (nor with requests
# made by other sites' scripts), which is what keeps another site from pressing this
# service's buttons for you. "Lax", "Strict" or "None" (any case; "None" needs
# SESSION_COOKIE_SECURE); unset (None) means "Lax" here.
SESSION_COOKIE_SAMESITE = "Lax"

# Send the cookie over HTTPS only. Off by default so that plain-HTTP clients on
# localhost (make run, curl) keep their session. Turn it on (FLASK_SESSION_COOKIE_SECURE=true)
# as soon as the service is reached over HTTPS, e.g. behind a TLS-terminating proxy.
SESSION_COOKIE_SECURE = False

# Cookie Domain and Path attributes; None means Flask's defaults (this host only, "/").
# A domain is a host name such as "example.org"; a path starts with "/".
SESSION_COOKIE_DOMAIN = None
SESSION_COOKIE_PATH = None

# CHIPS "Partitioned" attribute: only for a service embedded in other sites' frames
# (it needs SESSION_COOKIE_SECURE). The counter page is not meant to be framed, so it stays off.
SESSION_COOKIE_PARTITIONED = False

# --- The shared counter --------------------------------------------------------------------

# Name of the shared counter in the session store: 1 to 64 letters, digits, "_" or "-".
# The store keeps it in the namespace of SESSION_KEY_PREFIX, apart from sessions (a
# "*.counter" file beside the session files, which cleanup never touches; the Redis key
# <prefix>#counter{<name>}). It replaces the SHARED_COUNTER_KEY and SHARED_COUNTER_FILE of earlier
# versions, which are refused if still set.
SHARED_COUNTER_NAME = "shared"

# --- Flask ---------------------------------------------------------------------------------

# Not needed by the sessions: their ids are random, unguessable and checked against the
# store, so nothing is signed with it. Set it (FLASK_SECRET_KEY) if you add something
# that signs data, such as Flask's flash messages on a cookie session. None or
# non-empty text.
SECRET_KEY = None

# --- Security headers (sessionapp/security.py) ---------------------------------------------

# Strict-Transport-Security max-age in seconds; 0 sends no HSTS header. Set it (for
# example 31536000, one year) only once the service is reached over HTTPS alone:
# browsers remember it and will refuse plain HTTP to this host for that long.
# A whole number from 0 to 63072000 (two years).
SECURITY_HSTS_SECONDS = 0
