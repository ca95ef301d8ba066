"""``OtherLoad``: the CPU time other processes took while a benchmark case ran."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from kmbench.bench.machine import OtherLoad

linux = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="OtherLoad reads /proc/stat (Linux)")
SPIN = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < {s}: pass"


@linux
def test_another_process_spinning_is_counted():
    with OtherLoad() as load:
        subprocess.run([sys.executable, "-c", SPIN.format(s=0.8)], check=True)
    # the child kept one CPU busy for most of the block (its interpreter's start included)
    assert load.cpus >= 0.4 and load.busy


@linux
def test_this_process_own_work_is_not_counted():
    # Other processes of a shared machine may run meanwhile; our own second of one busy CPU
    # must not be what shows, so "others" stays well below the CPU we spun.
    with OtherLoad() as load:
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            pass
    assert load.cpus is not None and load.cpus < 0.75


def test_without_proc_stat_the_load_is_unknown_not_zero(monkeypatch):
    monkeypatch.setattr(OtherLoad, "_sample", staticmethod(lambda: None))
    with OtherLoad() as load:
        pass
    assert load.cpus is None and load.steal is None and not load.busy


def test_busy_note_names_only_the_busy_cases():
    quiet, busy, unknown = OtherLoad(), OtherLoad(), OtherLoad()
    quiet.cpus, quiet.steal = 0.1, 0.0
    busy.cpus, busy.steal = 0.2, 0.3
    note = OtherLoad.busy_note({"2M,2,8": quiet, "50k,128,1024": busy, "photo": unknown})
    assert "50k,128,1024 (0.20 CPUs of other processes, 0.30 stolen)" in note
    assert "2M,2,8" not in note and "photo" not in note
    assert OtherLoad.busy_note({"2M,2,8": quiet}) == ""
