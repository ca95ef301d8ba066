"""``kmbench`` errors: one line naming the problem, a non-zero exit, no traceback (unless --debug).

Every probe runs the real command in a subprocess, so exit codes and stderr are what
a person at a terminal sees.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import impls
from kmbench import cli

HERE = os.path.dirname(os.path.abspath(__file__))


def kmbench(*args, env=None, cwd=None):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "kmbench.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=120)


def error_line(proc) -> str:
    """The one error line on stderr; fails if there is a traceback or more than one error."""
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    # Progress bars redraw with carriage returns; only lines a person reads as messages count.
    lines = [line.rsplit("\r", 1)[-1] for line in proc.stderr.splitlines()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, proc.stderr
    assert lines[-1] == errors[0], "the error is not the last thing printed"
    return errors[0]


def test_unknown_backend_in_check_lists_the_known_ones():
    proc = kmbench("check", "--backend", "nosuch")
    line = error_line(proc)
    assert proc.returncode == 2
    assert line.startswith("kmbench check: error: unknown backend 'nosuch'; known: ")
    for name in impls.REGISTRY:
        assert name in line


def test_debug_shows_the_traceback():
    proc = kmbench("--debug", "sweep", "--backends", "nosuch")
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert "unknown backend 'nosuch'" in proc.stderr


@pytest.mark.parametrize("args, env, expected", [
    (["--backends", "nosuch"], {}, "unknown backend 'nosuch'; known: loop, broadcast"),
    (["--backends", "no_such_module_here:Thing"], {}, "backend 'no_such_module_here:Thing' could not be loaded"),
    (["--backends", ","], {}, "--backends=',' names no backend"),
    (["--n", "100,abc"], {}, "--n='100,abc': 'abc' is not an integer"),
    (["--k", "0,8"], {}, "--k='0,8': 0 should be >= 1"),
    (["--d", "-3"], {}, "--d='-3': -3 should be >= 1"),
    (["--dtype", "float16"], {}, "--dtype='float16': 'float16' is not one of float32, float64"),
    (["--max-iter", "10,20"], {}, "--max-iter='10,20' should be one integer"),
    (["--repeats", "0"], {}, "--repeats='0': 0 should be >= 1"),
    (["--timeout", "-1"], {}, "--timeout='-1' should be > 0"),
    (["--timeout", "soon"], {}, "--timeout='soon' is not a number"),
    (["--threads", "two"], {}, "--threads='two': 'two' is not an integer"),
    (["--threads", "0"], {}, "--threads='0': 0 should be >= 1"),
    ([], {"KMBENCH_THREADS": "zero"}, "KMBENCH_THREADS='zero' should be an integer >= 1"),
], ids=lambda v: str(v)[:40])
def test_sweep_bad_arguments_are_one_line(args, env, expected, tmp_path, monkeypatch, capsys):
    # In-process (cli.main is what the console script calls): fourteen interpreter start-ups cost too much.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "sweep.jsonl"
    code = cli.main(["sweep", "--backends", "identity", "--n", "20", "--k", "2", "--d", "2", *args,
                     "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    line = captured.err.strip()
    assert line.startswith("kmbench sweep: error: ") and expected in line, line
    assert not out.exists()  # refused before anything ran


def test_sweep_output_path_that_cannot_exist(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = kmbench("sweep", "--backends", "identity", "--n", "20", "--k", "2", "--d", "2",
                   "--out", str(blocker / "sweep.jsonl"))
    assert str(blocker) in error_line(proc)


def test_unknown_command_names_the_choices():
    proc = kmbench("nosuch")
    line = error_line(proc)
    assert "invalid choice: 'nosuch'" in line and "sweep" in line


def _torch_cuda_reason() -> str:
    from kmbench import backends

    reason = {r["name"]: r for r in backends()}["torch-cuda"]["reason"] or ""
    if "could not load" in reason or "not installed" in reason or not reason:
        pytest.skip(f"torch-cuda here: {reason or 'available'}")
    return reason


def test_unavailable_backend_in_a_sweep_is_recorded_with_its_reason(tmp_path):
    reason = _torch_cuda_reason()
    out = tmp_path / "sweep.jsonl"
    proc = kmbench("sweep", "--backends", "torch-cuda", "--n", "20", "--k", "2", "--d", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "1 skipped" in proc.stdout
    record = json.loads(out.read_text())
    assert record["status"] == "skipped" and reason in record["reason"] and "no CUDA device" in record["reason"]


def test_unavailable_backend_in_check_gives_its_reason():
    _torch_cuda_reason()
    proc = kmbench("check", "--backend", "torch-cuda", "--dtype", "float32")
    assert proc.returncode == 0, proc.stderr
    assert "torch-cuda" in proc.stdout and "no CUDA device" in proc.stdout


@pytest.fixture
def fit_command():
    from kmbench.cli import COMMANDS

    try:
        __import__(COMMANDS["fit"][0])
    except ImportError as exc:
        pytest.skip(f"kmbench fit is not there yet: {exc}")


def test_fit_on_a_missing_file(fit_command, tmp_path):
    proc = kmbench("fit", str(tmp_path / "missing.npy"), "--k", "3", "--quiet")
    line = error_line(proc)
    assert line.startswith("kmbench fit: error: ") and "missing.npy" in line


def test_fit_on_a_file_with_nan(fit_command, tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("1,2\n3,4\n5,nan\n")
    line = error_line(kmbench("fit", str(path), "--k", "1", "--quiet"))
    assert "NaN" in line and "row 2" in line


def test_fit_on_a_file_with_text(fit_command, tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("a,b\n1,x\n2,y\n")
    line = error_line(kmbench("fit", str(path), "--k", "1", "--quiet"))
    assert "'b'" in line and "not numeric" in line


@pytest.mark.parametrize("args, message", [
    (["--k", "0"], "n_clusters=0 must be >= 1"),
    (["--k", "2", "--backend", "nosuch"], "unknown backend 'nosuch'"),
    (["--k", "2", "--threads", "4096"], "threads=4096 exceeds the"),
])
def test_fit_validates_before_drawing_progress(fit_command, tmp_path, args, message):
    import numpy as np

    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(20, 2)))
    proc = kmbench("fit", str(tmp_path / "x.npy"), *args)  # no --quiet: a bar would be drawn
    line = error_line(proc)
    assert message in line
    assert "restart" not in proc.stderr and "kmbench fit k=" not in proc.stderr, proc.stderr
