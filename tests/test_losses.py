import math

import numpy as np
import pytest
import tensorflow as tf

from keras_det import losses as L


def test_smooth_l1_hand_values():
    x = np.array([0.0, 0.05, -0.05, 1.0, -2.0], np.float32)
    beta = 1 / 9
    expected = [0.0, 0.5 * 0.05**2 / beta, 0.5 * 0.05**2 / beta, 1 - 0.5 * beta, 2 - 0.5 * beta]
    np.testing.assert_allclose(L.smooth_l1(x, beta), expected, rtol=1e-6)
    np.testing.assert_allclose(L.smooth_l1(x, 0.0), np.abs(x))


def test_box_regression_loss_weights_and_normaliser():
    pred = np.array([[[1.0, 0, 0, 0], [5.0, 5, 5, 5]]], np.float32)
    target = np.zeros_like(pred)
    # Only row 0 counts: smooth-L1(1) = 1 - 0.5/9; divided by the normaliser 4.
    got = L.box_regression_loss(pred, target, [[1.0, 0.0]], normalizer=4.0)
    np.testing.assert_allclose(got, (1 - 0.5 / 9) / 4, rtol=1e-6)
    np.testing.assert_allclose(L.box_regression_loss(pred, target, [[1.0, 0.0]], 1.0, kind="l2"), 1.0)
    # A zero normaliser (no positives) is clamped to 1: the loss is 0, not NaN.
    np.testing.assert_allclose(L.box_regression_loss(pred, target, [[0.0, 0.0]], 0.0), 0.0)


def test_cross_entropies_hand_values():
    logits = np.array([[[2.0, 0.0], [0.0, 0.0], [9.0, -9.0]]], np.float32)
    labels = np.array([[0, 1, -1]])
    weights = np.array([[1.0, 1.0, 0.0]], np.float32)
    ce0 = -np.log(np.exp(2) / (np.exp(2) + 1))
    ce1 = -np.log(0.5)
    np.testing.assert_allclose(L.softmax_cross_entropy(logits, labels, weights), (ce0 + ce1) / 2, rtol=1e-6)
    obj = np.array([[0.0, 3.0]], np.float32)
    bce = (np.log(2) + np.log(1 + np.exp(-3.0))) / 2
    np.testing.assert_allclose(L.binary_cross_entropy(obj, [[0, 1]], [[1.0, 1.0]]), bce, rtol=1e-6)


def test_hard_negative_mining_keeps_three_to_one():
    losses = np.arange(20, dtype=np.float32)[None].repeat(2, 0)
    pos = np.zeros((2, 20), bool)
    pos[0, [0, 1]] = True  # 2 positives -> 6 negatives, the highest-loss ones
    neg = ~pos
    neg[1, :17] = False  # image 1: no positive, 3 candidate negatives
    got = L.hard_negative_mask(losses, pos, neg, ratio=3).numpy()
    np.testing.assert_array_equal(np.flatnonzero(got[0]), [14, 15, 16, 17, 18, 19])
    assert got[1].sum() == 0  # no positives, no floor: nothing
    floor = L.hard_negative_mask(losses, pos, neg, ratio=3, min_negatives=5).numpy()
    np.testing.assert_array_equal(np.flatnonzero(floor[1]), [17, 18, 19])  # all negatives when fewer
    many = np.zeros((1, 20), bool)
    many[0, :10] = True
    got = L.hard_negative_mask(losses[:1], many, ~many, ratio=3).numpy()
    assert got.sum() == 10  # 30 wanted, only 10 negatives exist: all of them


def test_losses_trace_in_tf_function():
    f = tf.function(lambda a, b, w: L.box_regression_loss(a, b, w, tf.reduce_sum(w)))
    assert np.isfinite(f(tf.ones([2, 3, 4]), tf.zeros([2, 3, 4]), tf.ones([2, 3])).numpy())


