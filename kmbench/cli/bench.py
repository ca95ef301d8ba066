"""``kmbench bench``: the asv suites from this environment, the dashboard, and the report.

    kmbench bench [--profile fast|default|full] [--results DIR]

Runs every benchmark of ``benchmarks/suites.py`` through asv from the current Python
environment (``asv run -E existing:<python> --set-commit-hash HEAD``), one asv call per
benchmark so each is saved as soon as it finishes; benchmarks already saved for this
commit, machine and profile are skipped, so an interrupted bench picks up where it
stopped. Then ``asv publish`` builds the dashboard and ``kmbench.report.pages`` writes the report.

Each profile keeps its own results (``.asv/<profile>/results``) and dashboard
(``.asv/<profile>/html``): their parameter lists differ, and asv cannot mix them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROFILES = ("fast", "default", "full")
#: benchmark kinds whose number must not include other backends' libraries: asv's fork
#: server imports them all up front (benchmarks/common.py) unless told not to
NO_PRELOAD = ("peakmem_", "mem_")
#: the CDN files asv's dashboard loads (by file name) -> their copies in benchmarks/dashboard/
VENDORED = {
    "jquery-3.3.1.min.js": "jquery.min.js",
    "jquery.flot.min.js": "jquery.flot.js",
    "jquery.flot.time.min.js": "jquery.flot.time.js",
    "jquery.flot.selection.min.js": "jquery.flot.selection.js",
    "jquery.flot.categories.min.js": "jquery.flot.categories.js",
    "jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupidtable.min.js",
    "md5.min.js": "md5.min.js",
    "bootstrap.min.js": "bootstrap.min.js",
    "bootstrap.min.css": "bootstrap.min.css",
}
#: kmbench's own fix to asv's page (see the file), linked from every published page
OWN_STYLE = "vendor/kmbench.css"


def configure(parser):
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="parameter grid: fast (< 5 min on 2 cores; the default), default (~30 min), "
                             "full (hours); KMBENCH_PROFILE sets the default")
    parser.add_argument("--results", default=None, help="asv results folder (default: .asv/<profile>/results)")
    parser.add_argument("--html", default=None, help="dashboard folder (default: 'html' beside the results)")
    parser.add_argument("--report-dir", default=None,
                        help="report folder (default: reports/ for the default profile, else .asv/<profile>/report)")
    parser.add_argument("--bench", action="append", default=None, metavar="REGEX",
                        help="only benchmarks whose name matches (repeatable), e.g. 'SweepN'")
    parser.add_argument("--python", default=sys.executable,
                        help="the environment's Python that runs the benchmarks (default: this one)")
    parser.add_argument("--rerun", action="store_true", help="run benchmarks already saved for this commit too")
    parser.add_argument("--no-report", action="store_true", help="stop after publishing the dashboard")
    parser.add_argument("--verbose", action="store_true", help="show asv's stderr, skip reasons included")


def project_root() -> Path:
    """The checkout holding asv.conf.json and benchmarks/: this package's parent, else the working directory."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (candidate / "asv.conf.json").is_file() and (candidate / "benchmarks" / "suites.py").is_file():
            return candidate
    raise RuntimeError("kmbench bench needs a clone of the kmbench repository (asv.conf.json and "
                       f"benchmarks/suites.py); neither {Path(__file__).resolve().parents[2]} nor {Path.cwd()} has them")


