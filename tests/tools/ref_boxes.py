"""torchvision box reference: ``tests/fixtures/boxes_reference.npz``.

Run through ``python tests/tools/make_reference.py boxes`` with torch and
torchvision installed. Stores, all boxes in torchvision's ``xyxy``:

* ``iou_boxes1`` ``[60, 4]``, ``iou_boxes2`` ``[40, 4]`` and
  ``iou`` = ``torchvision.ops.box_iou(boxes1, boxes2)`` ``[60, 40]``. The sets
  include identical, nested, disjoint, touching and zero-area boxes (only
  ``boxes1`` has zero-area boxes, so no pair is 0/0).
* ``coder_anchors`` ``[500, 4]`` and ``coder_boxes`` ``[500, 4]`` and, for
  each weight set ``w`` in ``coder_weights`` (``[W, 4]``, torchvision's
  ``(wx, wy, ww, wh)``), ``encode_<i>`` =
  ``BoxCoder(w).encode_single(coder_boxes, coder_anchors)`` (``(dx, dy, dw,
  dh)``), ``decode_<i>`` = ``BoxCoder(w).decode_single(coder_deltas,
  coder_anchors)`` (``xyxy``), with ``coder_deltas`` ``[500, 4]`` random
  deltas, some large enough to hit the ``log(1000/16)`` clamp.
"""

import os

import numpy as np

COD_WEIGHTS = ((10.0, 10.0, 5.0, 5.0), (1.0, 1.0, 1.0, 1.0))


def _boxes(rng, n, image=512.0, min_size=1.0, max_size=200.0):
    xy = rng.uniform(0, image, (n, 2))
    wh = rng.uniform(min_size, max_size, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def make(out_dir):
    import torch
    import torchvision
    from torchvision.models.detection._utils import BoxCoder

    rng = np.random.default_rng(1125)
    b1 = _boxes(rng, 60)
    b2 = _boxes(rng, 40)
    b2[:5] = b1[:5]  # identical
    b2[5:10] = b1[5:10] + np.array([2, 2, -2, -2], np.float32)  # nested
    b2[10] = [b1[10, 2], b1[10, 1], b1[10, 2] + 10, b1[10, 3]]  # touching at an edge
    b2[11] = b1[11] + 2000.0  # far away
    b1[50:55] = b2[20:25]
    b1[50:55, 2] = b1[50:55, 0]  # zero-width copies of positive boxes of set 2
    b1[55] = [b2[25, 0], b2[25, 1], b2[25, 0], b2[25, 1]]  # a point on a corner
    iou = torchvision.ops.box_iou(torch.from_numpy(b1), torch.from_numpy(b2)).numpy()
    if not np.all(np.isfinite(iou)):
        raise RuntimeError("box_iou reference contains NaN: fix the zero-area boxes")

    anchors = _boxes(rng, 500, min_size=8.0, max_size=300.0)
    boxes = anchors + rng.normal(0, 20, (500, 4)).astype(np.float32)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)
    deltas = rng.normal(0, 1.5, (500, 4)).astype(np.float32)
    deltas[:20, 2:] = rng.uniform(30, 60, (20, 2)).astype(np.float32)  # hit the clamp

    data = {
        "torch_version": np.array(torch.__version__),
        "torchvision_version": np.array(torchvision.__version__),
        "iou_boxes1": b1,
        "iou_boxes2": b2,
        "iou": iou.astype(np.float32),
        "coder_anchors": anchors,
        "coder_boxes": boxes,
        "coder_deltas": deltas,
        "coder_weights": np.array(COD_WEIGHTS, np.float64),
    }
    a_t = torch.from_numpy(anchors)
    for i, w in enumerate(COD_WEIGHTS):
        coder = BoxCoder(weights=w)
        data[f"encode_{i}"] = coder.encode_single(torch.from_numpy(boxes), a_t).numpy()
        data[f"decode_{i}"] = (
            coder.decode_single(torch.from_numpy(deltas), a_t).reshape(-1, 4).numpy()
        )
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "boxes_reference.npz")
    np.savez_compressed(path, **data)
    return path
