"""keras_det.ops.boxes against torchvision (tests/fixtures/boxes_reference.npz).

The fixture is made by tests/tools/ref_boxes.py; torch is never imported here.
torchvision works in ``xyxy`` with deltas ``(dx, dy, dw, dh)`` and weights
``(wx, wy, ww, wh)``; keras_det in ``yxyx`` with ``(dy, dx, dh, dw)`` and
``(wy, wx, wh, ww)``: the same numbers permuted.
"""

import numpy as np
import pytest

from keras_det.ops import boxes as B
from tests.conftest import load_fixture

XYXY_TO_YXYX = [1, 0, 3, 2]  # also (dx, dy, dw, dh) -> (dy, dx, dh, dw); an involution


@pytest.fixture(scope="module")
def ref():
    return load_fixture("boxes_reference.npz")


def test_fixture_provenance(ref):
    assert str(ref["torchvision_version"]).startswith("0.")
    assert str(ref["torch_version"])


def test_iou_matches_torchvision_box_iou(ref):
    b1 = ref["iou_boxes1"][:, XYXY_TO_YXYX]
    b2 = ref["iou_boxes2"][:, XYXY_TO_YXYX]
    got = B.iou(b1, b2).numpy()
    assert got.shape == ref["iou"].shape
    np.testing.assert_allclose(got, ref["iou"], rtol=1e-6, atol=0)
    # Same through the format argument, in torchvision's own layout.
    np.testing.assert_allclose(
        B.iou(ref["iou_boxes1"], ref["iou_boxes2"], "xyxy").numpy(), ref["iou"], rtol=1e-6, atol=0
    )


@pytest.mark.parametrize("i", [0, 1])
def test_box_coder_encode_matches_torchvision(ref, i):
    weights = tuple(ref["coder_weights"][i][XYXY_TO_YXYX])
    coder = B.BoxCoder(weights=weights)
    got = coder.encode(
        ref["coder_boxes"][:, XYXY_TO_YXYX], ref["coder_anchors"][:, XYXY_TO_YXYX]
    ).numpy()
    np.testing.assert_allclose(got, ref[f"encode_{i}"][:, XYXY_TO_YXYX], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("i", [0, 1])
def test_box_coder_decode_matches_torchvision(ref, i):
    weights = tuple(ref["coder_weights"][i][XYXY_TO_YXYX])
    coder = B.BoxCoder(weights=weights)
    got = coder.decode(
        ref["coder_deltas"][:, XYXY_TO_YXYX], ref["coder_anchors"][:, XYXY_TO_YXYX]
    ).numpy()
    want = ref[f"decode_{i}"][:, XYXY_TO_YXYX]
    # Rows 0..19 hit the log(1000/16) clamp: boxes up to 62.5x the anchor.
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
