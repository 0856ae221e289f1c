import numpy as np
import pytest
import tensorflow as tf

from keras_det.ops import boxes as B


def test_convert_format_known_values():
    xyxy = np.array([[10.0, 20.0, 30.0, 60.0]], np.float32)
    np.testing.assert_allclose(B.convert_format(xyxy, "xyxy", "yxyx"), [[20, 10, 60, 30]])
    np.testing.assert_allclose(B.convert_format(xyxy, "xyxy", "xywh"), [[10, 20, 20, 40]])
    np.testing.assert_allclose(B.convert_format(xyxy, "xyxy", "center_xywh"), [[20, 40, 20, 40]])
    np.testing.assert_allclose(B.convert_format(xyxy, "xyxy", "center_yxhw"), [[40, 20, 40, 20]])
    np.testing.assert_allclose(
        B.convert_format(xyxy, "xyxy", "rel_yxyx", image_shape=(100, 200, 3)),
        [[0.2, 0.05, 0.6, 0.15]],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        B.convert_format([[0.05, 0.2, 0.15, 0.6]], "rel_xyxy", "xyxy", image_shape=(100, 200)),
        xyxy,
        rtol=1e-6,
    )


@pytest.mark.parametrize("fmt", B.FORMATS)
def test_convert_format_round_trip(fmt):
    rng = np.random.default_rng(0)
    yx = rng.uniform(0, 50, (2, 5, 2)).astype(np.float32)
    yxyx = np.concatenate([yx, yx + rng.uniform(1, 40, (2, 5, 2)).astype(np.float32)], -1)
    there = B.convert_format(yxyx, "yxyx", fmt, image_shape=(120, 90))
    back = B.convert_format(there, fmt, "yxyx", image_shape=(120, 90))
    np.testing.assert_allclose(back, yxyx, rtol=1e-5, atol=1e-4)


def test_convert_format_errors_name_the_argument():
    with pytest.raises(ValueError, match="`target`='xyz'"):
        B.convert_format([[0, 0, 1, 1]], "xyxy", "xyz")
    with pytest.raises(ValueError, match="needs `image_shape`"):
        B.convert_format([[0, 0, 1, 1]], "xyxy", "rel_xyxy")
    with pytest.raises(ValueError, match="4 coordinates"):
        B.convert_format([[0, 0, 1]], "xyxy", "yxyx")


def test_area_and_iou_hand_computed():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(B.area(a), [100, 0])
    got = B.iou(a, b).numpy()
    # 25 / (100 + 100 - 25) = 1/7; identical box = 1; disjoint = 0; empty row = 0 (not NaN).
    np.testing.assert_allclose(got, [[1 / 7, 1, 0], [0, 0, 0]], rtol=1e-6)
    # Format argument: the same boxes as xyxy (square boxes are symmetric here).
    np.testing.assert_allclose(B.iou(a, b, "xyxy"), got, rtol=1e-6)
    # xywh: [0, 0, 10, 10] and [5, 5, 10, 10].
    np.testing.assert_allclose(
        B.iou([[0, 0, 10, 10]], [[5, 5, 10, 10]], "xywh"), [[1 / 7]], rtol=1e-6
    )


def test_iou_batched_and_broadcast():
    rng = np.random.default_rng(1)
    yx = rng.uniform(0, 50, (3, 6, 2))
    b1 = np.concatenate([yx, yx + rng.uniform(1, 30, (3, 6, 2))], -1).astype(np.float32)
    yx = rng.uniform(0, 50, (3, 4, 2))
    b2 = np.concatenate([yx, yx + rng.uniform(1, 30, (3, 4, 2))], -1).astype(np.float32)
    batched = B.iou(b1, b2).numpy()
    assert batched.shape == (3, 6, 4)
    for i in range(3):
        np.testing.assert_allclose(batched[i], B.iou(b1[i], b2[i]), rtol=1e-6)
    assert B.iou(b1, b2[0]).shape == (3, 6, 4)


def test_clip():
    got = B.clip([[-5, 3, 120, 300]], (100, 200, 3))
    np.testing.assert_allclose(got, [[0, 3, 100, 200]])
    per_image = B.clip([[[-5, 3, 120, 300]], [[-5, 3, 120, 300]]], [[[100, 200]], [[50, 60]]])
    np.testing.assert_allclose(per_image, [[[0, 3, 100, 200]], [[0, 3, 50, 60]]])


