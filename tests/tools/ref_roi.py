"""torchvision reference for keras_det.ops.roi_align / roi_pool (RoIAlign, RoIPool, FPN RoIAlign).

Writes ``roi_reference.npz`` with, in keras_det's layout:

* ``features`` float32 ``[B, H, W, C]`` (NHWC) and, per spatial scale ``s`` in
  (1, 1/4, 1/16), ``rois_s{1/s}`` float32 ``[B, R, 4]`` absolute ``yxyx``: the
  same feature-pixel boxes divided by ``s`` (random, partly / entirely outside
  the map, tiny, zero-size, large, integer and half-integer corners, and
  all-zero padding rows at the end).
* ``align_a{0|1}_g{2|-1|1}_s{1/s}_o{h}x{w}``: ``torchvision.ops.roi_align``
  ``[B, R, h, w, C]`` for ``aligned`` in (False, True), ``sampling_ratio`` in
  (2, -1, 1), each scale and output sizes (7, 7) and (2, 3).
* ``pool_s{1/s}_o{h}x{w}``: ``torchvision.ops.roi_pool``.
* ``ml_p{2..5}`` pyramid maps (image 128 x 160, strides 4..32), ``ml_rois``,
  ``ml_levels`` (torchvision's LevelMapper, as level numbers) and
  ``ml_g{2|-1}_o{h}x{w}``: ``torchvision.ops.MultiScaleRoIAlign``
  (``aligned=False``).
"""

import os

import numpy as np
import torch
import torchvision
from torchvision.ops import MultiScaleRoIAlign, roi_align, roi_pool
from torchvision.ops.poolers import LevelMapper

B, H, W, C = 2, 13, 17, 2
SCALES = (1, 4, 16)  # inverse spatial scales
OUTPUT_SIZES = ((7, 7), (2, 3))


def _feature_boxes(rng):
    """[B, R, 4] xyxy boxes in feature-map pixels."""
    per_image = []
    for _ in range(B):
        boxes = []
        # Random boxes inside the map.
        for _ in range(7):
            x1, y1 = rng.uniform(0, W - 2), rng.uniform(0, H - 2)
            boxes.append([x1, y1, x1 + rng.uniform(1, W - x1), y1 + rng.uniform(1, H - y1)])
        # Partly outside.
        boxes += [
            [-3.3, -2.1, 5.2, 6.7],
            [W - 4.6, H - 3.2, W + 3.9, H + 5.4],
            [-1.7, 4.0, W + 0.8, 8.5],
            [6.1, -6.0, 9.3, 2.2],
        ]
        # Entirely outside the map (including the invalid band beyond -1 / H).
        boxes += [[W + 1.5, 2.0, W + 6.0, 9.0], [-9.0, -8.0, -1.5, -2.5]]
        # Tiny and zero-size (but not at the origin).
        x, y = rng.uniform(1, W - 2), rng.uniform(1, H - 2)
        boxes += [[x, y, x + 0.3, y + 0.6], [x, y, x + 0.05, y + 0.02], [x, y, x, y]]
        # Large: the whole map and beyond.
        boxes += [[0.0, 0.0, float(W), float(H)], [-6.0, -4.0, W + 7.0, H + 5.0]]
        # Integer and half-integer corners: samples on -1 / H, C rounding.
        boxes += [
            [-2.0, -2.0, 6.0, 6.0],
            [2.5, 1.5, 9.5, 10.5],
            [-0.5, 3.5, 4.5, H + 0.5],
        ]
        # Padding rows.
        boxes += [[0.0, 0.0, 0.0, 0.0]] * 2
        per_image.append(boxes)
    return np.asarray(per_image, np.float32)


def _to_rois(xyxy):
    """[B, R, 4] xyxy → torchvision [B*R, 5]."""
    b, r, _ = xyxy.shape
    ids = np.repeat(np.arange(b, dtype=np.float32), r)[:, None]
    return torch.from_numpy(np.concatenate([ids, xyxy.reshape(-1, 4)], axis=1))


def _to_nhwc(out, b, r):
    """torchvision [B*R, C, h, w] → [B, R, h, w, C]."""
    out = out.detach().numpy().transpose(0, 2, 3, 1)
    return np.ascontiguousarray(out.reshape((b, r) + out.shape[1:]))


def _yxyx(xyxy):
    return np.ascontiguousarray(xyxy[..., [1, 0, 3, 2]])


def _multilevel(rng, data):
    image_h, image_w = 128, 160
    maps = {}
    for k in range(2, 6):
        s = 2**k
        maps[f"p{k}"] = rng.normal(size=(B, image_h // s, image_w // s, C)).astype(np.float32)
    boxes = []
    for _ in range(B):
        rows = []
        for size in (8, 20, 40, 70, 111.9, 112, 150, 224, 300, 448, 600):
            w = size * rng.uniform(0.6, 1.4)
            h = size * size / w
            cx, cy = rng.uniform(0, image_w), rng.uniform(0, image_h)
            rows.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        rows += [[10.0, 20.0, 122.0, 132.0], [0.0, 0.0, 224.0, 224.0], [5.0, 5.0, 61.0, 61.0]]
        rows += [[0.0, 0.0, 0.0, 0.0]] * 2
        boxes.append(rows)
    boxes = np.asarray(boxes, np.float32)
    data.update({f"ml_{name}": v for name, v in maps.items()})
    data["ml_rois"] = _yxyx(boxes)
    torch_maps = {
        name: torch.from_numpy(v.transpose(0, 3, 1, 2).copy()) for name, v in maps.items()
    }
    box_list = [torch.from_numpy(b) for b in boxes]
    mapper = LevelMapper(2, 5)
    data["ml_levels"] = (mapper(box_list).numpy() + 2).reshape(B, -1).astype(np.int32)
    for sampling in (2, -1):
        for size in OUTPUT_SIZES:
            pooler = MultiScaleRoIAlign(list(maps), output_size=size, sampling_ratio=sampling)
            out = pooler(torch_maps, box_list, [(image_h, image_w)] * B)
            data[f"ml_g{sampling}_o{size[0]}x{size[1]}"] = _to_nhwc(out, B, boxes.shape[1])


def make(out_dir):
    rng = np.random.default_rng(20240611)
    features = rng.normal(size=(B, H, W, C)).astype(np.float32)
    x = torch.from_numpy(features.transpose(0, 3, 1, 2).copy())
    feature_boxes = _feature_boxes(rng)
    r = feature_boxes.shape[1]
    data = {
        "features": features,
        "torch_version": np.array(torch.__version__),
        "torchvision_version": np.array(torchvision.__version__),
    }
    with torch.no_grad():
        for inv in SCALES:
            xyxy = (feature_boxes * np.float32(inv)).astype(np.float32)
            data[f"rois_s{inv}"] = _yxyx(xyxy)
            rois = _to_rois(xyxy)
            for size in OUTPUT_SIZES:
                tag = f"s{inv}_o{size[0]}x{size[1]}"
                for aligned in (False, True):
                    for sampling in (2, -1, 1):
                        out = roi_align(x, rois, size, 1.0 / inv, sampling, aligned)
                        data[f"align_a{int(aligned)}_g{sampling}_{tag}"] = _to_nhwc(out, B, r)
                data[f"pool_{tag}"] = _to_nhwc(roi_pool(x, rois, size, 1.0 / inv), B, r)
        _multilevel(rng, data)
    path = os.path.join(out_dir, "roi_reference.npz")
    os.makedirs(out_dir, exist_ok=True)
    np.savez_compressed(path, **data)
    return path
