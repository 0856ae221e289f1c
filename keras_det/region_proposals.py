"""Class-agnostic region proposals for R-CNN and Fast R-CNN.

One function, `propose`, hides the methods behind a common output: a
float32 array ``[P, 4]`` of absolute ``yxyx`` boxes
(``[ymin, xmin, ymax, xmax]`` in pixels of the given image), best first,
clipped to the image, without exact duplicates, at most ``max_proposals``
rows.

Methods:

* ``"selective_search_fast"`` / ``"selective_search_quality"`` — Uijlings
  et al.'s selective search (OpenCV contrib,
  ``cv2.ximgproc.segmentation.createSelectiveSearchSegmentation``) in its
  *fast* (R-CNN's choice, ~2k boxes per image) or *quality* mode (slower,
  more boxes, higher recall). Boxes are in OpenCV's order (hierarchy rank,
  randomised), which is also the order in which the cap keeps them.
* ``"edge_boxes"`` — Zitnick & Dollár's EdgeBoxes on structured-forest
  edges (``cv2.ximgproc.createStructuredEdgeDetection(edge_model)`` +
  ``createEdgeBoxes``); needs the forest model file (OpenCV's
  ``model.yml.gz``), given as ``edge_model``. Boxes come ranked by
  objectness score.
* ``"sliding_window"`` — the dense baseline: square and elongated windows at
  several scales; the proposal budget is split evenly across (scale, aspect)
  pairs and the stride at each pair is chosen to fit its share (but never
  finer than a quarter window).

Speed: selective search runs on the image resized so that its long side is
at most ``max_side`` (500 px by default, the usual R-CNN setting), and the
boxes are scaled back. Threads: OpenCV's ``cv2.setNumThreads`` is a process
global; ``num_threads=None`` leaves it alone. When many images are processed
by parallel workers (the Beam pipeline, one worker per core) pass
``num_threads=1`` (the pipeline does) so that workers do not oversubscribe
the cores; a single interactive call gains little from more threads because
selective search's grouping is sequential.
"""

import functools
import os

import cv2
import numpy as np

METHODS = ("selective_search_fast", "selective_search_quality", "edge_boxes", "sliding_window")

DEFAULT_MAX_SIDE = 500


def _check_image(image):
    """uint8 ``[H, W, 3]`` RGB from an array-like, or a ValueError."""
    if image is None:
        raise ValueError("`image` is None; expected an [H, W, 3] RGB array.")
    try:
        image = np.asarray(image)
    except Exception as error:  # e.g. a tf.Tensor in graph mode
        raise ValueError(f"`image` cannot be converted to an array: {error}") from error
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"`image` must be an [H, W, 3] RGB array, got shape {tuple(image.shape)}.")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"`image` is empty (shape {tuple(image.shape)}).")
    if image.dtype != np.uint8:
        if not (np.issubdtype(image.dtype, np.floating) or np.issubdtype(image.dtype, np.integer)):
            raise ValueError(f"`image` must be numeric (uint8 or float in 0..255), got dtype {image.dtype}.")
        image = image.astype(np.float64)
        if not np.all(np.isfinite(image)):
            raise ValueError("`image` contains NaN or inf.")
        image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def _selective_search(image, quality, max_side, seed):
    h, w = image.shape[:2]
    scale = min(1.0, float(max_side) / max(h, w)) if max_side else 1.0
    work = image
    if scale < 1.0:
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(work[:, :, ::-1]))  # OpenCV wants BGR
    if quality:
        ss.switchToSelectiveSearchQuality()
    else:
        ss.switchToSelectiveSearchFast()
    if seed is not None:
        _seed_c_rand(int(seed))
    rects = np.asarray(ss.process(), np.float32).reshape(-1, 4)  # x, y, w, h in `work`
    sy = h / work.shape[0]
    sx = w / work.shape[1]
    x, y, bw, bh = rects.T
    return np.stack([y * sy, x * sx, (y + bh) * sy, (x + bw) * sx], axis=-1)


@functools.lru_cache(maxsize=1)
def _c_library():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(None)
    except OSError:  # Windows: the C runtime by name
        return ctypes.CDLL(ctypes.util.find_library("c") or "msvcrt")