def test_sigmoid_focal_loss_hand_values():
    # FL = alpha_t (1 - p_t)^2 BCE, alpha 0.25 (torchvision.ops.sigmoid_focal_loss semantics), by hand:
    # x=0, t=1: ln2 * 0.5^2 * 0.25 = 0.0433217; x=2, t=0: 2.1269280 * 0.8807971^2 * 0.75 = 1.2375586;
    # x=-1, t=1: 1.3132617 * 0.7310586^2 * 0.25 = 0.1754671.
    logits = tf.constant([[[0.0, 2.0, -1.0]]])
    targets = tf.constant([[[1.0, 0.0, 1.0]]])
    total = L.sigmoid_focal_loss(logits, targets, normalizer=1.0)
    np.testing.assert_allclose(total.numpy(), 0.04332170 + 1.23755863 + 0.17546708, rtol=1e-5)
    # gamma 0 and no alpha: plain binary cross-entropy; the default normaliser counts weighted rows.
    bce = L.sigmoid_focal_loss(logits, targets, gamma=0.0, alpha=-1.0)
    np.testing.assert_allclose(bce.numpy(), np.log(2) + 2.12692801 + 1.31326169, rtol=1e-5)
    # A row of weight 0 adds nothing and is not counted.
    two = tf.concat([logits, logits], axis=1)
    weighted = L.sigmoid_focal_loss(two, tf.concat([targets, targets], axis=1), weights=tf.constant([[1.0, 0.0]]))
    np.testing.assert_allclose(weighted.numpy(), total.numpy(), rtol=1e-6)
def test_yolo_v1_loss_on_a_hand_computed_2x2_grid():
    """YOLO v1's loss on a 2×2 grid (64 px, cells of 32 px), 2 predictors per cell, 2 classes.

    Image 0: GT A = [4, 8, 20, 24] (yxyx, class 1) in cell 0, GT B = [40, 40, 56, 64] (class 0) in cell 3.
    Targets (centre in cell units, sqrt of the size over 64): A (0.375, 0.5, 0.5, 0.5),
    B (0.5, 0.625, 0.5, sqrt(0.375)). Image 1 has no object and zero confidences.
    """
    values = np.zeros((2, 4, 2, 4), np.float32)
    boxes = np.zeros((2, 4, 2, 4), np.float32)
    confidence = np.zeros((2, 4, 2), np.float32)
    probs = np.full((2, 4, 2), 0.5, np.float32)
    # Cell 0: predictor 0 = [8, 8, 24, 24]: IoU with A = (12·16) / (256 + 256 - 192) = 0.6;
    # predictor 1 = [14, 14, 18, 18] (inside A): IoU 16 / 256 = 0.0625. Predictor 0 is responsible.
    values[0, 0] = [[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.25, 0.25]]
    boxes[0, 0] = [[8, 8, 24, 24], [14, 14, 18, 18]]
    confidence[0, 0] = [0.8, 0.3]
    probs[0, 0] = [0.3, 0.7]
    # Cell 3: predictor 0 = [32, 40, 48, 56]: IoU with B = (8·16) / (256 + 384 - 128) = 0.25;
    # predictor 1 = [40, 44, 56, 60]: IoU (16·16) / 384 = 2/3. Predictor 1 is responsible.
    values[0, 3] = [[0.25, 0.5, 0.5, 0.5], [0.5, 0.625, 0.5, 0.5]]
    boxes[0, 3] = [[32, 40, 48, 56], [40, 44, 56, 60]]
    confidence[0, 3] = [0.4, 0.5]
    probs[0, 3] = [0.6, 0.4]
    confidence[0, 1], confidence[0, 2] = [0.1, 0.2], [0.0, 0.3]
    target_values = np.zeros((2, 4, 4), np.float32)
    target_values[0, 0] = [0.375, 0.5, 0.5, 0.5]
    target_values[0, 3] = [0.5, 0.625, 0.5, math.sqrt(0.375)]
    target_boxes = np.zeros((2, 4, 4), np.float32)
    target_boxes[0, 0], target_boxes[0, 3] = [4, 8, 20, 24], [40, 40, 56, 64]
    mask = np.zeros((2, 4), np.float32)
    mask[0, 0] = mask[0, 3] = 1
    labels = np.full((2, 4), -1, np.int32)
    labels[0, 0], labels[0, 3] = 1, 0
    args = (values, boxes, confidence, probs, target_values, target_boxes, mask, labels)
    got = {k: float(v) for k, v in L.yolo_v1_loss(*args).items()}
    # Sums over image 0, divided by the 2 images.
    coord = 5 * ((0.5 - 0.375) ** 2 + (0.5 - math.sqrt(0.375)) ** 2) / 2
    obj = ((0.8 - 0.6) ** 2 + (0.5 - 2 / 3) ** 2) / 2
    noobj = 0.5 * (0.3**2 + 0.4**2 + 0.1**2 + 0.2**2 + 0.0**2 + 0.3**2) / 2
    cls = ((0.3**2 + 0.3**2) + (0.4**2 + 0.4**2)) / 2
    assert got == pytest.approx({"coord_loss": coord, "obj_loss": obj, "noobj_loss": noobj, "class_loss": cls}, rel=1e-5)
    # Confidence target 1 instead of the IoU, and other weights.
    one = {k: float(v) for k, v in L.yolo_v1_loss(*args, lambda_coord=1.0, lambda_noobj=1.0, confidence_target="one").items()}
    assert one["obj_loss"] == pytest.approx(((0.8 - 1) ** 2 + (0.5 - 1) ** 2) / 2, rel=1e-5)
    assert one["coord_loss"] == pytest.approx(coord / 5, rel=1e-5)
    assert one["noobj_loss"] == pytest.approx(noobj / 0.5, rel=1e-5)
    with pytest.raises(ValueError, match="confidence_target"):
        L.yolo_v1_loss(*args, confidence_target="two")

    # The cross-entropy terms: -log p of the GT class; BCE of the confidences against the same targets.
    clipped = np.clip(confidence, 0.01, 0.99)
    ce = L.yolo_v1_loss(*args, class_loss="ce", confidence_loss="bce", class_logits=np.log(probs),
                        confidence_logits=np.log(clipped / (1 - clipped)))
    ce = {k: float(v) for k, v in ce.items()}

    def bce(p, z):
        return -(z * math.log(p) + (1 - z) * math.log(1 - p))

    others = [0.3, 0.4, 0.1, 0.2, 0.01, 0.3] + [0.01] * 8  # image 0's other predictors, then image 1's 8
    assert ce == pytest.approx({
        "coord_loss": coord,
        "obj_loss": (bce(0.8, 0.6) + bce(0.5, 2 / 3)) / 2,
        "noobj_loss": 0.5 * sum(bce(p, 0.0) for p in others) / 2,
        "class_loss": (-math.log(0.7) - math.log(0.6)) / 2,
    }, rel=1e-5)
    for bad, match in (({"class_loss": "focal"}, "class_loss"), ({"confidence_loss": "l1"}, "confidence_loss"),
                       ({"class_loss": "ce"}, "class_logits"), ({"confidence_loss": "bce"}, "confidence_logits")):
        with pytest.raises(ValueError, match=match):
            L.yolo_v1_loss(*args, **bad)


