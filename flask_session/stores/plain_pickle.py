"""A pickle reader that builds plain data only, and never runs ``pickle``.

``pickle.loads`` imports and calls whatever the data names. This reader interprets the
opcodes (``pickletools.genops``) itself and builds only dict, list, tuple, str, bytes,
int, float, bool and None, plus ``markupsafe.Markup`` (what ``flash(Markup(...))`` leaves
in a session), built by our own code from its text. Any other opcode or global raises
:class:`UnsafePickle`: nothing named in the data is imported or called.
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from typing import Any

from markupsafe import Markup


class UnsafePickle(ValueError):
    """The pickle holds something other than plain data."""


class _Mark:
    """The MARK opcode's stack marker."""


_MARK = _Mark()
#: the only global a legacy file may name, and how we build it from its arguments
_CONSTRUCTORS: dict[tuple[str, str], Callable[..., Any]] = {
    ("markupsafe", "Markup"): lambda text="": Markup(_require(text, str)),
}


def _require(value: Any, kind: type) -> Any:
    if type(value) is not kind:
        raise UnsafePickle(f"expected {kind.__name__}, found {type(value).__name__}")
    return value


class _Global:
    def __init__(self, build: Callable[..., Any]) -> None:
        self.build = build


_PUSH_ARG = frozenset(
    {
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
        "BINFLOAT", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
        "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "STRING", "BINSTRING", "SHORT_BINSTRING",
    }
)  # fmt: skip
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_EMPTY = {"EMPTY_DICT": dict, "EMPTY_LIST": list}
_NO_OP = frozenset({"PROTO", "FRAME"})
_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})


def load_plain_pickle(data: bytes) -> Any:
    """The plain data in a pickle, built without ``pickle``; raises UnsafePickle otherwise."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        for index in range(len(stack) - 1, -1, -1):
            if stack[index] is _MARK:
                items = stack[index + 1 :]
                del stack[index:]
                return items
        raise UnsafePickle("MARK missing")

    try:
        for opcode, arg, _pos in pickletools.genops(data):
            name = opcode.name
            if name in _PUSH_ARG:
                stack.append(arg)
            elif name in _CONSTANTS:
                stack.append(_CONSTANTS[name])
            elif name in _EMPTY:
                stack.append(_EMPTY[name]())
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name in _NO_OP:
                continue
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in _PUT:
                memo[_require(arg, int)] = stack[-1]
            elif name in _GET:
                stack.append(memo[_require(arg, int)])
            elif name == "MARK":
                stack.append(_MARK)
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                count = int(name[-1])
                items = stack[-count:]
                del stack[-count:]
                stack.append(tuple(items))
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name == "LIST":
                stack.append(pop_mark())
            elif name == "DICT":
                items = pop_mark()
                stack.append(_pairs_to_dict({}, items))
            elif name == "APPEND":
                item = stack.pop()
                _require(stack[-1], list).append(item)
            elif name == "APPENDS":
                items = pop_mark()
                _require(stack[-1], list).extend(items)
            elif name == "SETITEM":
                value = stack.pop()
                key = stack.pop()
                _pairs_to_dict(_require(stack[-1], dict), [key, value])
            elif name == "SETITEMS":
                items = pop_mark()
                _pairs_to_dict(_require(stack[-1], dict), items)
            elif name == "STACK_GLOBAL":
                qualname = stack.pop()
                module = stack.pop()
                stack.append(_global(module, qualname))
            elif name == "GLOBAL":
                module, _, qualname = str(arg).partition(" ")
                stack.append(_global(module, qualname))
            elif name in ("NEWOBJ", "REDUCE"):
                args = _require(stack.pop(), tuple)
                callable_ = stack.pop()
                if not isinstance(callable_, _Global):
                    raise UnsafePickle(f"{name} on something other than an allowed class")
                stack.append(callable_.build(*args))
            elif name == "STOP":
                if len(stack) != 1:
                    raise UnsafePickle("stack not empty at STOP")
                return stack[0]
            else:
                raise UnsafePickle(f"opcode {name} is not plain data")
    except (IndexError, KeyError, TypeError, ValueError) as error:
        if isinstance(error, UnsafePickle):
            raise
        raise UnsafePickle(f"malformed pickle: {error}") from None
    raise UnsafePickle("no STOP opcode")


def _global(module: Any, qualname: Any) -> _Global:
    build = _CONSTRUCTORS.get((module, qualname))
    if build is None:
        raise UnsafePickle(f"global {module}.{qualname} is not allowed")
    return _Global(build)


def _pairs_to_dict(target: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
    if len(items) % 2:
        raise UnsafePickle("odd number of dict items")
    for index in range(0, len(items), 2):
        key = items[index]
        if type(key) not in (str, int, float, bool, bytes, tuple) and key is not None:
            raise UnsafePickle(f"unhashable or unsafe dict key {type(key).__name__}")
        target[key] = items[index + 1]
    return target
