"""Argument helpers shared by the commands: each parses one option and names it and the value when it is wrong.

Values are parsed in ``run()``, not by argparse types, so a bad one is a one-line error naming it.
"""
from __future__ import annotations

import os

def int_list(option: str, text: str, minimum: int = 1) -> list[int]:
    values = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"{option}={text!r}: {part!r} is not an integer") from None
        if value < minimum:
            raise ValueError(f"{option}={text!r}: {value} should be >= {minimum}")
        values.append(value)
    return list(dict.fromkeys(values))


def one_int(option: str, text, minimum: int = 1) -> int:
    values = int_list(option, text, minimum)
    if len(values) != 1 or "," in str(text):
        raise ValueError(f"{option}={text!r} should be one integer")
    return values[0]


def positive_number(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{option}={text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{option}={text!r} should be > 0")
    return value


def dtype_list(text: str) -> list[str]:
    from kmbench.core.validation import FLOAT_DTYPES

    names = [part.strip() for part in str(text).split(",")]
    for name in names:
        if name not in FLOAT_DTYPES:
            raise ValueError(f"--dtype={text!r}: {name!r} is not one of {', '.join(FLOAT_DTYPES)}")
    return list(dict.fromkeys(names))


def backend_list(text) -> list[str]:
    from kmbench.core.kmeans import backends
    from kmbench.bench.worker import resolve_backend

    if text is None:
        return [row["name"] for row in backends() if row["available"]]
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    if not names:
        raise ValueError(f"--backends={text!r} names no backend")
    for name in names:
        resolve_backend(name)  # unknown names fail here, before anything runs
    return list(dict.fromkeys(names))


def thread_count(text) -> int:
    from kmbench.core.threads import check_threads, default_threads

    if text is None:
        try:
            return default_threads()
        except ValueError:
            raise ValueError(f"KMBENCH_THREADS={os.environ.get('KMBENCH_THREADS')!r} should be an integer >= 1") \
                from None
    return check_threads(one_int("--threads", text))


