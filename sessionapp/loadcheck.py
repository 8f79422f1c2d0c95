"""Check a running counter service over HTTP: will it go wrong as it scales?

    loadcheck http://127.0.0.1:5000 [--clients 100 --requests 20 --threads 16]

(the service's console script; ``python -m sessionapp.loadcheck`` is the same.)

Three checks, each one a way a counter kept in a global variable or in an unlocked
session goes wrong once there are several threads, worker processes or servers:

1. per-client isolation: N clients, each with its own cookie jar, send M ``POST /inc``
   one after another; each must see exactly 1..M, then read M back from ``GET /counter``.
2. same-cookie concurrency: T threads share ONE cookie and send M ``POST /inc`` each; the
   counter must end exactly T*M above where it started and every answer must be distinct.
3. shared-counter uniqueness: K concurrent ``POST /shared/inc`` must return K distinct
   numbers. They are also contiguous if nobody else uses the service meanwhile; that is
   reported, and only counted as a failure with ``--exclusive``.

It prints a table of expected vs got to stdout (a progress bar on stderr while it runs,
when stderr is a terminal or with ``--progress``) and exits 0 when everything is exact,
1 when anything is off (or the time limit cut the run short), 2 when it could not run at
all (unreachable URL, unhealthy service, bad arguments).

It writes to the service it checks: it creates N+1 sessions and adds K to the shared
counter. Nothing is ever retried, so every increment is sent exactly once.

Standard library only (``http.client``), so it runs from any install of the project,
or as a copied single file, without the test extras.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any, TextIO
from urllib.parse import urlsplit

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2

USER_AGENT = "sessionapp-loadcheck/1"


class Unusable(Exception):
    """The check cannot run at all (exit status 2); the message says why."""


# -- HTTP ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where the service answers: scheme, host, port and a path prefix (no trailing /)."""

    scheme: str
    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Target:
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Unusable(f"{url!r}: only http:// and https:// URLs are supported")
        if not parts.hostname:
            raise Unusable(f"{url!r} names no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as error:
            raise Unusable(f"{url!r}: {error}") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.prefix}"

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class CookieJar:
    """The cookies one client holds: name -> value, updated from Set-Cookie like a browser.

    Thread-safe, because the same-cookie check shares one jar between threads (last
    Set-Cookie wins, as in a browser). Domain and path are ignored: one host, one app.
    """

    def __init__(self) -> None:
        self._cookies: dict[str, str] = {}
        self._guard = threading.Lock()

    def header(self) -> str | None:
        with self._guard:
            if not self._cookies:
                return None
            return "; ".join(f"{name}={value}" for name, value in self._cookies.items())

    def update(self, set_cookie_headers: Sequence[str]) -> None:
        for header in set_cookie_headers:
            parsed = SimpleCookie()
            try:
                parsed.load(header)
            except CookieError:
                continue
            with self._guard:
                for name, morsel in parsed.items():
                    if morsel["max-age"] in ("0", "-1") or _expires_in_the_past(morsel["expires"]):
                        self._cookies.pop(name, None)
                    else:
                        self._cookies[name] = morsel.value

    def __len__(self) -> int:
        with self._guard:
            return len(self._cookies)


def _expires_in_the_past(expires: str) -> bool:
    # Flask deletes a cookie with "Expires=Thu, 01 Jan 1970 00:00:00 GMT"; any year before
    # 2000 is a deletion for our purposes, and parsing HTTP dates fully is not needed.
    return bool(expires) and any(f" {year} " in expires for year in range(1970, 2000))


@dataclass
class Answer:
    """One request's outcome: an HTTP status and body, or ``error`` (no answer at all)."""

    status: int = 0
    body: bytes = b""
    error: str | None = None

    def counter(self) -> int | None:
        """The ``counter`` of a 200 JSON answer, or None."""
        if self.status != 200:
            return None
        try:
            value = json.loads(self.body)["counter"]
        except (ValueError, KeyError, TypeError):
            return None
        return value if type(value) is int else None


