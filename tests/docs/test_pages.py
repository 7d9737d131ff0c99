"""Every ```python block of the user guide runs: a page's blocks in order, in one namespace."""
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
NEEDS = {"continuous.md": "torchdiffeq"}
PAGES = sorted(p.name for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


def test_pages_have_code() -> None:
    assert "index.md" in PAGES, "the pattern no longer finds the home page's example"


@pytest.mark.parametrize("page", PAGES)
def test_page_code_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if page in NEEDS:  # an optional extra the page's examples use
        pytest.importorskip(NEEDS[page])
    monkeypatch.chdir(tmp_path)  # a page may write files (checkpoints, a run folder)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    text = (DOCS / page).read_text()
    namespace: dict = {"__name__": f"docs_{page[:-3]}"}
    for match in BLOCK.finditer(text):
        first_line = text[: match.start()].count("\n") + 2  # the line after the opening fence
        # padding with newlines makes tracebacks point at the page's own line numbers
        code = compile("\n" * (first_line - 1) + match.group(1), str(DOCS / page), "exec")
        exec(code, namespace)  # noqa: S102 - the documentation's own examples, as a reader runs them
