"""Command line: ``recsys train | evaluate | plot | tune | export | bundle | data | compare | benchmark``.

Every command's parser lives in this package, one module per group (:mod:`.train`,
:mod:`.tune`, :mod:`.export`, :mod:`.data`, :mod:`.compare`, :mod:`.benchmark`); a new command is a function ``add_parsers``
there. ``recsys train`` with no arguments trains LightGCN on the built-in synthetic dataset
and prints a metrics table. The library's own errors (:class:`recsys.errors.RecsysError`)
are printed as one line with exit status 2; any other exception is a bug and keeps its
traceback.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from recsys.cli import benchmark, compare, data, export, train, tune
from recsys.errors import RecsysError

# torch's notices about its sparse API (beta status, invariant checks off by default) concern
# every sparse tensor this library builds, not the user's input; the command line hides them.
TORCH_SPARSE_NOTICES = ("Sparse CSR tensor support is in beta state", "Sparse invariant checks are implicitly disabled")
BUG_REPORT = "recsys: this is a bug in recsys; please report it with the traceback above and the command you ran"


def _commands(parser: argparse.ArgumentParser):
    """Every parser that ends a command line (``train``, ``data info``, ...)."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield parser
    for action in actions:
        for child in action.choices.values():
            yield from _commands(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (train, tune, export, data, compare, benchmark):
        group.add_parsers(sub)
    for command in _commands(parser):  # `recsys train -v` as well as `recsys -v train`
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="log progress to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    for notice in TORCH_SPARSE_NOTICES:
        warnings.filterwarnings("ignore", message=notice)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except RecsysError as exc:
        print(f"recsys: error: {exc}", file=sys.stderr)
        return 2
    except Exception:
        print(BUG_REPORT, file=sys.stderr, flush=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
