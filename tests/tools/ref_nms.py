"""torchvision NMS reference: ``tests/fixtures/nms_reference.npz``.

Run through ``python tests/tools/make_reference.py nms`` with torch and
torchvision installed. Every case stores its inputs (``boxes_xyxy`` as
torchvision takes them, ``scores``, optionally ``class_ids``) and, for each
IoU threshold in ``THRESHOLDS``, torchvision's kept indices:

* ``nms`` cases: ``<case>__keep_<t>`` = ``torchvision.ops.nms``.
* ``batched`` cases: ``<case>__keep_<t>`` = ``torchvision.ops.batched_nms``
  (which picks the coordinate trick up to 1000 boxes and the per-class loop
  above), plus ``<case>__offset_<t>`` and ``<case>__perclass_<t>`` from the
  two private implementations called directly.
* ``score`` cases: ``<case>__keep_<t>`` = torchvision's detection-model
  recipe ``keep = where(scores > score_threshold); keep[nms(boxes[keep])]``.

Keys: ``cases`` (names), ``<case>__kind``, ``<case>__thresholds``,
``torch_version``, ``torchvision_version``.
"""

import os

import numpy as np

THRESHOLDS = (0.3, 0.5, 0.7)
IMAGE = 640.0


def _random_boxes(rng, n, image=IMAGE, min_size=4.0, max_size=200.0):
    xy = rng.uniform(0, image - min_size, (n, 2))
    wh = rng.uniform(min_size, max_size, (n, 2))
    return np.concatenate([xy, np.minimum(xy + wh, image)], axis=1).astype(np.float32)


def _clustered_boxes(rng, n, clusters, image=IMAGE, jitter=6.0):
    centres = _random_boxes(rng, clusters, image, 20.0, 160.0)
    picks = rng.integers(0, clusters, n)
    boxes = centres[picks] + rng.normal(0, jitter, (n, 4)).astype(np.float32)
    x1 = np.minimum(boxes[:, 0], boxes[:, 2] - 1)
    y1 = np.minimum(boxes[:, 1], boxes[:, 3] - 1)
    return np.stack([x1, y1, boxes[:, 2], boxes[:, 3]], 1).astype(np.float32)


