"""`flowforge COMMAND ...`: run a subcommand and turn what goes wrong into one line and an exit status.

Errors in the user's input (FlowforgeError, a missing file) print one line
`flowforge: error: ...` and exit with status 2; `flowforge --debug ...` shows the traceback.
`check` exits with 1 when a tolerance is exceeded. Ctrl-C (SIGINT) or SIGTERM during `train`
stops after the current step, writes a resumable RUN/model.pt and exits with 130 or 143
(128 + the signal's number, as a shell reports a process the signal ended); a second signal
stops at once, leaving the last checkpoint.
"""
from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

from ..errors import FlowforgeError
from .parser import build_parser, parse


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on argv (default sys.argv[1:]); returns the exit status."""
    try:
        args = parse(build_parser(), sys.argv[1:] if argv is None else argv)
    except SystemExit as done:  # --help, --version
        return int(done.code or 0)
    except FlowforgeError as error:  # a usage mistake: never worth a traceback
        return _fail(error)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _show_warning
            return args.handler(args)
    except BrokenPipeError:  # the reader went away (`flowforge sample RUN | head`): stop quietly
        _silence_stdout()
        return 141  # 128 + SIGPIPE: what the shell reports for a tool stopped by a closed pipe
    except (FlowforgeError, OSError) as error:
        if args.debug:
            raise
        return _fail(error)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("flowforge: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, MemoryError) as error:
        if not args.debug and _out_of_memory(error):
            print(f"flowforge: error: out of memory ({_first_line(error)[:160]}); "
                  "ask for fewer rows at once (-n, --batch-size) or free memory", file=sys.stderr)
            return 1
        if args.debug or not _lost_other_ranks():
            raise
        first = _first_line(error)[:200]
        print(f"flowforge: error: stopped because another process of this torchrun run failed (its error is above; here: {first})",
              file=sys.stderr)
        return 1



def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _out_of_memory(error: BaseException) -> bool:
    """torch's CPU and CUDA allocation failures, and Python's."""
    text = str(error)
    return isinstance(error, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line, like the errors (no source path and code line; --debug shows them).
    torch's notices about its own internals (a deprecation inside torch.compile's code) are left
    out: nothing a flowforge user can act on."""
    if issubclass(category, (DeprecationWarning, FutureWarning)) and f"{os.sep}torch{os.sep}" in str(filename):
        return
    print(f"flowforge: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _lost_other_ranks() -> bool:
    """Inside a torchrun group flowforge made: a collective's RuntimeError means a peer went away."""
    if "torch.distributed" not in sys.modules:
        return False
    from ..train import distributed

    return distributed.made_group()


def _fail(error: Exception) -> int:
    if isinstance(error, OSError) and error.strerror and error.filename:
        message = f"{error.filename}: {error.strerror}"
    else:
        message = str(error)
    print(f"flowforge: error: {' '.join(message.split())}", file=sys.stderr)
    return 2
