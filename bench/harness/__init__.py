"""The benchmark harness behind ``bench/run``: one module per job.

common     paths, logging, the harness's error
processes  child processes: the app servers' processes and the stores (redis, PostgreSQL,
           memcached, through tests/support)
servers    the HTTP servers every app runs on (granian, gunicorn): their command lines
apps       the four apps under test (A, B, C, D) and how each is configured per store
client     plain HTTP calls: cookies, counter reads, the shared-counter check
load       wrk: one bounded run, its JSON summary
measure    psutil: CPU per request, the noise meter; medians over rounds
context    one benchmark run's settings and everything it has recorded
scenarios  the interleaved rounds for one server and store
live       A only: many live sessions, and cleanup under load
report     the Markdown report
verdicts   the targets (bench/targets.toml) checked against the figures
chart      the PNG chart
cli        the command line
versions   tool and package versions, the commit, the temp directory's filesystem
"""