class Progress:
    """A one-line progress bar on a stream, redrawn at most ten times a second."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()
        self._drawn_at = 0.0
        self._guard = threading.Lock()

    def advance(self, ok: bool) -> None:
        with self._guard:
            self.done += 1
            self.failed += 0 if ok else 1
            now = time.monotonic()
            if self.stream is not None and now - self._drawn_at >= 0.1:
                self._drawn_at = now
                self._draw(now)

    def finish(self) -> None:
        if self.stream is not None:
            with self._guard:
                self._draw(time.monotonic())
                self.stream.write("\n")
                self.stream.flush()

    def _draw(self, now: float) -> None:
        width = 30
        share = min(self.done / self.total, 1.0)
        filled = int(share * width)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(  # type: ignore[union-attr]
            f"\r[{bar}] {self.done}/{self.total} requests {share:4.0%}"
            f"  {now - self.started:5.1f} s  failed {self.failed}"
        )
        self.stream.flush()  # type: ignore[union-attr]


class Client:
    """Sends requests; never retries (a retried increment could count twice).

    One new connection per request: a failure then always means this request failed,
    never that an idle keep-alive connection was closed under us, so every error counted
    is real. Stops sending once the run's deadline has passed.
    """

    def __init__(
        self, target: Target, request_timeout: float, deadline: float, progress: Progress
    ) -> None:
        self.target = target
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.progress = progress
        self.errors: Counter[str] = Counter()
        self.sent = 0
        self.unsent = 0
        self._guard = threading.Lock()

    def out_of_time(self) -> bool:
        return time.monotonic() >= self.deadline

    def send(self, method: str, path: str, jar: CookieJar | None) -> Answer:
        """One request; any failure is recorded (and summarised in the report)."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            with self._guard:
                self.unsent += 1
            return Answer(error="not sent: time limit reached")
        answer = self._exchange(method, path, jar, min(self.request_timeout, remaining))
        with self._guard:
            self.sent += 1
            if answer.error is not None:
                self.errors[f"{method} {path}: no answer ({answer.error})"] += 1
            elif answer.status != 200:
                self.errors[f"{method} {path}: HTTP {answer.status} {_excerpt(answer.body)}"] += 1
            elif path != "/healthz" and answer.counter() is None:
                self.errors[f'{method} {path}: 200 without {{"counter": <int>}}'] += 1
        self.progress.advance(answer.error is None and answer.status == 200)
        return answer

    def _exchange(self, method: str, path: str, jar: CookieJar | None, timeout: float) -> Answer:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        cookie = jar.header() if jar is not None else None
        if cookie:
            headers["Cookie"] = cookie
        if method == "POST":
            headers["Content-Length"] = "0"
        connection = self.target.connection(timeout)
        try:
            connection.request(method, self.target.prefix + path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if jar is not None:
                jar.update(response.headers.get_all("Set-Cookie") or [])
            return Answer(status=response.status, body=body)
        except (OSError, http.client.HTTPException) as error:
            return Answer(error=_describe(error))
        finally:
            connection.close()


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error) or type(error).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _excerpt(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def run_parallel(tasks: Sequence[Callable[[], Any]], threads: int) -> list[Any]:
    """Run ``tasks`` on ``threads`` threads that start together; results in task order."""
    results: list[Any] = [None] * len(tasks)
    next_index = iter(range(len(tasks)))
    guard = threading.Lock()
    count = max(1, min(threads, len(tasks)))
    start = threading.Barrier(count)

    def worker() -> None:
        start.wait()
        while True:
            with guard:
                index = next(next_index, None)
            if index is None:
                return
            results[index] = tasks[index]()

    workers = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return results


# -- the checks ------------------------------------------------------------------------------


@dataclass
class Row:
    check: str
    expected: str
    got: str
    status: str  # "ok", "FAIL" or "note"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(
        self, check: str, expected: object, got: object, ok: bool, *, note: bool = False
    ) -> None:
        status = "ok" if ok else ("note" if note else "FAIL")
        self.rows.append(Row(check, str(expected), str(got), status))

    @property
    def failed(self) -> bool:
        return any(row.status == "FAIL" for row in self.rows)


def check_isolation(
    client: Client, report: Report, clients: int, requests: int, threads: int
) -> None:
    """N clients with their own cookie jars each see exactly 1..M, then read M back."""
    expected = list(range(1, requests + 1))

    def one_client() -> tuple[list[int | None], int | None]:
        jar = CookieJar()
        seen = [client.send("POST", "/inc", jar).counter() for _ in range(requests)]
        return seen, client.send("GET", "/counter", jar).counter()

    outcomes = run_parallel([one_client] * clients, threads)
    exact = [seen == expected and final == requests for seen, final in outcomes]
    report.add(
        f"per-client isolation: {clients} clients x {requests} POST /inc",
        f"{clients}/{clients} see 1..{requests}",
        f"{sum(exact)}/{clients}",
        all(exact),
    )
    for number, ((seen, final), ok) in enumerate(zip(outcomes, exact, strict=True), 1):
        if not ok:
            report.details.append(
                f"client {number} saw {_short_list(seen)}, then GET /counter gave {final}"
            )
            break


