import numpy as np
import pytest

from keras_det.ops import anchors as A


def test_cell_anchors_hand_computed():
    got = A.cell_anchors(sizes=(128,), aspect_ratios=(0.5, 1.0, 2.0)).numpy()
    h = 128 * np.sqrt([0.5, 1.0, 2.0])
    w = 128 / np.sqrt([0.5, 1.0, 2.0])
    np.testing.assert_allclose(got, np.stack([-h / 2, -w / 2, h / 2, w / 2], -1), rtol=1e-6)
    # Every anchor of a size keeps the area size**2.
    full = A.cell_anchors().numpy()
    areas = (full[:, 2] - full[:, 0]) * (full[:, 3] - full[:, 1])
    np.testing.assert_allclose(areas, np.tile([128**2, 256**2, 512**2], 3), rtol=1e-5)
    # Aspect-ratio major, size minor (torchvision's order): first three are ratio 0.5.
    hw = (full[:, 2] - full[:, 0]) / (full[:, 3] - full[:, 1])
    np.testing.assert_allclose(hw, np.repeat([0.5, 1.0, 2.0], 3), rtol=1e-5)


def test_grid_anchors_centres_and_order():
    got = A.grid_anchors((2, 3), stride=16, sizes=(32,), aspect_ratios=(1.0,)).numpy()
    centres = np.array([[8, 8], [8, 24], [8, 40], [24, 8], [24, 24], [24, 40]], np.float32)
    np.testing.assert_allclose(got, np.concatenate([centres - 16, centres + 16], -1))
    nine = A.grid_anchors((4, 5), stride=16).numpy().reshape(4, 5, 9, 4)
    # Cell (2, 3) holds 9 anchors centred on (2.5 * 16, 3.5 * 16).
    np.testing.assert_allclose((nine[2, 3, :, :2] + nine[2, 3, :, 2:]) / 2, np.tile([[40, 56]], (9, 1)), atol=1e-4)
    np.testing.assert_allclose(nine[2, 3] - nine[0, 0], np.tile([[32, 48, 32, 48]], (9, 1)), atol=1e-4)
    corner = A.grid_anchors((1, 1), stride=16, sizes=(32,), aspect_ratios=(1.0,), offset=0.0).numpy()
    np.testing.assert_allclose(corner, [[-16, -16, 16, 16]])


def test_anchor_count_for_600x800():
    assert A.num_anchors((600, 800)) == 38 * 50 * 9 == 17100
    assert A.num_anchors((600, 800), rounding="floor") == 37 * 50 * 9 == 16650
    assert A.grid_anchors((38, 50), stride=16).shape == (17100, 4)
    with pytest.raises(ValueError, match="rounding"):
        A.num_anchors((600, 800), rounding="round")


def test_multilevel_anchors():
    anchors, counts = A.multilevel_anchors((64, 96), strides=(8, 16, 32), aspect_ratios=(1.0,), scales_per_octave=2)
    assert counts == [8 * 12 * 2, 4 * 6 * 2, 2 * 3 * 2]
    assert anchors.shape == (sum(counts), 4)
    first = anchors.numpy()[:2]  # level stride 8, size 32 and 32*sqrt(2), cell (0, 0)
    np.testing.assert_allclose(first[:, 2] - first[:, 0], [32, 32 * np.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose((first[:, 0] + first[:, 2]) / 2, [4, 4], atol=1e-5)
    with pytest.raises(ValueError, match="one entry per level"):
        A.multilevel_anchors((64, 64), strides=(8, 16), sizes=(32,))


def test_ssd_scales_follow_liu_et_al():
    np.testing.assert_allclose(A.ssd_scales(6), [0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.0], atol=1e-12)


def test_ssd300_default_box_count_is_8732():
    four, six = (1.0, 2.0, 0.5), (1.0, 2.0, 0.5, 3.0, 1.0 / 3.0)
    boxes = A.ssd_default_boxes([38, 19, 10, 5, 3, 1], aspect_ratios=[four, six, six, six, four, four])
    assert boxes.shape == (8732, 4)


def test_ssd_default_boxes_first_cell():
    boxes = A.ssd_default_boxes([4, 2], clip=False).numpy()
    assert boxes.shape == (4 * 4 * 6 + 2 * 2 * 6, 4)
    cell = boxes[:6]
    h = cell[:, 2] - cell[:, 0]
    w = cell[:, 3] - cell[:, 1]
    s0, s1 = 0.2, 0.9  # two levels: s_1 = 0.2, s_2 = 0.9
    np.testing.assert_allclose(w, [s0, np.sqrt(s0 * s1), s0 * np.sqrt(2), s0 / np.sqrt(2), s0 * np.sqrt(3), s0 / np.sqrt(3)], rtol=1e-6)
    np.testing.assert_allclose(h, [s0, np.sqrt(s0 * s1), s0 / np.sqrt(2), s0 * np.sqrt(2), s0 / np.sqrt(3), s0 * np.sqrt(3)], rtol=1e-6)
    np.testing.assert_allclose((cell[:, 0] + cell[:, 2]) / 2, 0.125, atol=1e-7)
    # The last level's extra box uses s_{m+1} = 1: sqrt(0.9 * 1.0).
    last = boxes[4 * 4 * 6 : 4 * 4 * 6 + 6]
    np.testing.assert_allclose(last[1, 3] - last[1, 1], np.sqrt(0.9), rtol=1e-6)
    clipped = A.ssd_default_boxes([4, 2]).numpy()
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_ssd_default_boxes_rejects_mismatched_ratios():
    with pytest.raises(ValueError, match="2 feature maps"):
        A.ssd_default_boxes([4, 2], aspect_ratios=[(1.0,)])
