"""The sweep's record store: one JSONL file, appended under a lock, readable after a crash.

Each line is one case's record (``kmbench.bench.worker.RESULT_FIELDS`` plus the case);
``KEY`` identifies a case, so a resumed sweep skips what is already recorded.
"""
from __future__ import annotations

import json
import sys
import os

KEY = ("backend", "n", "k", "d", "dtype", "max_iter", "threads", "seed")

DEFAULT_OUT = os.path.join("results", "sweep.jsonl")


def case_key(record: dict) -> tuple:
    return tuple(record.get(field) for field in KEY)


def read_records(path: str, *, repair: bool = False) -> list[dict]:
    """Records in the JSONL file at ``path``; an unterminated last line (a killed writer) is ignored.

    With ``repair``, that partial line is cut off the file so appended lines start clean;
    complete lines are never changed.
    """
    if not os.path.exists(path):
        return []
    with open(path, "rb") as fh:
        raw = fh.read()
    complete, _, tail = raw.rpartition(b"\n")
    records = []
    for number, line in enumerate(complete.split(b"\n") if complete else [], 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            print(f"kmbench sweep: warning: {path} line {number} is not JSON; ignored", file=sys.stderr)
    if tail.strip() and repair:
        # Written by one write() call, so a line without its newline was cut short by a kill.
        with open(path, "r+b") as fh:
            fh.truncate(len(complete) + 1 if complete else 0)
            fh.flush()
            os.fsync(fh.fileno())
    return records


class Appender:
    """Appends records to the JSONL file, each flushed and fsync'ed before ``write`` returns.

    Holds an exclusive lock (on ``PATH.lock``, which outlives renames of the results file)
    for as long as it is open, so two sweeps cannot interleave lines or repair a file under
    each other's feet. A killed sweep's lock is released by the kernel.
    """

    def __init__(self, path: str, *, resume: bool = True):
        import fcntl

        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.lock = open(path + ".lock", "a")
        try:
            fcntl.flock(self.lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.lock.close()
            raise RuntimeError(f"another sweep is writing {path}; wait for it or choose another --out") from None
        if not resume and os.path.exists(path):
            os.replace(path, path + ".bak")
        #: what the file held when this sweep started, its torn last line (if any) cut off
        self.records = read_records(path, repair=True)
        self.fh = open(path, "a", encoding="utf-8")
        fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(fd)  # so a newly created file's directory entry survives a power cut too
        finally:
            os.close(fd)

    def write(self, record: dict) -> None:
        # One write() per line: a kill can tear only the line being written, which read_records drops.
        self.fh.write(json.dumps(record, allow_nan=True) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()
        self.lock.close()


