"""The small-table note in words: a single validation row cannot be tested."""
from flowforge.tables.small import describe_gain, margin


def test_one_validation_row_says_it_cannot_tell() -> None:
    text = describe_gain({"rows": 1, "gain": 0.84, "gain_error": float("inf"), "margin": margin(1), "kept": False})
    assert "1 validation row" in text and "no standard error" in text and "inf" not in text


def test_the_margin_is_named_as_a_t_quantile() -> None:
    text = describe_gain({"rows": 5, "gain": 0.5, "gain_error": 0.2, "margin": margin(5), "kept": False})
    assert "kept above 2.78 standard errors" in text and "Student's t with 4 degrees of freedom" in text
