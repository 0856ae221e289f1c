import math

import numpy as np
import tensorflow as tf

from keras_det.ops.iou_losses import ciou, diou, elementwise_iou, giou


def test_giou_hand_computed():
    a = [[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 2, 2]]
    b = [[1, 1, 3, 3], [0, 0, 2, 2], [0, 2, 1, 3], [0, 0, 1, 1]]
    # overlap 1/7 in a 3x3 enclosing box; identical; disjoint 1x1 boxes, gap 1 in a 1x3
    # enclosing box: 0 - (3 - 2)/3; nested: 1/4 and the enclosing box is the union.
    expected = [1 / 7 - 2 / 9, 1.0, -1 / 3, 0.25]
    np.testing.assert_allclose(giou(a, b), expected, atol=1e-6)
    np.testing.assert_allclose(elementwise_iou(a, b), [1 / 7, 1, 0, 0.25], atol=1e-6)
    # format conversion: the same pairs in xyxy
    xa = np.asarray(a, np.float32)[:, [1, 0, 3, 2]]
    xb = np.asarray(b, np.float32)[:, [1, 0, 3, 2]]
    np.testing.assert_allclose(giou(xa, xb, bounding_box_format="xyxy"), expected, atol=1e-6)


def test_diou_ciou_hand_computed():
    a = tf.constant([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2]], tf.float32)
    b = tf.constant([[0, 0, 2, 4], [1, 1, 3, 3], [0, 0, 2, 2]], tf.float32)
    # pair 0: IoU 1/2, centres (1,1) vs (1,2): rho^2 = 1, enclosing 2x4: c^2 = 20
    v0 = 4 / math.pi**2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    alpha0 = v0 / (0.5 + v0)
    # pair 1: IoU 1/7, rho^2 = 2, enclosing 3x3: c^2 = 18, same aspect: v = 0
    np.testing.assert_allclose(diou(a, b), [0.5 - 1 / 20, 1 / 7 - 2 / 18, 1.0], atol=1e-6)
    np.testing.assert_allclose(ciou(a, b), [0.5 - 1 / 20 - alpha0 * v0, 1 / 7 - 2 / 18, 1.0], atol=1e-6)


def test_gradients_exist_for_disjoint_boxes():
    pred = tf.Variable([[0.0, 0.0, 1.0, 1.0]])
    target = tf.constant([[0.0, 3.0, 1.0, 4.0]])
    for fn in (giou, ciou):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(1.0 - fn(pred, target))
        grad = tape.gradient(loss, pred).numpy()
        assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0
        # moving right (towards the target) lowers the loss
        assert grad[0, 3] < 0