def _iou32(a, b):
    """torchvision's float32 IoU of two xyxy boxes (same operation order)."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    w = max(np.float32(0), min(a[2], b[2]) - max(a[0], b[0]))
    h = max(np.float32(0), min(a[3], b[3]) - max(a[1], b[1]))
    inter = np.float32(w * h)
    return np.float32(inter / np.float32(area_a + area_b - inter))


def _threshold_pairs(rng, targets=THRESHOLDS, per_target=12):
    """Box pairs whose float32 IoU is within 2 ulp of each threshold.

    Includes, by construction, IoU exactly 0.5 (inter 2 / union 4), exactly
    float32(0.3) (3 / 10; above the double 0.3, so torchvision suppresses)
    and exactly float32(0.7) (7 / 10; below the double 0.7, so it keeps).
    """
    exact = [
        ([0, 0, 3, 1], [1, 0, 4, 1]),  # 2 / 4 = 0.5
        ([0, 0, 6, 1], [3, 0, 10, 1]),  # 3 / 10 -> float32(0.3)
        ([0, 0, 10, 1], [0, 0, 7, 1]),  # 7 / 10 -> float32(0.7)
        ([10, 20, 13, 21], [11, 20, 14, 21]),  # translated 0.5
        ([0, 0, 30, 10], [10, 0, 40, 10]),  # scaled 0.5
    ]
    pairs = [(np.array(a, np.float32), np.array(b, np.float32)) for a, b in exact]
    found = {t: 0 for t in targets}
    tries = 0
    while min(found.values()) < per_target and tries < 400000:
        tries += 1
        a = _random_boxes(rng, 1, 200.0, 5.0, 60.0)[0]
        t = targets[tries % len(targets)]
        if found[t] >= per_target:
            continue
        # Shift a copy of `a` along x so the 1-D overlap gives IoU near t,
        # then jitter the far edge by a few ulps and keep exact hits.
        w = a[2] - a[0]
        shift = w * (1 - t) / (1 + t)
        b = a.copy()
        b[0] += shift
        b[2] += shift
        for _ in range(30):
            iou = _iou32(a, b)
            t32 = np.float32(t)
            if abs(int(iou.view(np.int32)) - int(t32.view(np.int32))) <= 2:
                pairs.append((a.copy(), b.copy()))
                found[t] += 1
                break
            b[2] = np.nextafter(b[2], np.float32(np.inf) if iou > t32 else np.float32(-np.inf))
    boxes = []
    for k, (a, b) in enumerate(pairs):
        # Spread the pairs apart so they do not interact.
        off = np.float32(300.0 * (k % 8)), np.float32(300.0 * (k // 8))
        boxes.append(a + np.array([off[0], off[1], off[0], off[1]], np.float32))
        boxes.append(b + np.array([off[0], off[1], off[0], off[1]], np.float32))
    return np.stack(boxes).astype(np.float32)


def _cases(rng):
    """Yields (name, kind, boxes_xyxy, scores, class_ids or None, extra)."""
    n = 200
    yield "random_200", "nms", _random_boxes(rng, n), rng.random(n, dtype=np.float32), None, {}

    boxes = _clustered_boxes(rng, 300, 25)
    boxes[::7] = boxes[1::7][: len(boxes[::7])]  # exact duplicate boxes too
    scores = rng.integers(0, 6, 300).astype(np.float32) / 5  # 6 distinct values
    yield "ties_300", "nms", boxes, scores, None, {}

    yield "all_equal_scores_150", "nms", _clustered_boxes(rng, 150, 10), np.full(
        150, 0.5, np.float32
    ), None, {}

    yield "clustered_400", "nms", _clustered_boxes(rng, 400, 15, jitter=3.0), rng.random(
        400, dtype=np.float32
    ), None, {}

    boxes = _clustered_boxes(rng, 120, 8)
    z = rng.choice(120, 50, replace=False)
    boxes[z[:20], 2] = boxes[z[:20], 0]  # zero width
    boxes[z[20:35], 3] = boxes[z[20:35], 1]  # zero height
    boxes[z[35:], 2:] = boxes[z[35:], :2]  # points
    boxes[z[40:45]] = boxes[z[35:40]]  # duplicate zero-area boxes
    yield "zero_area_120", "nms", boxes, rng.random(120, dtype=np.float32), None, {}

    boxes = _threshold_pairs(rng)
    # The first box of each pair scores higher, so it is the one kept.
    scores = np.repeat(np.linspace(1.0, 0.5, len(boxes) // 2, dtype=np.float32), 2)
    scores[1::2] -= np.float32(0.001)
    yield "at_threshold", "nms", boxes, scores, None, {}

    boxes = _clustered_boxes(rng, 100, 6)
    inv = rng.choice(100, 30, replace=False)
    boxes[inv[:10]] = boxes[inv[:10]][:, [2, 1, 0, 3]]  # x inverted
    boxes[inv[10:20]] = boxes[inv[10:20]][:, [0, 3, 2, 1]]  # y inverted
    boxes[inv[20:]] = boxes[inv[20:]][:, [2, 3, 0, 1]]  # both (positive signed area)
    yield "inverted_100", "nms", boxes, rng.random(100, dtype=np.float32), None, {}

    boxes = _clustered_boxes(rng, 120, 10)
    scores = rng.normal(0, 3, 120).astype(np.float32)
    scores[rng.choice(120, 15, replace=False)] = -np.inf
    scores[rng.choice(120, 10, replace=False)] = 0.0
    scores[rng.choice(120, 10, replace=False)] = -0.0
    scores[rng.choice(120, 4, replace=False)] = np.inf
    yield "special_scores_120", "nms", boxes, scores, None, {}

    yield "random_2000", "nms", _random_boxes(rng, 2000), rng.random(
        2000, dtype=np.float32
    ), None, {}

    boxes = _clustered_boxes(rng, 300, 20)
    yield "score_threshold_300", "score", boxes, rng.random(300, dtype=np.float32), None, {
        "score_threshold": 0.4
    }

    boxes = np.concatenate([_clustered_boxes(rng, 500, 40), _random_boxes(rng, 300)])
    classes = rng.integers(0, 10, 800).astype(np.int32)
    yield "batched_10cls_800", "batched", boxes, rng.random(800, dtype=np.float32), classes, {}

    boxes = _clustered_boxes(rng, 600, 30)
    scores = rng.integers(0, 8, 600).astype(np.float32) / 8
    yield "batched_ties_600", "batched", boxes, scores, rng.integers(0, 10, 600).astype(
        np.int32
    ), {}

    # Big coordinates and many classes: the offsets reach ~3e5 where a float32
    # ulp is 1/32, so the coordinate trick rounds the boxes; the near-threshold
    # pairs make that rounding visible.
    pairs = _threshold_pairs(rng, per_target=40) * np.float32(8.0)
    boxes = np.concatenate([pairs, _clustered_boxes(rng, 700 - len(pairs), 30, image=3000.0)])
    scores = rng.random(len(boxes), dtype=np.float32)
    classes = rng.integers(0, 100, len(boxes)).astype(np.int32)
    classes[: len(pairs)] = np.repeat(rng.integers(0, 100, len(pairs) // 2), 2)
    yield "batched_offset_rounding_700", "batched", boxes, scores, classes, {}

    boxes = np.concatenate([_clustered_boxes(rng, 3000, 200), _random_boxes(rng, 2000)])
    classes = rng.integers(0, 10, 5000).astype(np.int32)
    yield "batched_10cls_5000", "batched", boxes, rng.random(
        5000, dtype=np.float32
    ), classes, {}

    # Same boxes, quantized scores: torchvision's per-class path sorts the
    # survivors with an unstable sort, so tied survivors come in std::sort
    # order (tests compare kept sets and score sequences for this case).
    yield "batched_ties_5000", "batched", boxes, rng.integers(0, 16, 5000).astype(
        np.float32
    ) / 16, classes, {"unstable_ties": True}


def make(out_dir):
    import torch
    import torchvision
    from torchvision.ops import boxes as tv_boxes

    rng = np.random.default_rng(20261125)
    data = {
        "torch_version": np.array(torch.__version__),
        "torchvision_version": np.array(torchvision.__version__),
    }
    names = []
    for name, kind, boxes, scores, classes, extra in _cases(rng):
        names.append(name)
        data[f"{name}__kind"] = np.array(kind)
        data[f"{name}__thresholds"] = np.array(THRESHOLDS, np.float64)
        data[f"{name}__boxes_xyxy"] = boxes.astype(np.float32)
        data[f"{name}__scores"] = scores.astype(np.float32)
        data[f"{name}__unstable_ties"] = np.array(bool(extra.get("unstable_ties", False)))
        b = torch.from_numpy(boxes.astype(np.float32))
        s = torch.from_numpy(scores.astype(np.float32))
        if classes is not None:
            data[f"{name}__class_ids"] = classes.astype(np.int32)
            c = torch.from_numpy(classes.astype(np.int64))
        if "score_threshold" in extra:
            data[f"{name}__score_threshold"] = np.array(extra["score_threshold"], np.float64)
        for t in THRESHOLDS:
            if kind == "nms":
                keep = torchvision.ops.nms(b, s, t)
            elif kind == "score":
                rows = torch.where(s > extra["score_threshold"])[0]
                keep = rows[torchvision.ops.nms(b[rows], s[rows], t)]
            else:
                keep = torchvision.ops.batched_nms(b, s, c, t)
                offset = tv_boxes._batched_nms_coordinate_trick(b, s, c, t)
                per_class = tv_boxes._batched_nms_vanilla(b, s, c, t)
                data[f"{name}__offset_{t}"] = offset.numpy().astype(np.int32)
                data[f"{name}__perclass_{t}"] = per_class.numpy().astype(np.int32)
            data[f"{name}__keep_{t}"] = keep.numpy().astype(np.int32)
    data["cases"] = np.array(names)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "nms_reference.npz")
    np.savez_compressed(path, **data)
    return path


if __name__ == "__main__":
    import sys

    print(make(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")))
