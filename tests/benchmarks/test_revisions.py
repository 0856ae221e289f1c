"""benchmarks/revisions.py at toy size: the same checkout as both revisions gives the same numbers."""

import json
import os

import pytest

import revisions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow  # two child processes (TensorFlow imports, shapes, 3 steps of SSD each), ~1 min
def test_one_checkout_against_itself_gives_equal_accuracy(tmp_path):
    out = tmp_path / "revisions.json"
    assert revisions.main(["--old", ROOT, "--new", ROOT, "--part", "accuracy", "--models", "ssd", "--steps", "3",
                           "--train-images", "16", "--test-images", "8", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    old, new = result["accuracy"]["old"]["ssd"], result["accuracy"]["new"]["ssd"]
    assert old["steps"] == new["steps"] == 3 and 0.0 <= new["AP50"] <= 1.0
    # Same code, same seed, same data, deterministic kernels: equal (nondeterministic, 0.4 % of the loss
    # after 3 steps was seen).
    assert new["final_loss"] == old["final_loss"] and new["AP50"] == old["AP50"]
    assert result["settings"]["old_root"] == ROOT and "speed" not in result


def test_table_pairs_old_and_new():
    result = {"settings": {"models": ["ssd"]},
              "accuracy": {"old": {"ssd": {"AP": 0.2, "AP50": 0.4, "final_loss": 1.5}},
                           "new": {"ssd": {"AP": 0.21, "AP50": 0.41, "final_loss": 1.49}}},
              "speed": {"ssd": {"old_ms": 100.0, "new_ms": 90.0, "ratio": 0.9}}}
    assert revisions.table(result).splitlines()[-1] == (
        "| ssd | 0.200 | 0.210 | 0.400 | 0.410 | 1.500 | 1.490 | 100.0 | 90.0 | 0.900 |")
