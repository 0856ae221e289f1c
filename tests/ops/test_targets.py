import numpy as np
import tensorflow as tf

from keras_det.ops.boxes import BoxCoder
from keras_det.ops.matching import BalancedSampler, Matcher
from keras_det.ops.targets import TargetEncoder


def _encoder(**kw):
    return TargetEncoder(Matcher((0.3, 0.7), (0, -1, 1), allow_low_quality_matches=True), **kw)


def test_targets_hand_made():
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 12], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    gt = np.array([[[0, 0, 10, 11], [21, 21, 31, 33], [0, 0, 0, 0]]], np.float32)
    labels = np.array([[2, 0, -1]], np.int32)
    t = _encoder()(anchors, gt, labels)
    # anchor 0: IoU 10/11 with gt 0 -> positive class 2 (+1 = 3); anchor 1: IoU 110/120 -> positive;
    # anchor 2: IoU 81/139 = 0.58 (ignore band) but the best for gt 1 -> positive (low-quality);
    # anchor 3: no overlap -> background.
    np.testing.assert_array_equal(t["labels"], [[3, 3, 1, 0]])
    np.testing.assert_array_equal(t["matched_index"], [[0, 0, 1, -1]])
    np.testing.assert_array_equal(t["box_weights"], [[1, 1, 1, 0]])
    np.testing.assert_array_equal(t["class_weights"], [[1, 1, 1, 1]])
    expected = BoxCoder().encode(gt[0, [0, 0, 1]], anchors[:3]).numpy()
    np.testing.assert_allclose(t["box_targets"][0, :3], expected, rtol=1e-6)
    np.testing.assert_array_equal(t["box_targets"][0, 3], 0)
    np.testing.assert_allclose(t["max_similarity"][0], [10 / 11, 110 / 120, 81 / 139, 0], rtol=1e-6)


def test_targets_empty_image_and_invalid_anchors():
    anchors = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], np.float32)
    t = _encoder()(anchors, np.zeros((2, 0, 4), np.float32), np.zeros((2, 0), np.int32))
    np.testing.assert_array_equal(t["labels"], [[0, 0], [0, 0]])
    assert np.all(np.isfinite(t["box_targets"].numpy()))
    gt = np.array([[[0, 0, 10, 10]]], np.float32)
    t = _encoder()(anchors, gt, [[0]], anchor_valid=[False, True])
    np.testing.assert_array_equal(t["labels"], [[-1, 0]])


def test_targets_per_image_proposals_with_padding_rows():
    props = np.array([[[0, 0, 10, 10], [0, 0, 0, 0]], [[40, 40, 50, 50], [0, 0, 0, 0]]], np.float32)
    gt = np.array([[[0, 0, 10, 10]], [[40, 40, 50, 50]]], np.float32)
    enc = TargetEncoder(Matcher((0.1, 0.5), (-1, 0, 1)))
    t = enc(props, gt, [[4], [1]])
    np.testing.assert_array_equal(t["labels"], [[5, -1], [2, -1]])
    assert np.all(np.isfinite(t["box_targets"].numpy()))


def test_targets_sampler():
    anchors = np.stack([np.arange(100) * 20.0, np.zeros(100), np.arange(100) * 20.0 + 10, np.full(100, 10.0)], -1).astype(np.float32)
    gt = anchors[None, :8]
    enc = TargetEncoder(Matcher((0.3, 0.7), (0, -1, 1)), sampler=BalancedSampler(16, 0.25))
    t = enc(anchors, gt, np.zeros((1, 8), np.int32), seed=1)
    assert int(t["box_weights"].numpy().sum()) == 4
    assert int(t["class_weights"].numpy().sum()) == 16
    assert int((t["labels"].numpy() == -1).sum()) == 100 - 16


def test_select_sampled_and_class_deltas():
    from keras_det.ops.targets import gather_class_deltas, select_sampled

    t = {"class_weights": tf.constant([[0.0, 1.0, 0.0, 1.0]]), "labels": tf.constant([[-1, 2, -1, 0]])}
    idx, out = select_sampled(t, 2)
    np.testing.assert_array_equal(idx, [[1, 3]])
    np.testing.assert_array_equal(out["labels"], [[2, 0]])
    deltas = tf.reshape(tf.range(2 * 3 * 4, dtype=tf.float32), [1, 2, 3, 4])
    np.testing.assert_array_equal(gather_class_deltas(deltas, tf.constant([[2, 3]])), [[[4, 5, 6, 7], [20, 21, 22, 23]]])