def test_giou_hand_computed():
    a = [[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 2, 2]]
    b = [[1, 1, 3, 3], [0, 0, 2, 2], [0, 2, 1, 3], [0, 0, 1, 1]]
    # overlap 1/7 in a 3x3 enclosing box; identical; disjoint 1x1 boxes, gap 1 in a 1x3
    # enclosing box: 0 - (3 - 2)/3; nested: 1/4 and the enclosing box is the union.
    expected = [1 / 7 - 2 / 9, 1.0, -1 / 3, 0.25]
    np.testing.assert_allclose(L.giou(a, b), expected, atol=1e-6)
    np.testing.assert_allclose(L.elementwise_iou(a, b), [1 / 7, 1, 0, 0.25], atol=1e-6)
    # format conversion: the same pairs in xyxy
    xa = np.asarray(a, np.float32)[:, [1, 0, 3, 2]]
    xb = np.asarray(b, np.float32)[:, [1, 0, 3, 2]]
    np.testing.assert_allclose(L.giou(xa, xb, bounding_box_format="xyxy"), expected, atol=1e-6)


def test_diou_ciou_hand_computed():
    a = tf.constant([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2]], tf.float32)
    b = tf.constant([[0, 0, 2, 4], [1, 1, 3, 3], [0, 0, 2, 2]], tf.float32)
    # pair 0: IoU 1/2, centres (1,1) vs (1,2): rho^2 = 1, enclosing 2x4: c^2 = 20
    v0 = 4 / math.pi**2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    alpha0 = v0 / (0.5 + v0)
    # pair 1: IoU 1/7, rho^2 = 2, enclosing 3x3: c^2 = 18, same aspect: v = 0
    np.testing.assert_allclose(L.diou(a, b), [0.5 - 1 / 20, 1 / 7 - 2 / 18, 1.0], atol=1e-6)
    np.testing.assert_allclose(L.ciou(a, b), [0.5 - 1 / 20 - alpha0 * v0, 1 / 7 - 2 / 18, 1.0], atol=1e-6)


