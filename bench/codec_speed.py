"""Session value codecs: nanoseconds per value, raw msgspec vs flask_session's codecs.

The codecs keep Flask's tagged types (tuple, Markup, bytes, datetime, UUID); plain
values must stay close to raw msgspec, the hot path of every session write.

    .venv/bin/python bench/codec_speed.py
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from flask_session.codecs import CODECS  # noqa: E402

VALUES = {
    "int": 12345,
    "short str": "hello world",
    "dict of 3": {"a": 1, "b": "x", "c": [1, 2]},
    "flashes": [("info", "saved"), ("error", "oops")],
}
RAW = {"json": msgspec.json, "msgpack": msgspec.msgpack}
NUMBER, REPEAT = 100_000, 5


def best_ns(function: object) -> float:
    return min(timeit.repeat(function, number=NUMBER, repeat=REPEAT)) / NUMBER * 1e9  # type: ignore[arg-type]


def main() -> None:
    print(f"{'format':8} {'value':10} {'op':7} {'msgspec ns':>10} {'codec ns':>10}")
    for fmt, module in RAW.items():
        encoder, decoder, codec = module.Encoder(), module.Decoder(), CODECS[fmt]
        for name, value in VALUES.items():
            data, raw_data = codec.encode(value), encoder.encode(value)
            timings = {
                "encode": (
                    best_ns(lambda e=encoder, v=value: e.encode(v)),
                    best_ns(lambda c=codec, v=value: c.encode(v)),
                ),
                "decode": (
                    best_ns(lambda d=decoder, b=raw_data: d.decode(b)),
                    best_ns(lambda c=codec, b=data: c.decode(b)),
                ),
            }
            for op, (raw_ns, codec_ns) in timings.items():
                print(f"{fmt:8} {name:10} {op:7} {raw_ns:10.0f} {codec_ns:10.0f}")

if __name__ == "__main__":
    main()