def _seed_c_rand(seed):
    """Seeds C's ``rand()``, which OpenCV's selective search uses to rank regions."""
    try:
        _c_library().srand(_c_uint(seed))
    except (OSError, AttributeError):  # no C library reachable: stay unseeded
        pass


def _c_uint(value):
    import ctypes

    return ctypes.c_uint(value & 0xFFFFFFFF)


@functools.lru_cache(maxsize=4)
def _edge_detector(path):
    return cv2.ximgproc.createStructuredEdgeDetection(path)


def _edge_boxes(image, edge_model, max_proposals):
    if edge_model is None:
        raise ValueError(
            "method='edge_boxes' needs `edge_model`: the path of a structured-edge forest model "
            "(OpenCV's model.yml.gz from opencv_extra/testdata/cv/ximgproc)."
        )
    path = os.fspath(edge_model)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"EdgeBoxes structured-edge model file {path!r} does not exist "
            "(download model.yml.gz from opencv_extra/testdata/cv/ximgproc and pass its path)."
        )
    detector = _edge_detector(path)
    rgb = image.astype(np.float32) / 255.0
    edges = detector.detectEdges(rgb)
    orientation = detector.computeOrientation(edges)
    edges = detector.edgesNms(edges, orientation)
    boxer = cv2.ximgproc.createEdgeBoxes()
    boxer.setMaxBoxes(int(max_proposals))
    result = boxer.getBoundingBoxes(edges, orientation)
    rects = result[0] if isinstance(result, tuple) else result
    rects = np.asarray(rects, np.float32).reshape(-1, 4)
    x, y, bw, bh = rects.T
    return np.stack([y, x, y + bh, x + bw], axis=-1)


def sliding_windows(image_shape, max_proposals=2000, scales=(0.1, 0.2, 0.35, 0.5, 0.75, 1.0), aspect_ratios=(0.5, 1.0, 2.0)):
    """Dense sliding windows (the baseline method), absolute ``yxyx``.

    Args:
        image_shape: ``(H, W[, C])``.
        max_proposals: total budget, split evenly over the (scale, ratio) pairs.
        scales: window side ``sqrt(h * w)`` as a fraction of ``min(H, W)``.
        aspect_ratios: ``h / w`` of the windows.

    Returns:
        float32 ``[P, 4]``, coarse scales first; windows are clipped later by
        `propose`.
    """
    height, width = float(image_shape[0]), float(image_shape[1])
    pairs = [(s, r) for s in scales for r in aspect_ratios]
    share = max(1, int(max_proposals) // len(pairs))
    out = []
    for scale, ratio in sorted(pairs, key=lambda p: -p[0]):
        side = scale * min(height, width)
        wh = side / np.sqrt(ratio)
        hh = side * np.sqrt(ratio)
        hh, wh = min(hh, height), min(wh, width)
        span_y, span_x = height - hh, width - wh
        # The grid that fits the share (never denser than 1/4 window).
        stride = max(0.25 * min(hh, wh), np.sqrt(max(span_y * span_x, 1.0) / share))
        ny = int(np.floor(span_y / stride)) + 1
        nx = int(np.floor(span_x / stride)) + 1
        while ny * nx > share and (ny > 1 or nx > 1):
            if ny >= nx:
                ny -= 1
            else:
                nx -= 1
        ys = np.linspace(0.0, span_y, ny) if ny > 1 else np.array([span_y / 2])
        xs = np.linspace(0.0, span_x, nx) if nx > 1 else np.array([span_x / 2])
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        yy, xx = yy.ravel(), xx.ravel()
        out.append(np.stack([yy, xx, yy + hh, xx + wh], axis=-1))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 4), np.float32)