def check_same_cookie(client: Client, report: Report, threads: int, requests: int) -> None:
    """T threads x M increments on ONE cookie end exactly T*M above the start value."""
    jar = CookieJar()
    start = client.send("POST", "/inc", jar).counter()
    label = f"same cookie: {threads} threads x {requests} POST /inc"
    if start is None or not len(jar):
        report.add(label, "a first POST /inc sets a cookie", "no usable answer", False)
        return
    total = threads * requests

    def one_thread() -> list[int | None]:
        return [client.send("POST", "/inc", jar).counter() for _ in range(requests)]

    per_thread = run_parallel([one_thread] * threads, threads)
    answers = [value for values in per_thread for value in values]
    final = client.send("GET", "/counter", jar).counter()
    values = [value for value in answers if value is not None]
    report.add(
        label, f"counter {start} -> {start + total}", f"{start} -> {final}", final == start + total
    )
    wanted = set(range(start + 1, start + total + 1))
    report.add(
        "  every answer distinct and in range",
        f"{total} of {start + 1}..{start + total}",
        f"{len(set(values) & wanted)} distinct in range, {len(values) - len(set(values))} repeated",
        sorted(values) == sorted(wanted),
    )
    if final is not None and final != start + total:
        lost = start + total - final
        report.details.append(
            f"same cookie: {lost} of {total} increments lost ({lost / total:.0%})"
            if lost > 0
            else f"same cookie: counter ended {-lost} above what was sent"
        )


def check_shared(
    client: Client, report: Report, shared: int, threads: int, exclusive: bool
) -> None:
    """K concurrent POST /shared/inc return K distinct numbers (contiguous if idle)."""
    values = run_parallel(
        [lambda: client.send("POST", "/shared/inc", None).counter()] * shared, threads
    )
    got = [value for value in values if value is not None]
    distinct = len(set(got))
    report.add(
        f"shared counter: {shared} concurrent POST /shared/inc",
        f"{shared} distinct numbers",
        f"{distinct} distinct of {len(got)} answers",
        distinct == shared,
    )
    if distinct < len(got):
        repeats = sorted(value for value, n in Counter(got).items() if n > 1)
        report.details.append(f"shared counter handed out twice: {_short_list(repeats)}")
    contiguous = bool(got) and distinct == len(got) and max(got) - min(got) + 1 == len(got)
    if not got:
        shape = "no numbers"
    elif distinct < len(got):
        shape = f"{min(got)}..{max(got)}, repeats"
    else:
        shape = f"{min(got)}..{max(got)}, {'no gaps' if contiguous else 'gaps'}"
    report.add(
        "  contiguous (exact if nobody else used the service)",
        f"{shared} numbers, no gaps",
        shape,
        contiguous,
        note=not exclusive,
    )


def _short_list(values: Sequence[object], limit: int = 12) -> str:
    values = list(values)
    if len(values) <= limit:
        return "[" + ", ".join(map(str, values)) + "]"
    return "[" + ", ".join(map(str, values[:limit])) + f", ... ({len(values)} in all)]"


# -- driver ----------------------------------------------------------------------------------


