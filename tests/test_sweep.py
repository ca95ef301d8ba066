"""``kmbench sweep``: one subprocess per case, every finished case on disk, resumable.

The misbehaving backends below are test doubles handed to the sweep as
``"module:Class"`` specs: each child process imports this module to build them.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

import pytest

import impls
from impls.identity import IdentityKMeans
import kmbench.bench.store as store
import kmbench.bench.sweep as sweep
import kmbench.bench.worker as worker
from kmbench import cli

HERE = os.path.dirname(os.path.abspath(__file__))


def spec(cls) -> str:
    return f"{__name__}:{cls.__name__}"


class ExitsEarly(IdentityKMeans):
    """Leaves without a word, as a C extension calling exit() would."""

    name = "exits-early"

    def prepare(self, X, centers):
        os._exit(3)


class Segfaults(IdentityKMeans):
    name = "segfaults"

    def run(self, max_iter, tol):
        ctypes.string_at(0)  # reads address 0: SIGSEGV


class KilledLikeOOM(IdentityKMeans):
    """What the kernel's out-of-memory killer does to a process."""

    name = "oom-killed"

    def run(self, max_iter, tol):
        os.kill(os.getpid(), signal.SIGKILL)


class Raises(IdentityKMeans):
    name = "raises"

    def run(self, max_iter, tol):
        raise RuntimeError("boom from the backend")


class Hangs(IdentityKMeans):
    """Sleeps far past any timeout, with a grandchild in its process group that must die too."""

    name = "hangs"

    def run(self, max_iter, tol):
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["KMBENCH_TEST_PIDS"], "a") as fh:
            fh.write(f"{os.getpid()} {grandchild.pid}\n")
        time.sleep(600)


class HeldAtN50(IdentityKMeans):
    """Well-behaved, except that at n=50 it waits while the test's hold file exists.

    That pins a kill to a known moment: two cases recorded, the third one running.
    """

    name = "held"

    def run(self, max_iter, tol):
        with open(os.environ["KMBENCH_TEST_PIDS"], "a") as fh:
            fh.write(f"{os.getpid()}\n")
        hold = os.environ.get("KMBENCH_TEST_HOLD", "")
        deadline = time.monotonic() + 60
        while self.X.shape[0] == 50 and os.path.exists(hold) and time.monotonic() < deadline:
            time.sleep(0.02)
        super().run(max_iter, tol)


class SeesThreads(IdentityKMeans):
    """Reports the thread settings it finds inside the timed call."""

    name = "sees-threads"

    def run(self, max_iter, tol):
        from threadpoolctl import threadpool_info

        self.seen = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                              "KMBENCH_THREADS")}
        self.seen["pools"] = [pool["num_threads"] for pool in threadpool_info()]
        self.seen["threads"] = self.threads
        super().run(max_iter, tol)

    def result(self):
        out = super().result()
        out.info["seen"] = self.seen
        return out