def head_commit(root: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise RuntimeError(f"kmbench bench records results under the git commit, but {root} has none: "
                           f"{detail.strip()} (commit first: git commit -m ...)") from None
    return out.stdout.strip()


def write_config(root: Path, results: Path, html: Path, profile: str) -> Path:
    """asv.conf.json with this profile's folders, as absolute paths, beside the results."""
    from asv import util

    conf = util.load_json(str(root / "asv.conf.json"), js_comments=True)
    conf.update({"repo": str(root), "benchmark_dir": str(root / "benchmarks"), "results_dir": str(results),
                 "html_dir": str(html), "env_dir": str(root / ".asv" / "env")})
    path = results.parent / "asv.conf.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(conf, indent=4) + "\n", encoding="utf-8")
    return path


def check_state(results: Path, profile: str) -> None:
    """Refuse to mix profiles in one results folder (their parameter lists differ)."""
    path = results / "kmbench-bench.json"
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8")).get("profile")
        if recorded and recorded != profile:
            raise ValueError(f"{results} holds results of profile {recorded!r}, not {profile!r}; "
                             f"choose another --results or --profile {recorded}")


def save_state(results: Path, profile: str, commit: str, done: list[str]) -> None:
    path = results / "kmbench-bench.json"
    state = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    state["profile"] = profile
    state.setdefault("commits", {})[commit] = sorted(done)
    path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")


def benchmark_list(results: Path) -> dict:
    """benchmarks.json (written by asv's discovery): name -> metadata."""
    from asv import util
    from asv.benchmarks import Benchmarks

    data = util.load_json(str(results / "benchmarks.json"), api_version=Benchmarks.api_version)
    return {name: meta for name, meta in data.items() if isinstance(meta, dict) and "params" in meta}


def saved(results: Path, machine: str, commit: str, benchmarks: dict) -> set[str]:
    """Benchmarks with a result for every parameter combination (skips count; failures do not).

    The rule is asv's own ``--skip-existing-successful``, including its check that the
    benchmark's code (its version hash) has not changed since.
    """
    from asv.results import iter_results_for_machine_and_hash

    done = set()
    try:
        for result in iter_results_for_machine_and_hash(str(results), machine, commit):
            for key in result.get_result_keys(benchmarks):
                value = result.get_result_value(key, benchmarks[key]["params"])
                if not (value is None or (isinstance(value, list) and None in value)):
                    done.add(key)
    except OSError:  # no results yet for this machine
        pass
    return done


def run_asv(args: list[str], *, cwd: Path, env: dict, quiet: bool = False) -> int:
    """Run ``python -m asv ARGS``, echoing its output indented; returns its exit status."""
    cmd = [sys.executable, "-m", "asv", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1)
    for line in proc.stdout:
        if not quiet:
            print("    " + line.rstrip("\n"), flush=True)
    return proc.wait()


def localise_dashboard(html: Path, root: Path) -> list[str]:
    """Point the published dashboard at local copies of its CDN scripts, so it renders offline.

    Copies ``benchmarks/dashboard/`` to ``<html>/vendor/``, rewrites the ``<script>`` and
    ``<link>`` tags of every page and links ``OWN_STYLE``; idempotent. Returns the external
    URLs it did not know (a newer asv may add some), which are left as they were.
    """
    shutil.copytree(root / "benchmarks" / "dashboard", html / "vendor", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("README.md"))
    unknown = []

    def swap(match):
        tag, url = match.group(0), match.group(2)
        local = VENDORED.get(url.rsplit("/", 1)[-1])
        if local is None:
            unknown.append(url)
            return tag
        # the integrity hashes are the CDN builds'; the local copies are npm's files
        tag = re.sub(r'\s(?:integrity|crossorigin|referrerpolicy)="[^"]*"', "", tag.replace(url, f"vendor/{local}"))
        return re.sub(r'\sonerror="[^"]*"', "", tag)

    for page in html.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = re.sub(r'<(script|link)\b[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>', swap, text)
        if OWN_STYLE not in new:
            new = new.replace("</head>", f'  <link rel="stylesheet" href="{OWN_STYLE}">\n</head>', 1)
        if new != text:
            page.write_text(new, encoding="utf-8")
    return unknown


def run(args) -> int:
    import kmbench.bench.machine as machine_mod

    import importlib.util

    if importlib.util.find_spec("asv") is None:
        raise RuntimeError("kmbench bench runs asv, which is not installed: pip install 'kmbench[bench]'") from None
    profile = args.profile or os.environ.get("KMBENCH_PROFILE") or "fast"
    if profile not in PROFILES:
        raise ValueError(f"KMBENCH_PROFILE={profile!r} should be one of {', '.join(PROFILES)}")
    root = project_root()
    commit = head_commit(root)
    results = Path(args.results).resolve() if args.results else root / ".asv" / profile / "results"
    html = Path(args.html).resolve() if args.html else results.parent / "html"
    results.mkdir(parents=True, exist_ok=True)
    check_state(results, profile)
    config = write_config(root, results, html, profile)
    # asv reads its machine file from $HOME only; this profile's folder holds one we write (see
    # kmbench.bench.machine.write_asv_machine_file), so nothing depends on or lands in the user's home.
    asv_home = results.parent / "asv-home"
    env = dict(os.environ, HOME=str(asv_home), KMBENCH_PROFILE=profile, KMBENCH_RESULTS=str(results),
               KMBENCH_SKIP_LOG=str(results / "kmbench-skips.jsonl"),
               KMBENCH_CACHE=os.environ.get("KMBENCH_CACHE", str(root / ".kmbench-cache")))
    started = time.perf_counter()

    print(f"kmbench bench: profile {profile!r}, commit {commit[:8]}, results in {results}", flush=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print("  note: the working tree has uncommitted changes; they are measured but recorded under "
              f"{commit[:8]}", flush=True)

    print("  machine: describing it (the GEMM peak is measured once per results folder) ...", flush=True)
    info = machine_mod.describe_machine(measure=True, results_dir=results)
    machine_mod.save_machine(results, info)
    peak = info.get("gemm_peak", {}).get("float32")
    print(f"  machine: {info['machine']}: {info['cpu']}, {info['available_cores']} cores, {info['memory']}, "
          f"{info['blas']}, GPU {info['gpu']}, float32 GEMM peak {peak} GFLOP/s", flush=True)
    machine_mod.write_asv_machine_file(asv_home, info)

    common = ["--config", str(config), "-E", f"existing:{args.python}", "--set-commit-hash", commit,
              "--machine", info["machine"]]
    # Discovery alone: a pattern no benchmark matches still makes asv write benchmarks.json.
    code = run_asv(["run", *common, "--bench", "just-discover"], cwd=root, env=env, quiet=True)
    if code or not (results / "benchmarks.json").is_file():
        run_asv(["check", "--config", str(config), "-E", f"existing:{args.python}"], cwd=root, env=env)
        raise RuntimeError("asv could not discover the benchmarks (see above)")
    benchmarks = benchmark_list(results)
    names = [name for name in benchmarks
             if not args.bench or any(re.search(pattern, name) for pattern in args.bench)]
    if not names:
        raise ValueError(f"no benchmark matches {args.bench}; known: {', '.join(benchmarks)}")
    already = set() if args.rerun else saved(results, info["machine"], commit, benchmarks)

    failed, done = [], sorted(already & set(benchmarks))
    for i, name in enumerate(names, 1):
        head = f"[{i}/{len(names)}] {name}"
        if name in already:
            print(f"{head}: already saved for {commit[:8]}, skipped (--rerun to run it again)", flush=True)
            continue
        print(f"{head} ...", flush=True)
        t0 = time.perf_counter()
        preload = "0" if name.rsplit(".", 1)[-1].startswith(NO_PRELOAD) else "1"
        extra = ["--show-stderr"] if args.verbose else []
        # asv matches parameterised benchmarks as "name(param, ...)"
        code = run_asv(["run", *common, "--bench", f"^{re.escape(name)}(\\(|$)", "--launch-method", "forkserver",
                    *extra], cwd=root, env=dict(env, KMBENCH_PRELOAD=preload))
        # asv rediscovered the suites: judge by the benchmark's current version, in case its code changed
        current = benchmark_list(results).get(name, benchmarks[name])
        ok = name in saved(results, info["machine"], commit, {name: current})
        status = "saved" if ok else f"FAILED (asv exit {code}; --verbose shows why)"
        print(f"{head}: {status} in {time.perf_counter() - t0:.1f} s", flush=True)
        if ok:
            done.append(name)
            save_state(results, profile, commit, done)
        else:
            failed.append(name)

    print("publishing the dashboard ...", flush=True)
    if run_asv(["publish", "--config", str(config)], cwd=root, env=env, quiet=True):
        raise RuntimeError(f"asv publish failed; run: asv publish --config {config}")
    unknown = localise_dashboard(html, root)
    if unknown:
        print(f"  note: the dashboard still loads {', '.join(unknown)} from the network", flush=True)

    report_note = "skipped (--no-report)"
    if not args.no_report:
        report_note = make_report(results, profile, root, args.report_dir)

    print(f"\ndone in {time.perf_counter() - started:.0f} s: {len(names) - len(failed)}/{len(names)} benchmarks "
          f"saved{'; failed: ' + ', '.join(failed) if failed else ''}")
    print(f"  dashboard: {html / 'index.html'}")
    print(f"  preview:   asv preview --config {config}   (or: python -m http.server -d {html})")
    print(f"  report:    {report_note}")
    print(f"  skip reasons: {results / 'kmbench-skips.jsonl'}")
    return 1 if failed else 0


def make_report(results: Path, profile: str, root: Path, report_dir) -> str:
    """``kmbench.report.pages.write_report`` when that module is installed; a note saying what happened."""
    try:
        from kmbench.report.pages import write_report
    except ImportError as exc:
        return f"not written: kmbench.report.pages is not available ({exc})"
    out = Path(report_dir) if report_dir else (root / "reports" if profile == "default"
                                               else results.parent / "report")
    print(f"writing the report to {out} ...", flush=True)
    # kmbench.bench.machine.load_machine() without arguments (as the report calls it) reads KMBENCH_RESULTS
    previous = os.environ.get("KMBENCH_RESULTS")
    os.environ["KMBENCH_RESULTS"] = str(results)
    try:
        written = write_report(results, out)
    except Exception as exc:  # the dashboard is already published; say what broke instead of losing it
        return f"FAILED: {type(exc).__name__}: {exc} (retry: kmbench report --results {results} --out {out})"
    finally:
        if previous is None:
            os.environ.pop("KMBENCH_RESULTS", None)
        else:
            os.environ["KMBENCH_RESULTS"] = previous
    index = written.get("index.html", out / "index.html") if isinstance(written, dict) else out
    return str(index)