def preflight(target: Target, timeout: float) -> None:
    """GET /healthz once; raise Unusable with a plain explanation unless it answers 200."""
    url = target.base + "/healthz"
    connection = target.connection(timeout)
    try:
        connection.request("GET", target.prefix + "/healthz", headers={"User-Agent": USER_AGENT})
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:
        raise Unusable(f"cannot reach {url}: {_describe(error)}") from None
    finally:
        connection.close()
    if response.status == 404:
        raise Unusable(f"{url} answered 404: is this the counter service?")
    if response.status != 200:
        raise Unusable(
            f"{url} answered {response.status} ({_excerpt(body)}): the service is not"
            " healthy, so nothing was checked"
        )


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    target = Target.parse(args.url)
    preflight(target, args.request_timeout)
    total = (
        args.clients * (args.requests + 1)  # increments + one read-back per client
        + args.threads * args.requests
        + 2  # the same-cookie run, its first and last request
        + args.shared
    )
    show = args.progress if args.progress is not None else err.isatty()
    progress = Progress(total, err if show else None)
    client = Client(target, args.request_timeout, time.monotonic() + args.timeout, progress)
    report = Report()
    out.write(
        f"loadcheck {target.base}: {args.clients} clients x {args.requests} requests,"
        f" {args.threads} threads, {args.shared} shared increments"
        f" (at most {total} requests, {args.timeout:g} s)\n"
    )
    out.flush()
    started = time.monotonic()
    try:
        check_isolation(client, report, args.clients, args.requests, args.threads)
        check_same_cookie(client, report, args.threads, args.requests)
        check_shared(client, report, args.shared, args.threads, args.exclusive)
    finally:
        progress.finish()
    elapsed = time.monotonic() - started
    report.add(
        "requests answered 200",
        f"{total} of {total}",
        f"{client.sent - sum(client.errors.values())} of {client.sent} sent",
        not client.errors and client.unsent == 0,
    )
    if client.unsent:
        report.details.append(
            f"time limit of {args.timeout:g} s reached: {client.unsent} requests not sent"
            " (raise --timeout or lower --clients/--requests)"
        )
    for message, count in client.errors.most_common(5):
        report.details.append(f"{count} x {message}")
    out.write(format_table(report.rows))
    for line in report.details:
        out.write(f"  - {line}\n")
    rate = client.sent / elapsed if elapsed > 0 else 0.0
    verdict = "FAILED: something is off (see above)" if report.failed else "OK: every check exact"
    out.write(f"{verdict}. {client.sent} requests in {elapsed:.1f} s ({rate:.0f}/s).\n")
    out.flush()
    return EXIT_FAILED if report.failed else EXIT_OK


def format_table(rows: Sequence[Row]) -> str:
    header = Row("check", "expected", "got", "result")
    widths = [
        max(len(getattr(row, name)) for row in (header, *rows))
        for name in ("check", "expected", "got")
    ]
    lines = []
    for row in (header, *rows):
        cells = (row.check, row.expected, row.got)
        padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        lines.append("  ".join(padded) + "  " + row.status)
    rule = "-" * len(lines[0])
    return "\n".join([lines[0], rule, *lines[1:]]) + "\n"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not a number of seconds above 0")
    return value


def installed_version() -> str:
    """The project's version (the library's, ``flask_session.__version__``, which the
    service shares); this file also runs copied alone, where there may be none."""
    try:
        from flask_session import __version__
    except ImportError:
        return "(version unknown: flask_session is not installed)"
    return __version__


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="loadcheck",
        description=(
            "Check a running counter service over HTTP for lost updates and duplicate"
            " numbers: per-client isolation, same-cookie concurrency, shared-counter"
            " uniqueness. Writes to the service (creates sessions, bumps the shared counter)."
        ),
        epilog="Exit status: 0 all exact, 1 something is off, 2 could not run.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    parser.add_argument("url", help="base URL of the service, e.g. http://127.0.0.1:5000")
    parser.add_argument(
        "--clients",
        type=positive_int,
        default=100,
        help="clients with their own cookie jar (default 100)",
    )
    parser.add_argument(
        "--requests",
        type=positive_int,
        default=20,
        help="increments per client and per same-cookie thread (default 20)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=16,
        help="concurrent threads, and threads sharing one cookie (default 16)",
    )
    parser.add_argument(
        "--shared",
        type=positive_int,
        default=None,
        help="concurrent POST /shared/inc (default: --clients)",
    )
    parser.add_argument(
        "--exclusive",
        action="store_true",
        help="nobody else uses the service: gaps in shared numbers fail",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=120.0,
        help="time limit for the whole run in seconds (default 120)",
    )
    parser.add_argument(
        "--request-timeout",
        type=positive_float,
        default=10.0,
        help="time limit per request in seconds (default 10)",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress bar even when stderr is not a terminal",
    )
    progress.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show the progress bar"
    )
    args = parser.parse_args(argv)
    if args.shared is None:
        args.shared = args.clients
    return args


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the checks; returns the exit status (0 exact, 1 something off, 2 could not run)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    args = parse_args(argv)
    try:
        return run(args, out, err)
    except Unusable as error:
        err.write(f"loadcheck: {error}\n")
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        err.write("\nloadcheck: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