def run_sweep(tmp_path, *extra, backends, n="60", k="3", d="2", out=None) -> tuple[int, list[dict], str]:
    out = str(out or tmp_path / "sweep.jsonl")
    code = cli.main(["sweep", "--backends", ",".join(backends), "--n", n, "--k", k, "--d", d,
                     "--max-iter", "3", "--repeats", "2", "--threads", "1", "--out", out, *extra])
    return code, store.read_records(out), out


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie waiting for its reaper counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_one_line_per_case_with_every_field(tmp_path, capsys):
    code, records, _ = run_sweep(tmp_path, backends=["identity", "loop"], n="50,80")
    assert code == 0
    assert [(r["backend"], r["n"]) for r in records] == [("identity", 50), ("loop", 50),
                                                         ("identity", 80), ("loop", 80)]
    for r in records:
        assert r["status"] == "ok", r
        for field in ("backend", "n", "k", "d", "dtype", "max_iter", "threads", "status", "reason",
                      "per_iter_median", "per_iter_all", "prepare", "warmup", "fit", "n_iter", "inertia",
                      "peak_rss_mb", "versions", "machine", "time"):
            assert field in r, field
        assert r["threads"] == 1 and r["recorded_threads"] == 1
        assert r["n_iter"] == 3 and r["max_iter"] == 3  # tol=-1: fixed work
        assert len(r["per_iter_all"]) == 2 and min(r["per_iter_all"]) <= r["per_iter_median"] <= max(r["per_iter_all"])
        assert r["peak_rss_mb"] >= r["rss_before_fit_mb"] > 1
        assert r["versions"]["numpy"] and r["machine"]["hostname"]
    # Same data and same initial centres per shape: two exact backends land on the same inertia.
    by = {(r["backend"], r["n"]): r["inertia"] for r in records}
    for n in (50, 80):
        assert by[("identity", n)] == pytest.approx(by[("loop", n)], rel=1e-9)
    assert by[("identity", 50)] != pytest.approx(by[("identity", 80)])

    # Running the same sweep again finds everything recorded and runs nothing.
    before = open(tmp_path / "sweep.jsonl", "rb").read()
    code, again, _ = run_sweep(tmp_path, backends=["identity", "loop"], n="50,80")
    assert code == 0 and open(tmp_path / "sweep.jsonl", "rb").read() == before
    assert "4 recorded before" in capsys.readouterr().out


def test_crashes_timeouts_and_failures_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("KMBENCH_TEST_PIDS", str(pids))
    doubles = [ExitsEarly, Segfaults, KilledLikeOOM, Raises, Hangs]
    registry = dict(impls.REGISTRY)
    code, records, _ = run_sweep(tmp_path, "--timeout", "8", backends=[spec(c) for c in doubles] + ["identity"])
    assert code == 1  # something did not measure
    got = {r["backend"]: r for r in records}
    assert len(records) == 6
    assert got[spec(ExitsEarly)]["status"] == "crashed"
    assert "exited with status 3" in got[spec(ExitsEarly)]["reason"]
    assert got[spec(Segfaults)]["status"] == "crashed"
    assert "SIGSEGV" in got[spec(Segfaults)]["reason"]
    assert "Segmentation fault" in got[spec(Segfaults)]["log_tail"]  # faulthandler's report
    assert got[spec(KilledLikeOOM)]["status"] == "crashed"
    assert "SIGKILL" in got[spec(KilledLikeOOM)]["reason"] and "out of memory" in got[spec(KilledLikeOOM)]["reason"]
    assert got[spec(Raises)]["status"] == "failed"
    assert got[spec(Raises)]["reason"] == "RuntimeError: boom from the backend"
    assert got[spec(Hangs)]["status"] == "timeout" and "8 s" in got[spec(Hangs)]["reason"]
    assert got["identity"]["status"] == "ok"  # the case after all of them still ran
    assert impls.REGISTRY == registry  # test doubles were never registered for good
    for r in records[:5]:
        assert r["per_iter_median"] is None and r["peak_rss_mb"] is not None
    # The timeout killed the whole process group, grandchild included.
    child, grandchild = map(int, pids.read_text().split())
    deadline = time.monotonic() + 10
    while (alive(child) or alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child) and not alive(grandchild)


def test_skips_use_the_backends_reason_and_spawn_nothing(tmp_path):
    # broadcast's (n, k, d) temporary here would be 3.2 TB: refused by its own skip(), in the parent.
    # identity is float64-only, so neither case below may reach a child.
    code, records, _ = run_sweep(tmp_path, "--dtype", "float32", backends=["broadcast", "identity"],
                                 n="20000", k="20000", d="1000")
    assert code == 0
    by = {(r["backend"], r["dtype"]): r for r in records}
    assert len(records) == 2
    assert "memory budget" in by[("broadcast", "float32")]["reason"]
    assert f"{20000 * 20000 * 1000 * 4 + 20000 * 20000 * 4:,} bytes" in by[("broadcast", "float32")]["reason"]
    assert "does not support dtype=float32" in by[("identity", "float32")]["reason"]
    for r in records:
        assert r["status"] == "skipped" and r["peak_rss_mb"] is None and "exit_status" not in r, r