def test_box_coder_hand_computed():
    coder = B.BoxCoder()
    anchor = np.array([[0, 0, 10, 20]], np.float32)  # centre (5, 10), h 10, w 20
    box = np.array([[2, 4, 22, 24]], np.float32)  # centre (12, 14), h 20, w 20
    deltas = coder.encode(box, anchor).numpy()
    np.testing.assert_allclose(
        deltas, [[10 * 7 / 10, 10 * 4 / 20, 5 * np.log(2.0), 5 * np.log(1.0)]], rtol=1e-6
    )
    np.testing.assert_allclose(coder.decode(deltas, anchor), box, rtol=1e-6, atol=1e-5)


def test_box_coder_round_trip_and_clamp():
    rng = np.random.default_rng(2)
    yx = rng.uniform(0, 500, (2, 50, 2))
    anchors = np.concatenate([yx, yx + rng.uniform(8, 300, (2, 50, 2))], -1).astype(np.float32)
    yx = rng.uniform(0, 500, (2, 50, 2))
    gt = np.concatenate([yx, yx + rng.uniform(2, 300, (2, 50, 2))], -1).astype(np.float32)
    coder = B.BoxCoder(weights=(10, 10, 5, 5))
    np.testing.assert_allclose(coder.decode(coder.encode(gt, anchors), anchors), gt, atol=2e-3)
    # A huge dh is clamped at log(1000/16) before exp: height = anchor_h * 1000 / 16.
    out = coder.decode([[0.0, 0.0, 1e4, 0.0]], [[0.0, 0.0, 16.0, 16.0]]).numpy()
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 1000.0, rtol=1e-5)
    assert np.all(np.isfinite(out))


def test_box_coder_matches_torchvision_parameterisation():
    # torchvision BoxCoder((10, 10, 5, 5)).encode_single on xyxy; values computed from
    # its published formula: dx = wx * (gx - ax) / aw, dw = ww * log(gw / aw).
    anchors_xyxy = np.array([[10.0, 20.0, 50.0, 100.0]], np.float32)
    gt_xyxy = np.array([[15.0, 10.0, 45.0, 90.0]], np.float32)
    aw, ah, ax, ay = 40.0, 80.0, 30.0, 60.0
    gw, gh, gx, gy = 30.0, 80.0, 30.0, 50.0
    tv = np.array([10 * (gx - ax) / aw, 10 * (gy - ay) / ah, 5 * np.log(gw / aw), 5 * np.log(gh / ah)])
    ours = B.BoxCoder().encode(
        B.convert_format(gt_xyxy, "xyxy", "yxyx"), B.convert_format(anchors_xyxy, "xyxy", "yxyx")
    ).numpy()[0]
    np.testing.assert_allclose(ours[[1, 0, 3, 2]], tv, rtol=1e-6, atol=1e-7)


def test_box_coder_rejects_bad_weights():
    with pytest.raises(ValueError, match="weights"):
        B.BoxCoder(weights=(1, 1, 1))


def test_ops_run_in_tf_function():
    @tf.function
    def f(a, b):
        return B.iou(a, b), B.BoxCoder().decode(tf.zeros_like(a), a)

    a = tf.constant([[0.0, 0.0, 10.0, 10.0]])
    i, d = f(a, a)
    np.testing.assert_allclose(i, [[1.0]])
    np.testing.assert_allclose(d, a)


def test_context_padding_geometry():
    from keras_det.ops.boxes import context_boxes

    # A 100-px box warped to 227 with 16 px context: the crop is 100 * 227 / 195 px.
    out = context_boxes(tf.constant([[0.0, 0.0, 100.0, 100.0]]), 227, 16).numpy()[0]
    side = 100 * 227 / 195
    np.testing.assert_allclose(out, [50 - side / 2, 50 - side / 2, 50 + side / 2, 50 + side / 2], rtol=1e-5)
    with pytest.raises(ValueError, match="no room"):
        context_boxes(tf.zeros([1, 4]), 32, 16)
