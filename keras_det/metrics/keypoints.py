"""COCO keypoint similarity (OKS) in vectorised NumPy, pycocotools' way.

The object keypoint similarity of a detection ``d`` and a ground truth ``g``
with ``P`` keypoints, per-keypoint sigmas ``s`` and the ground truth's
``area`` field is

    e_i = (dx_i**2 + dy_i**2) / (2 s_i)**2 / (area + eps) / 2
    OKS = mean over the visible (v > 0) ground-truth keypoints of exp(-e_i)

with ``eps = np.spacing(1)``, evaluated in that order (as
``COCOeval.computeOks``) so that the values agree bit for bit. A ground truth
with no visible keypoint uses all ``P`` keypoints and, as distance, how far
each detected keypoint lies outside the ground-truth box extended by its own
width / height on every side (``[x - w, x + 2w] x [y - h, y + 2h]``); such a
ground truth is ignored by the evaluation (``num_keypoints == 0``) but can
still absorb a detection. pycocotools is not imported.
"""

import numpy as np

# COCO's 17 person keypoint sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles).
COCO_PERSON_SIGMAS = np.array(
    [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]
) / 10.0


def keypoints_reason(keypoints):
    """``None`` if ``keypoints`` is a flat ``[x1, y1, v1, ...]`` list of finite numbers, else why not."""
    if not isinstance(keypoints, (list, tuple)) or len(keypoints) == 0 or len(keypoints) % 3:
        return f"are not a list of x, y, v triples: {keypoints!r:.80}"
    try:
        ok = all(not isinstance(v, bool) and np.isfinite(float(v)) for v in keypoints)
    except (TypeError, ValueError):
        ok = False
    if not ok or any(isinstance(v, str) for v in keypoints):
        return f"are not all finite numbers: {keypoints!r:.80}"
    return None


def keypoint_extent_areas(keypoints):
    """pycocotools' area of a keypoint *result*: ``(max x - min x) * (max y - min y)`` over all keypoints.

    Args:
        keypoints: float ``[D, P, 3]``.

    Returns:
        float64 ``[D]``.
    """
    k = np.asarray(keypoints, np.float64)
    if k.shape[0] == 0:
        return np.zeros((0,), np.float64)
    x, y = k[:, :, 0], k[:, :, 1]
    return (x.max(1) - x.min(1)) * (y.max(1) - y.min(1))


def oks_pairs(det_keypoints, gt_keypoints, gt_boxes, gt_areas, det_index, gt_index, sigmas=None):
    """OKS of pairs ``(det_keypoints[det_index[p]], gt_keypoints[gt_index[p]])``.

    Args:
        det_keypoints: float ``[D, P, 3]`` ``(x, y, v)`` (``v`` unused).
        gt_keypoints: float ``[G, P, 3]``; ``v > 0`` = labelled.
        gt_boxes: float ``[G, 4]`` ``[x, y, w, h]`` (used when a ground truth
            has no labelled keypoint).
        gt_areas: float ``[G]`` the ground truth's ``area`` field.
        det_index, gt_index: int ``[N]``.
        sigmas: ``[P]`` per-keypoint sigmas; default `COCO_PERSON_SIGMAS`.

    Returns:
        float64 ``[N]``.
    """
    sig = COCO_PERSON_SIGMAS if sigmas is None else np.asarray(sigmas, np.float64).reshape(-1)
    di = np.asarray(det_index, np.int64).reshape(-1)
    gi = np.asarray(gt_index, np.int64).reshape(-1)
    if di.size == 0:
        return np.zeros((0,), np.float64)
    d = np.asarray(det_keypoints, np.float64)[di]
    g = np.asarray(gt_keypoints, np.float64)[gi]
    if d.shape[1] != sig.shape[0] or g.shape[1] != sig.shape[0]:
        raise ValueError(
            f"keypoints have {d.shape[1]} (detections) / {g.shape[1]} (ground truth) points but there "
            f"are {sig.shape[0]} sigmas."
        )
    box = np.asarray(gt_boxes, np.float64).reshape(-1, 4)[gi]
    area = np.asarray(gt_areas, np.float64).reshape(-1)[gi]
    vis = g[:, :, 2] > 0
    n_vis = vis.sum(1)
    labelled = (n_vis > 0)[:, None]
    xd, yd = d[:, :, 0], d[:, :, 1]
    x0, x1 = (box[:, 0] - box[:, 2])[:, None], (box[:, 0] + box[:, 2] * 2)[:, None]
    y0, y1 = (box[:, 1] - box[:, 3])[:, None], (box[:, 1] + box[:, 3] * 2)[:, None]
    dx = np.where(labelled, xd - g[:, :, 0], np.maximum(0.0, x0 - xd) + np.maximum(0.0, xd - x1))
    dy = np.where(labelled, yd - g[:, :, 1], np.maximum(0.0, y0 - yd) + np.maximum(0.0, yd - y1))
    variances = (sig * 2) ** 2
    e = (dx**2 + dy**2) / variances / (area[:, None] + np.spacing(1)) / 2
    value = np.exp(-e)
    out = np.empty(di.shape, np.float64)
    used = np.where(labelled, vis, True)
    n_used = np.where(n_vis > 0, n_vis, sig.shape[0])
    # Sum exactly as a 1-D np.sum of the used values: group pairs by how many are used.
    for n in np.unique(n_used).tolist():
        rows = np.flatnonzero(n_used == n)
        picked = value[rows][used[rows]].reshape(rows.shape[0], n)
        out[rows] = np.sum(picked, axis=1) / n
    return out