def test_k_above_n_is_skipped_with_the_validation_message(tmp_path):
    code, records, _ = run_sweep(tmp_path, backends=["identity"], n="10", k="20")
    assert code == 0
    assert records[0]["status"] == "skipped"
    assert records[0]["reason"] == "n_clusters=20 must be <= n_samples=10"


def test_thread_knob_reaches_the_child_by_environment_and_argument(tmp_path):
    code, records, _ = run_sweep(tmp_path, backends=[spec(SeesThreads)])
    assert code == 0, records
    seen = records[0]["info"]["seen"]
    assert records[0]["threads"] == 1 and seen["threads"] == 1
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                 "KMBENCH_THREADS"):
        assert seen[name] == "1", name
    assert seen["pools"] and max(seen["pools"]) == 1


def test_killed_sweep_resumes_without_recomputing(tmp_path, monkeypatch):
    pids, hold = tmp_path / "pids", tmp_path / "hold"
    hold.write_text("")
    monkeypatch.setenv("KMBENCH_TEST_PIDS", str(pids))
    monkeypatch.setenv("KMBENCH_TEST_HOLD", str(hold))
    out = tmp_path / "sweep.jsonl"
    args = ["--backends", spec(HeldAtN50), "--n", "40,50", "--k", "2,3", "--d", "2", "--max-iter", "2",
            "--repeats", "1", "--threads", "1", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "kmbench.cli", "sweep", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        # Two cases at n=40 recorded, the first n=50 case running (held).
        while time.monotonic() < deadline and proc.poll() is None:
            if pids.exists() and len(pids.read_text().split()) == 3:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    written = out.read_bytes()
    assert written.count(b"\n") == 2 and written.endswith(b"\n")
    # The held case died with its parent instead of running on as an orphan.
    running = int(pids.read_text().split()[-1])
    deadline = time.monotonic() + 10
    while alive(running) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(running)
    # A writer killed mid-line leaves a torn tail; resume must ignore it.
    with open(out, "ab") as fh:
        fh.write(b'{"backend": "torn", "n": 4')

    hold.unlink()
    assert cli.main(["sweep", *args]) == 0
    after = out.read_bytes()
    assert after.startswith(written), "earlier lines changed"
    assert b"torn" not in after
    records = store.read_records(str(out))
    assert [(r["n"], r["k"]) for r in records] == [(40, 2), (40, 3), (50, 2), (50, 3)]
    assert all(r["status"] == "ok" for r in records)
    assert len(pids.read_text().split()) == 5  # the resumed sweep ran only the two missing cases


def test_no_resume_starts_over_and_keeps_the_old_file(tmp_path):
    code, first, out = run_sweep(tmp_path, backends=["identity"])
    code, second, _ = run_sweep(tmp_path, "--no-resume", backends=["identity"])
    assert code == 0 and len(second) == 1 and second[0]["time"] >= first[0]["time"]
    assert store.read_records(out + ".bak") == first


def test_torn_last_line_is_ignored_and_cut_before_appending(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b"')
    assert store.read_records(str(path)) == [{"a": 1}, {"a": 2}]
    assert path.read_bytes().endswith(b'"b"')  # reading alone changes nothing
    assert store.read_records(str(path), repair=True) == [{"a": 1}, {"a": 2}]
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    path.write_bytes(b'{"a": 1')
    assert store.read_records(str(path), repair=True) == [] and path.read_bytes() == b""


def test_two_sweeps_cannot_write_one_file(tmp_path):
    path = str(tmp_path / "r.jsonl")
    first = store.Appender(path)
    first.write({"a": 1})
    try:
        with pytest.raises(RuntimeError, match="another sweep is writing"):
            store.Appender(path, resume=False)  # must not move the file away from under the first
        assert store.read_records(path) == [{"a": 1}]
    finally:
        first.close()
    second = store.Appender(path)  # the lock goes with the first sweep
    assert second.records == [{"a": 1}]
    second.close()


def test_each_record_is_on_disk_before_the_next_case(tmp_path, monkeypatch):
    """The file holds the previous case's line at the moment the next case is spawned."""
    path = tmp_path / "sweep.jsonl"
    seen = []
    real_spawn = sweep.spawn

    def spawn(case, **kwargs):
        seen.append(path.read_bytes().count(b"\n") if path.exists() else 0)
        return real_spawn(case, **kwargs)

    monkeypatch.setattr(sweep, "spawn", spawn)
    code, records, _ = run_sweep(tmp_path, backends=["identity"], n="30,40,50")
    assert code == 0 and seen == [0, 1, 2]


def test_module_class_specs_must_load():
    with pytest.raises(ValueError, match="could not be loaded"):
        worker.resolve_backend("no_such_module_here:Thing")
    with pytest.raises(ValueError, match="has no class 'Nothing'"):
        worker.resolve_backend(f"{__name__}:Nothing")
    with pytest.raises(ValueError, match="unknown backend 'nosuch'; known: loop"):
        worker.resolve_backend("nosuch")


def test_ctrl_c_kills_the_running_case_and_keeps_the_finished_ones(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    monkeypatch.setenv("KMBENCH_TEST_PIDS", str(pids))
    out = tmp_path / "sweep.jsonl"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "kmbench.cli", "sweep", "--backends", f"identity,{spec(Hangs)}",
                             "--n", "50", "--k", "2", "--d", "2", "--repeats", "1", "--timeout", "120",
                             "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (pids.exists() and pids.read_text().endswith("\n")) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted" in err and "run the same command to resume" in err and "Traceback" not in err
    assert [r["backend"] for r in store.read_records(str(out))] == ["identity"]
    child, grandchild = map(int, pids.read_text().split())
    deadline = time.monotonic() + 10
    while (alive(child) or alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child) and not alive(grandchild)


def test_a_case_is_recorded_per_iterations_threads_and_seed(tmp_path):
    """Other settings are other measurements: resume must not pass them off as done."""
    base = ["sweep", "--backends", "identity", "--n", "30", "--k", "2", "--d", "2", "--repeats", "1",
            "--out", str(tmp_path / "sweep.jsonl")]
    for extra in (["--max-iter", "3", "--threads", "1", "--seed", "0"],
                  ["--max-iter", "4", "--threads", "1", "--seed", "0"],
                  ["--max-iter", "3", "--threads", "2", "--seed", "0"],
                  ["--max-iter", "3", "--threads", "1", "--seed", "5"],
                  ["--max-iter", "3", "--threads", "1", "--seed", "0"]):  # the first again: nothing to do
        assert cli.main(base + extra) == 0
    records = store.read_records(str(tmp_path / "sweep.jsonl"))
    assert [(r["max_iter"], r["threads"], r["seed"]) for r in records] == [(3, 1, 0), (4, 1, 0), (3, 2, 0), (3, 1, 5)]
    assert records[0]["inertia"] != records[3]["inertia"]  # the seed picks other data


def test_a_line_that_is_not_json_is_skipped_with_a_warning(tmp_path, capsys):
    from kmbench.bench.store import read_records

    path = tmp_path / "sweep.jsonl"
    path.write_text('{"backend": "identity"}\nnot json\n{"backend": "float32"}\n')
    assert [r["backend"] for r in read_records(str(path))] == ["identity", "float32"]
    assert "line 2 is not JSON; ignored" in capsys.readouterr().err