def deduplicate(boxes, iou_threshold=None):
    """Drops duplicate boxes, keeping the first (best-ranked) of each group.

    Args:
        boxes: float ``[N, 4]`` absolute ``yxyx``, in rank order.
        iou_threshold: ``None`` drops exact duplicates only; a number in
            (0, 1] also drops near-duplicates, i.e. boxes whose IoU with a
            better-ranked kept box is above it (greedy NMS on the rank order,
            `keras_det.ops.nms.non_max_suppression`).

    Returns:
        float32 ``[M, 4]``, order preserved.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return boxes
    _, first = np.unique(boxes, axis=0, return_index=True)
    boxes = boxes[np.sort(first)]
    if iou_threshold is not None and len(boxes) > 1:
        from keras_det.ops.nms import non_max_suppression

        rank_scores = np.arange(len(boxes), 0, -1, dtype=np.float32)
        keep = np.asarray(non_max_suppression(boxes, rank_scores, float(iou_threshold), len(boxes)))
        boxes = boxes[np.sort(keep)]
    return boxes


def propose(
    image,
    method="selective_search_fast",
    max_proposals=2000,
    min_size=8,
    edge_model=None,
    max_side=DEFAULT_MAX_SIDE,
    dedup_iou=None,
    num_threads=None,
    seed=0,
):
    """Region proposals for one image.

    Args:
        image: ``[H, W, 3]`` RGB, uint8 or float in 0..255 (a NumPy array or
            anything ``np.asarray`` accepts, e.g. an eager tensor).
        method: one of `METHODS`.
        max_proposals: cap on the returned rows (the best-ranked are kept).
        min_size: boxes whose height or width (after clipping, in pixels of
            ``image``) is below this are dropped.
        edge_model: path of the structured-edge forest model, for
            ``"edge_boxes"`` only.
        max_side: selective search runs on the image downscaled so that its
            long side is at most this (``None``: full resolution).
        dedup_iou: also drop near-duplicates above this IoU (see
            `deduplicate`); ``None`` drops exact duplicates only.
        num_threads: if given, ``cv2.setNumThreads(num_threads)`` first
            (process-wide; 1 in parallel workers).
        seed: OpenCV's selective search ranks its regions with a random
            factor drawn from C's ``rand()``; ``srand(seed)`` before the
            search makes the output reproducible (process-global C RNG;
            ``None`` leaves it alone).

    Returns:
        float32 ``[P, 4]`` absolute ``yxyx`` boxes, ``P <= max_proposals``,
        best first.

    Raises:
        ValueError: an image that is not ``[H, W, 3]`` or is empty, an
            unknown method, a bad cap, or ``edge_boxes`` without a model.
        FileNotFoundError: ``edge_model`` names a missing file.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown proposal method {method!r}; expected one of {', '.join(METHODS)}.")
    if int(max_proposals) < 1:
        raise ValueError(f"`max_proposals` must be >= 1, got {max_proposals}.")
    image = _check_image(image)
    if num_threads is not None:
        cv2.setNumThreads(int(num_threads))
    height, width = image.shape[:2]
    if method.startswith("selective_search"):
        boxes = _selective_search(image, method.endswith("quality"), max_side, seed)
    elif method == "edge_boxes":
        boxes = _edge_boxes(image, edge_model, max_proposals)
    else:
        boxes = sliding_windows(image.shape, max_proposals)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    boxes = np.clip(boxes, 0.0, np.array([height, width, height, width], np.float32))
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    boxes = deduplicate(boxes[keep], dedup_iou)
    return np.ascontiguousarray(boxes[: int(max_proposals)], np.float32)


def recall(proposals, gt_boxes, iou_thresholds=(0.5, 0.7)):
    """Proposal recall: the fraction of GT boxes covered by some proposal.

    Args:
        proposals: ``[P, 4]`` absolute ``yxyx`` (one image), or a list of them.
        gt_boxes: ``[N, 4]`` absolute ``yxyx`` (same structure as ``proposals``).
        iou_thresholds: IoU levels.

    Returns:
        dict ``{threshold: recall}`` plus ``"num_gt"``; a GT box counts at
        level ``t`` when its best IoU with a proposal is ``>= t``.
    """
    from keras_det.ops.boxes import iou

    if isinstance(proposals, np.ndarray) or not isinstance(proposals, (list, tuple)):
        proposals, gt_boxes = [proposals], [gt_boxes]
    best = []
    for props, gts in zip(proposals, gt_boxes):
        gts = np.asarray(gts, np.float32).reshape(-1, 4)
        props = np.asarray(props, np.float32).reshape(-1, 4)
        if len(gts) == 0:
            continue
        if len(props) == 0:
            best.append(np.zeros(len(gts), np.float32))
            continue
        best.append(np.asarray(iou(gts, props)).max(axis=1))
    best = np.concatenate(best) if best else np.zeros(0, np.float32)
    out = {float(t): float(np.mean(best >= t)) if len(best) else float("nan") for t in iou_thresholds}
    out["num_gt"] = int(len(best))
    return out