def test_gradients_exist_for_disjoint_boxes():
    pred = tf.Variable([[0.0, 0.0, 1.0, 1.0]])
    target = tf.constant([[0.0, 3.0, 1.0, 4.0]])
    for fn in (L.giou, L.ciou):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(1.0 - fn(pred, target))
        grad = tape.gradient(loss, pred).numpy()
        assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0
        # moving right (towards the target) lowers the loss
        assert grad[0, 3] < 0


def test_svm_squared_hinge_loss_on_two_windows_and_two_classes():
    # One GT window of class 0 with margins (0.5, 0.2): targets (+1, -1), hinge² (1 - 0.5)² + (1 + 0.2)² = 1.69;
    # a padded GT slot (-1) takes no part. Two background windows (all targets -1): margins (-2, 0.5) give
    # 0 + 1.5² = 2.25, margins (0, -0.5) give 1 + 0.5² = 1.25.
    pos = tf.constant([[[0.5, 0.2], [9.0, 9.0]]])
    labels = tf.constant([[0, -1]])
    neg = tf.constant([[[-2.0, 0.5], [0.0, -0.5]]])
    valid = tf.constant([[True, True]])
    # ratio 1: the hardest negative only, (1.69 + 2.25) / 2.
    np.testing.assert_allclose(L.svm_squared_hinge_loss(pos, labels, neg, valid, negative_ratio=1), 1.97, rtol=1e-6)
    # ratio 3 wants 3, both exist: (1.69 + 2.25 + 1.25) / 3; L2 0.1 on the kernel (1, 2) adds 0.1 * 5.
    got = L.svm_squared_hinge_loss(pos, labels, neg, valid, negative_ratio=3, kernel=tf.constant([[1.0, 2.0]]), l2=0.1)
    np.testing.assert_allclose(got, 5.19 / 3 + 0.5, rtol=1e-6)
    # an invalid background window is never picked
    masked = L.svm_squared_hinge_loss(pos, labels, neg, tf.constant([[False, True]]), negative_ratio=1)
    np.testing.assert_allclose(masked, (1.69 + 1.25) / 2, rtol=1e-6)


def test_mask_loss_hand_values():
    # Two RoIs of 1×2 pixels: logits (0, 0) against (1, 0) give ln 2 per pixel; logits (2, -1) against
    # (1, 1) give ln(1 + e^-2) and ln(1 + e).
    logits = tf.constant([[[[0.0, 0.0]], [[2.0, -1.0]]]])
    targets = tf.constant([[[[1.0, 0.0]], [[1.0, 1.0]]]])
    roi1 = (math.log1p(math.exp(-2.0)) + math.log1p(math.e)) / 2
    np.testing.assert_allclose(L.mask_loss(logits, targets, tf.constant([[1.0, 0.0]])), math.log(2), rtol=1e-6)
    np.testing.assert_allclose(L.mask_loss(logits, targets, tf.constant([[1.0, 1.0]])), (math.log(2) + roi1) / 2, rtol=1e-6)


def test_keypoint_loss_hand_values():
    # One RoI, a 1×2 heatmap, 2 keypoint types: type 0 has logits (0, 0) over the cells (CE ln 2 for any
    # target), type 1 has (1, 0) and its target is cell 1: CE = ln(1 + e).
    logits = tf.constant([[[[[0.0, 1.0], [0.0, 0.0]]]]])  # [B=1, R=1, h=1, w=2, K=2]
    index = tf.constant([[[0, 1]]])
    both = L.keypoint_loss(logits, index, tf.constant([[[1.0, 1.0]]]))
    np.testing.assert_allclose(both, (math.log(2) + math.log1p(math.e)) / 2, rtol=1e-6)
    np.testing.assert_allclose(L.keypoint_loss(logits, index, tf.constant([[[1.0, 0.0]]])), math.log(2), rtol=1e-6)
