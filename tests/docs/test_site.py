"""The documentation site builds with no warnings (`mkdocs build --strict`), as `make docs` does."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_docs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    cli_page = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "flowforge train" in cli_page and "--batch-size" in cli_page  # generated from the parser


def test_cli_page_lists_every_command() -> None:
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    gen_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_cli)
    page = gen_cli.render_cli()
    for command in ("train", "sample", "score", "demo"):
        assert f"## flowforge {command}" in page
