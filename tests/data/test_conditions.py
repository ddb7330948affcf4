"""The one condition-encoding rule (dcvae.data.conditions): names, their order, and lookups."""

import numpy as np
import pytest

from dcvae.data import condition_indices, condition_name, encode_conditions


def test_a_condition_is_its_name():
    assert [condition_name(v) for v in (2, 2.0, np.float32(2.0), "2", b"2", 2.5)] == \
        ["2", "2", "2", "2", "2", "2.5"]
    index, names = encode_conditions(np.array([2, 2.0, "2"], dtype=object), 3)
    assert names == ("2",) and index.tolist() == [0, 0, 0]


def test_numeric_names_order_as_numbers_and_others_as_text():
    index, names = encode_conditions(["10", "9", "2", "9"], 4)
    assert names == ("2", "9", "10") and index.tolist() == [2, 1, 0, 1]
    _, names = encode_conditions(np.array([10, 9, 2]), 3)
    assert names == ("2", "9", "10")
    _, names = encode_conditions(["b", "10", "a", "9"], 4)
    assert names == ("10", "9", "a", "b")  # not all numbers: text order


def test_scoring_looks_names_up_in_the_training_conditions():
    names = ("2", "9", "10")
    assert condition_indices([10, "9", 2.0], 3, names).tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match=r"never seen in training: \['11'\]"):
        condition_indices([10, 11, 2], 3, names)


@pytest.mark.parametrize("c,message", [
    ([1, None], "missing conditions"),
    ([1.0, float("nan")], "missing conditions"),
    (["a", " "], "empty condition name"),
    ([[1], [2]], "must be 1-D with one condition per sample"),
    ([1, 2, 3], "must be 1-D with one condition per sample"),
])
def test_bad_conditions_are_named(c, message):
    with pytest.raises(ValueError, match=message):
        encode_conditions(c, 2)


def test_an_identifier_column_is_refused_before_any_training():
    """(issue 15, item 18) 10,000 distinct values: one clear error, not hours of marginal scoring."""
    with pytest.raises(ValueError, match="has 10,000 distinct values"):
        encode_conditions(np.arange(10_000), 10_000)
    idx, names = encode_conditions(np.arange(1000) % 1000, 1000)  # the limit itself is taken
    assert len(names) == 1000 and idx.max() == 999


def test_the_cli_refuses_an_identifier_column(tmp_path):
    from click.testing import CliRunner

    from dcvae.cli import main

    rows = ["a,b,id"] + [f"{i % 7},{i % 5},{i}" for i in range(1500)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(main, ["fit", "--array", str(tmp_path / "t.csv"), "--condition-column", "id",
                                       "--model", "cvae", "--epochs", "1", "--quiet", "--out",
                                       str(tmp_path / "m")])
    assert result.exit_code != 0 and "has 1,500 distinct values" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m").exists()  # a failed fit leaves no folder behind
