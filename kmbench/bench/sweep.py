"""``kmbench sweep``: time backends over a grid of shapes, one subprocess per case, resumably.

Every (backend, n, k, d, dtype) case runs in its own child process
(``kmbench.bench.worker``) in its own process group, under a per-case timeout, so a
crash, an out-of-memory kill or a hang costs only that case. Each finished case
is appended to a JSONL file and fsync'ed before the next one starts; on start,
cases already in the file are not run again, so an interrupted sweep (Ctrl-C,
``kill -9``, a reboot) loses at most the case that was running.

One record per line::

    {"backend", "n", "k", "d", "dtype", "max_iter", "threads",
     "status": "ok" | "skipped" | "failed" | "timeout" | "crashed", "reason",
     "per_iter_median", "per_iter_all", "prepare", "warmup", "fit", "n_iter", "inertia",
     "peak_rss_mb", "versions", "machine", "time", ...}
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

#: the fields that identify a case: a line with the same values is the same measurement
from kmbench.bench.store import Appender, case_key


# -- one case -----------------------------------------------------------------------------

def decide_skip(case: dict) -> str | None:
    """The backend's own reason not to run this case, found in this process (no data, no heavy imports)."""
    from kmbench.core.kmeans import BackendUnavailable
    from kmbench.bench.worker import create

    try:
        create(case["backend"], case)
    except (BackendUnavailable, ValueError) as exc:
        return str(exc)
    return None


def requires(spec: str) -> tuple:
    """The modules backend ``spec`` needs, or () where its module does not load."""
    from kmbench.bench.worker import load_class

    try:
        return tuple(load_class(spec).requires)
    except (ImportError, ValueError):
        return ()


def child_env(threads: int) -> dict:
    from kmbench.core.threads import thread_env

    env = dict(os.environ)
    env.update(thread_env(threads))
    env["KMBENCH_THREADS"] = str(threads)
    env["PYTHONFAULTHANDLER"] = "1"  # a segfault leaves a Python traceback in the child's log
    # The child sees what this process can import (test helpers, a source checkout).
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths + env.get("PYTHONPATH", "").split(os.pathsep)))
    return env


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exited with status {code} without a result"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def spawn(case: dict, *, timeout: float, workdir: str) -> dict:
    """Run ``case`` in a child process; always returns a record (the child's, or why there is none)."""
    result_path = os.path.join(workdir, "result.json")
    log_path = os.path.join(workdir, "child.log")
    for path in (result_path, log_path):
        if os.path.exists(path):
            os.remove(path)
    payload = dict(case, parent=os.getpid())
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "kmbench.bench.worker", json.dumps(payload), result_path],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=child_env(case["threads"]), start_new_session=True)
    status, usage, timed_out = None, None, False
    try:
        while status is None:
            # wait4 gives this child's own peak RSS, also when it crashed
            pid, raw, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, usage = os.waitstatus_to_exitcode(raw), rusage
                proc.returncode = status  # reaped here, so Popen must not wait for it again
                break
            if time.perf_counter() - start > timeout:
                timed_out = True
                kill_group(proc.pid)
                _, raw, usage = os.wait4(proc.pid, 0)
                status = proc.returncode = os.waitstatus_to_exitcode(raw)
                break
            time.sleep(0.02)
    finally:
        if status is None:  # interrupted: take the child's whole group down with us
            kill_group(proc.pid)
            proc.wait()
    wall = time.perf_counter() - start
    with open(log_path, "rb") as fh:
        log_text = fh.read()[-4000:].decode("utf-8", "replace")
    from kmbench.bench.worker import RESULT_FIELDS

    record = dict.fromkeys(RESULT_FIELDS)
    if timed_out:
        record.update(status="timeout",
                      reason=f"no result after {timeout:g} s (limit --timeout); process group killed")
    elif os.path.exists(result_path):
        with open(result_path) as fh:
            record.update(json.load(fh))
    else:
        detail = last_line(log_text)
        record.update(status="crashed", reason=describe_exit(status) + (f": {detail}" if detail else ""))
    if record["status"] in ("timeout", "crashed", "failed") and log_text.strip():
        record["log_tail"] = log_text
    record["exit_status"] = status
    record["wall"] = wall
    record["peak_rss_mb"] = usage.ru_maxrss / 1024 if usage is not None else None  # KiB on Linux
    return record


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def sweep(cases: list[dict], *, out: str, timeout: float, resume: bool = True, progress: bool = True) -> dict:
    """Run ``cases`` not already recorded in ``out``; return how many ended in each status."""
    from tqdm import tqdm

    from kmbench.bench.machine import host as machine, versions
    from kmbench.bench.worker import RESULT_FIELDS

    appender = Appender(out, resume=resume)
    try:
        done = {case_key(r) for r in appender.records}
        todo = [c for c in cases if case_key(c) not in done]
        counts = {"recorded before": len(cases) - len(todo)}
        host = machine()
        with tempfile.TemporaryDirectory(prefix="kmbench-sweep-") as workdir:
            bar = tqdm(todo, desc="kmbench sweep", unit="case", disable=not progress or None, file=sys.stderr)
            for case in bar:
                bar.set_postfix_str(f"{case['backend']} n={case['n']} k={case['k']} d={case['d']} {case['dtype']}")
                reason = decide_skip(case)
                if reason is not None:
                    result = dict.fromkeys(RESULT_FIELDS, None)
                    result.update(status="skipped", reason=reason, versions=versions(requires(case["backend"])))
                else:
                    result = spawn(case, timeout=timeout, workdir=workdir)
                    if result["versions"] is None:  # the child died before it could say
                        result["versions"] = versions(requires(case["backend"]))
                record = {**case, **result, "machine": host,
                          "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                appender.write(record)
                counts[record["status"]] = counts.get(record["status"], 0) + 1
                if record["status"] not in ("ok", "skipped"):
                    bar.write(f"kmbench sweep: {case['backend']} n={case['n']} k={case['k']} d={case['d']} "
                              f"{case['dtype']}: {record['status']}: {record['reason']}", file=sys.stderr)
    finally:
        appender.close()
    return counts
