"""docs/ecosystem.md names every vector model FlowDensity accepts or refuses, and what score is."""
from pathlib import Path

import flowforge

PAGE = (Path(__file__).parents[2] / "docs" / "ecosystem.md").read_text()


def test_every_vector_model_is_named_in_the_scikit_learn_section() -> None:
    section = PAGE[PAGE.index("The constructor's parameters"):PAGE.index("**scikit-learn's checks.**")]
    assert [name for name in flowforge.MODELS if not name.startswith("image-") and f'"{name}"' not in section] == []
    assert "**sum** over rows" in section and "(len(X), n_samples, 1)" in section
