"""The ``kmbench`` command: one module per subcommand in this folder, shared argument helpers in ``args``.

Each subcommand's module has ``configure(parser)`` and
``run(args) -> int``; this file only dispatches, so a command's dependencies are
imported only when it runs. Errors print one line and exit 2; ``--debug`` shows
the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "list": ("kmbench.cli.listing", "list backends, their availability and capabilities"),
    "check": ("kmbench.cli.check", "cross-check every available backend against the oracle"),
    "bench": ("kmbench.cli.bench", "run the asv suites, publish the dashboard, write the report"),
    "sweep": ("kmbench.cli.sweep", "time backends over a grid of shapes, resumably"),
    "report": ("kmbench.cli.report", "write figures and pages from recorded results"),
    "recommend": ("kmbench.cli.recommend", "rank backends for a shape on this machine"),
    "fit": ("kmbench.cli.fitfile", "cluster a .npy/.csv/.parquet file"),
    "elbow": ("kmbench.cli.elbow", "inertia and silhouette against k"),
    "linkage": ("kmbench.cli.linkage", "hierarchical clustering of a .npy/.csv/.parquet file"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of subcommand ``only`` (importing just that one's module)."""
    parser = argparse.ArgumentParser(prog="kmbench", description="Benchmark and choose K-Means backends.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == only:
            importlib.import_module(module).configure(cmd)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except KeyboardInterrupt:
        print("kmbench: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for people, the traceback with --debug
        if args.debug:
            raise
        print(f"kmbench {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
