"""keras_det.ops.nms: exact agreement with torchvision, padding, export, errors.

The torchvision outputs come from tests/fixtures/nms_reference.npz, made by
tests/tools/ref_nms.py (torch is never imported here). Comparisons are exact
(``np.array_equal`` on the kept indices).
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_det.ops import nms as N
from tests.conftest import load_fixture

XYXY_TO_YXYX = [1, 0, 3, 2]
REF = load_fixture("nms_reference.npz")
CASES = [str(c) for c in REF["cases"]]
THRESHOLDS = (0.3, 0.5, 0.7)


def _case(name):
    get = lambda key: REF[f"{name}__{key}"]  # noqa: E731
    kind = str(get("kind"))
    boxes = get("boxes_xyxy")[:, XYXY_TO_YXYX]
    class_ids = get("class_ids") if kind == "batched" else None
    return kind, boxes, get("scores"), class_ids, get


def _stable_order(kept, scores):
    """``kept`` re-sorted by descending score, ties by ascending index."""
    kept = np.sort(kept)
    return kept[np.argsort(-scores[kept], kind="stable")]


def test_fixture_provenance():
    assert str(REF["torch_version"]).startswith("2.")
    assert str(REF["torchvision_version"]).startswith("0.")
    assert len(CASES) >= 10


# ---------------------------------------------------------------- fixtures


@pytest.mark.parametrize("t", THRESHOLDS)
@pytest.mark.parametrize("name", [c for c in CASES if str(REF[f"{c}__kind"]) != "batched"])
def test_nms_matches_torchvision_exactly(name, t):
    kind, boxes, scores, _, get = _case(name)
    want = get(f"keep_{t}")
    if kind == "score":
        got = N.non_max_suppression(
            boxes, scores, t, score_threshold=float(get("score_threshold"))
        )
    else:
        got = N.non_max_suppression(boxes, scores, t)
    assert got.dtype == tf.int32
    np.testing.assert_array_equal(got.numpy(), want)
    # torchvision's own layout through the format argument, and a truncation.
    if kind == "nms":
        got = N.non_max_suppression(get("boxes_xyxy"), scores, t, 7, bounding_box_format="xyxy")
        np.testing.assert_array_equal(got.numpy(), want[:7])


BATCHED = [c for c in CASES if str(REF[f"{c}__kind"]) == "batched"]


def _assert_same_as_torchvision(got, want, scores, unstable_ties):
    if not unstable_ties:
        np.testing.assert_array_equal(got, want)
        return
    # torchvision's per-class path sorts the survivors with an unstable sort:
    # same kept set, same score sequence, our ties in ascending index order.
    assert sorted(got.tolist()) == sorted(want.tolist())
    np.testing.assert_array_equal(scores[got], scores[want])
    np.testing.assert_array_equal(got, _stable_order(want, scores))


@pytest.mark.parametrize("t", THRESHOLDS)
@pytest.mark.parametrize("name", BATCHED)
def test_batched_nms_matches_torchvision(name, t):
    _, boxes, scores, class_ids, get = _case(name)
    unstable = bool(get("unstable_ties"))
    got = N.batched_nms(boxes, scores, class_ids, t).numpy()
    _assert_same_as_torchvision(got, get(f"keep_{t}"), scores, unstable)
    # Both torchvision implementations, forced.
    got = N.batched_nms(boxes, scores, class_ids, t, method="offset").numpy()
    np.testing.assert_array_equal(got, get(f"offset_{t}"))
    got = N.batched_nms(boxes, scores, class_ids, t, method="per_class").numpy()
    # The per-class reference is unstable on ties whenever scores repeat.
    ties = len(np.unique(scores)) < len(scores)
    _assert_same_as_torchvision(got, get(f"perclass_{t}"), scores, ties)


def test_offset_rounding_case_really_differs():
    # The fixture case exists because torchvision's coordinate trick rounds
    # float32 coordinates: its two implementations disagree there, and each
    # of ours matches the corresponding one (test above).
    _, _, _, _, get = _case("batched_offset_rounding_700")
    differ = [
        set(get(f"offset_{t}").tolist()) != set(get(f"perclass_{t}").tolist()) for t in THRESHOLDS
    ]
    assert any(differ)


# ---------------------------------------------------------------- on paper


def test_three_boxes_known_answer():
    boxes = np.array(
        [
            [0, 0, 10, 10],  # A, score .9
            [0, 1, 10, 11],  # B: IoU(A, B) = 90 / 110 = 0.818
            [0, 5, 10, 15],  # C: IoU(A, C) = 50 / 150 = 1/3, IoU(B, C) = 60 / 140 = 0.43
        ],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert N.non_max_suppression(boxes, scores, 0.5).numpy().tolist() == [0, 2]
    assert N.non_max_suppression(boxes, scores, 0.3).numpy().tolist() == [0]
    assert N.non_max_suppression(boxes, scores, 0.9).numpy().tolist() == [0, 1, 2]
    assert N.non_max_suppression(boxes, scores, 0.5, max_output_size=1).numpy().tolist() == [0]
    # C first: C suppresses B (0.43 > 0.4) but not A (1/3).
    scores = np.array([0.8, 0.7, 0.9], np.float32)
    assert N.non_max_suppression(boxes, scores, 0.4).numpy().tolist() == [2, 0]
    # Per class: B alone in class 1 survives.
    got = N.batched_nms(boxes, np.array([0.9, 0.8, 0.7]), [0, 1, 0], 0.3).numpy().tolist()
    assert got == [0, 1]


def test_ties_go_to_the_lower_index():
    boxes = np.array([[0, 0, 10, 10]] * 4 + [[50, 50, 60, 60]] * 2, np.float32)
    scores = np.array([0.5, 0.5, 0.9, 0.5, 0.5, 0.5], np.float32)
    assert N.non_max_suppression(boxes, scores, 0.5).numpy().tolist() == [2, 4]
    scores = np.full(6, 0.5, np.float32)
    assert N.non_max_suppression(boxes, scores, 0.5).numpy().tolist() == [0, 4]


def test_iou_exactly_at_threshold_is_kept():
    # IoU = 2 / 4 = 0.5 exactly (y extent 1, x overlap 2 of 3).
    boxes = np.array([[0, 0, 1, 3], [0, 1, 1, 4]], np.float32)
    scores = np.array([1.0, 0.5], np.float32)
    assert N.non_max_suppression(boxes, scores, 0.5).numpy().tolist() == [0, 1]
    assert N.non_max_suppression(boxes, scores, 0.4999).numpy().tolist() == [0]


def test_threshold_compared_like_torchvision_double():
    # IoU = 3 / 10 computes to float32(0.3) = 0.30000001..., which is above
    # the double 0.3 (torchvision suppresses) but not above float32(0.3).
    boxes = np.array([[0, 0, 1, 6], [0, 3, 1, 10]], np.float32)
    scores = np.array([1.0, 0.5], np.float32)
    assert N.non_max_suppression(boxes, scores, 0.3).numpy().tolist() == [0]
    t64 = tf.constant(0.3, tf.float64)
    assert N.non_max_suppression(boxes, scores, t64).numpy().tolist() == [0]
    # A float32 tensor threshold *is* float32(0.3): nothing is above it.
    assert N.non_max_suppression(boxes, scores, tf.constant(0.3, tf.float32)).numpy().tolist() == [
        0,
        1,
    ]


def test_zero_area_and_inverted_boxes_never_interact():
    boxes = np.array(
        [
            [0, 0, 10, 10],
            [0, 0, 10, 0],  # zero width
            [10, 10, 0, 0],  # inverted both ways (TF's kernel would call it [0,0,10,10])
            [0, 10, 10, 0],  # inverted in x
            [0, 0, 10, 10],  # duplicate of 0
        ],
        np.float32,
    )
    scores = np.array([0.5, 0.9, 0.8, 0.7, 0.4], np.float32)
    assert N.non_max_suppression(boxes, scores, 0.5).numpy().tolist() == [1, 2, 3, 0]


def test_special_scores():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    # -inf scores are kept by default, like torchvision.
    scores = np.array([-np.inf, -np.inf, 0.0], np.float32)
    assert N.non_max_suppression(boxes, scores, 0.5).numpy().tolist() == [2, 0]
    # A score threshold removes score <= threshold.
    scores = np.array([0.2, 0.3, 0.1], np.float32)
    assert N.non_max_suppression(boxes, scores, 0.5, score_threshold=0.1).numpy().tolist() == [1]
    assert N.non_max_suppression(boxes, scores, 0.5, score_threshold=0.3).numpy().tolist() == []
    # Scores are sorted in their own dtype: these two differ only in float64.
    scores = np.array([0.1, 0.1 + 1e-12, 0.0])
    assert N.non_max_suppression(boxes, scores, 0.5).numpy().tolist() == [1, 2]
    assert N.non_max_suppression(boxes, np.array([1, 3, 2]), 0.5).numpy().tolist() == [1, 2]


def test_empty_input():
    assert N.non_max_suppression(np.zeros((0, 4)), np.zeros((0,)), 0.5, 5).shape == (0,)
    assert N.batched_nms(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0,), np.int32), 0.5).shape == (
        0,
    )
    idx, num = N.padded_nms(np.zeros((2, 0, 4)), np.zeros((2, 0)), 0.5, 3)
    assert idx.numpy().tolist() == [[-1] * 3] * 2 and num.numpy().tolist() == [0, 0]


# ---------------------------------------------------------------- padded


def _random_batch(seed, b=3, n=150, classes=5):
    rng = np.random.default_rng(seed)
    yx = rng.uniform(0, 300, (b, n, 2))
    hw = rng.uniform(5, 80, (b, n, 2))
    boxes = np.concatenate([yx, yx + hw], -1).astype(np.float32)
    scores = rng.random((b, n), dtype=np.float32)
    scores[:, ::9] = scores[:, 1::9][:, : scores[:, ::9].shape[1]]  # some ties
    scores[:, -20:] = -1.0  # padding rows
    class_ids = rng.integers(0, classes, (b, n)).astype(np.int32)
    return boxes, scores, class_ids


@pytest.mark.parametrize("class_aware", [False, True])
def test_padded_matches_unpadded(class_aware):
    boxes, scores, class_ids = _random_batch(0)
    k = 40
    indices, num = N.padded_nms(
        boxes, scores, 0.5, k, score_threshold=0.0, class_ids=class_ids if class_aware else None
    )
    assert indices.shape == (3, k) and indices.dtype == tf.int32
    assert num.shape == (3,) and num.dtype == tf.int32
    for i in range(3):
        if class_aware:
            want = N.batched_nms(boxes[i], scores[i], class_ids[i], 0.5, k, score_threshold=0.0)
        else:
            want = N.non_max_suppression(boxes[i], scores[i], 0.5, k, score_threshold=0.0)
        want = want.numpy()
        assert num[i] == len(want)
        np.testing.assert_array_equal(indices[i, : len(want)], want)
        assert np.all(indices[i, len(want) :].numpy() == -1)
        assert not np.isin(np.arange(130, 150), want).any()  # padding rows never chosen


def test_padded_in_tf_function_with_unknown_shapes():
    boxes, scores, class_ids = _random_batch(1, b=2, n=60)
    fn = tf.function(
        lambda b, s, c: N.padded_nms(b, s, 0.6, 16, score_threshold=0.0, class_ids=c),
        input_signature=[
            tf.TensorSpec([None, None, 4], tf.float32),
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None, None], tf.int32),
        ],
    )
    indices, num = fn(boxes, scores, class_ids)
    want, want_num = N.padded_nms(boxes, scores, 0.6, 16, score_threshold=0.0, class_ids=class_ids)
    np.testing.assert_array_equal(indices, want)
    np.testing.assert_array_equal(num, want_num)
    concrete = fn.get_concrete_function()
    assert concrete.structured_outputs[0].shape.as_list() == [None, 16]


def test_saved_model_round_trip(tmp_path):
    class Detector(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, 4], tf.float32),
                tf.TensorSpec([None, None], tf.float32),
                tf.TensorSpec([None, None], tf.int32),
            ]
        )
        def __call__(self, boxes, scores, class_ids):
            plain = N.padded_nms(boxes, scores, 0.5, 20, score_threshold=0.05)
            aware = N.padded_nms(boxes, scores, 0.5, 20, score_threshold=0.05, class_ids=class_ids)
            return {
                "indices": plain[0],
                "num": plain[1],
                "class_indices": aware[0],
                "class_num": aware[1],
            }

    module = Detector()
    path = str(tmp_path / "nms_model")
    tf.saved_model.save(module, path)
    loaded = tf.saved_model.load(path)
    boxes, scores, class_ids = _random_batch(2, b=2, n=80)
    got = loaded(tf.constant(boxes), tf.constant(scores), tf.constant(class_ids))
    want = module(boxes, scores, class_ids)
    for key in want:
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())
    assert got["indices"].shape == (2, 20)
    # A different batch size and N through the same loaded function.
    boxes, scores, class_ids = _random_batch(3, b=1, n=33)
    got = loaded(tf.constant(boxes), tf.constant(scores), tf.constant(class_ids))
    want = N.non_max_suppression(boxes[0], scores[0], 0.5, 20, score_threshold=0.05).numpy()
    np.testing.assert_array_equal(got["indices"][0, : len(want)], want)


# ---------------------------------------------------------------- errors


def test_bad_inputs_raise_value_errors_naming_the_argument():
    boxes = np.zeros((5, 4), np.float32)
    scores = np.zeros((5,), np.float32)
    with pytest.raises(ValueError, match=r"`boxes` must have shape \[N, 4\]"):
        N.non_max_suppression(np.zeros((5, 3)), scores, 0.5, 3)
    with pytest.raises(ValueError, match=r"`boxes` must have shape \[N, 4\]"):
        N.non_max_suppression(np.zeros((4,)), scores, 0.5, 3)
    with pytest.raises(ValueError, match=r"`scores` must have shape \[N\]"):
        N.non_max_suppression(boxes, np.zeros((5, 1)), 0.5, 3)
    with pytest.raises(ValueError, match=r"`boxes` and `scores` disagree on N"):
        N.non_max_suppression(boxes, np.zeros((4,)), 0.5, 3)
    with pytest.raises(ValueError, match=r"`class_ids`"):
        N.batched_nms(boxes, scores, np.zeros((4,), np.int32), 0.5)
    with pytest.raises(ValueError, match=r"`class_ids` must be an integer"):
        N.batched_nms(boxes, scores, np.zeros((5,), np.float32), 0.5)
    with pytest.raises(ValueError, match=r"`iou_threshold` must be in \[0, 1\]"):
        N.non_max_suppression(boxes, scores, 1.5, 3)
    with pytest.raises(ValueError, match=r"`max_output_size` must be >= 0"):
        N.non_max_suppression(boxes, scores, 0.5, -1)
    with pytest.raises(ValueError, match=r"`method`='fast'"):
        N.batched_nms(boxes, scores, np.zeros((5,), np.int32), 0.5, method="fast")
    with pytest.raises(ValueError, match=r"`bounding_box_format`='xy'"):
        N.non_max_suppression(boxes, scores, 0.5, 3, bounding_box_format="xy")
    with pytest.raises(ValueError, match=r"`boxes` must have shape \[B, N, 4\]"):
        N.padded_nms(boxes, scores, 0.5, 3)
    with pytest.raises(ValueError, match=r"`boxes` and `scores` disagree on B"):
        N.padded_nms(np.zeros((2, 5, 4)), np.zeros((3, 5)), 0.5, 3)
    with pytest.raises(ValueError, match=r"`max_output_size` must be a Python int"):
        N.padded_nms(boxes[None], scores[None], 0.5, None)
    with pytest.raises(ValueError, match=r"`max_output_size` must be a Python int"):
        N.padded_nms(boxes[None], scores[None], 0.5, tf.constant(3))


def test_nan_is_an_error():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    with pytest.raises(ValueError, match="contains NaN"):
        N.non_max_suppression(boxes, np.array([np.nan, 0.5], np.float32), 0.5, 3)
    with pytest.raises(ValueError, match="contains NaN"):
        N.non_max_suppression(boxes * np.float32(np.nan), np.array([1, 0.5], np.float32), 0.5, 3)
    fn = tf.function(lambda b, s: N.non_max_suppression(b, s, 0.5, 3))
    with pytest.raises(tf.errors.InvalidArgumentError, match="contains NaN"):
        fn(tf.constant(boxes), tf.constant([math.nan, 0.5]))


def test_shape_mismatch_in_graph_is_an_error():
    fn = tf.function(
        lambda b, s: N.non_max_suppression(b, s, 0.5, 3),
        input_signature=[tf.TensorSpec([None, 4]), tf.TensorSpec([None])],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="`boxes`"):
        fn(tf.zeros([5, 4]), tf.zeros([4]))
