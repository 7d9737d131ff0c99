"""MkDocs hook: the command-line reference page, rendered from the argparse parser at build time.

`mkdocs build` adds a generated cli.md (nothing is written into docs/), so the page always shows
the options of the `flowforge` installed in the build's environment. Preview it with

    python docs/gen_cli.py > /tmp/cli.md
"""
from __future__ import annotations

import argparse
import os
from contextlib import contextmanager

INTRO = """# Command line

`flowforge` (or `python -m flowforge`) trains, samples and scores flows from the shell.
This page is generated from the parser itself at every documentation build, so it lists exactly
the options of this version. Each command's `--help` prints the same text.
"""


@contextmanager
def _columns(width: int):
    """argparse wraps help to the terminal width (read from COLUMNS): fix it for a stable page."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse offers no public way to list subparsers; `_actions` is the documented-by-use idiom
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def render_cli(width: int = 100) -> str:
    """Markdown: the top-level help, then one section per subcommand with its full help."""
    from flowforge.cli import build_parser

    parser = build_parser()
    with _columns(width):
        parts = [INTRO, "```text", parser.format_help().rstrip(), "```", ""]
        for name, sub in _subcommands(parser).items():
            parts += [f"## flowforge {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def on_files(files, config):
    """Hook: add the generated cli.md to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, "cli.md", content=render_cli()))
    return files


if __name__ == "__main__":
    print(render_cli())
