"""Exact COCO evaluation in vectorised NumPy: the evaluator and its entry points.

The twelve numbers returned here are those of pycocotools'
``COCOeval(gt, dt, "bbox")`` followed by ``evaluate()``, ``accumulate()`` and
``summarize()`` (``stats``), reproduced operation by operation so that they
agree to floating-point round-off (tests check 1e-9; in practice they are
bit-identical). pycocotools is not imported here.

The code lives in three modules, all re-exported here so that
``keras_det.metrics.coco.<name>`` keeps working for every public name:

* `keras_det.metrics.coco_matching` — the numeric core: `match_images` /
  `match_image` (``COCOeval.evaluateImg``), `MatchRecord`, `merge_records`,
  `accumulate` (``COCOeval.accumulate``), `box_iou_xywh` and the parameters
  (``IOU_THRESHOLDS``, ``RECALL_THRESHOLDS``, ``MAX_DETECTIONS``,
  ``AREA_RANGES``, ``AREA_LABELS``, ``STAT_NAMES``); its docstring lists the
  pycocotools semantics reproduced.
* `keras_det.metrics.coco_io` — `load_coco_ground_truth`,
  `load_coco_results` and their checks.
* this module — `evaluate_coco` (files), `evaluate_arrays` (loaded arrays),
  `summarize`, `per_category_ap`, `stats_to_dict` and `COCOEvaluator`
  (Keras-metric-like, on batches).
"""

import os

import numpy as np

from keras_det.metrics.coco_io import load_coco_ground_truth, load_coco_results
from keras_det.metrics.coco_matching import (
    AREA_LABELS,
    AREA_RANGES,
    IOU_THRESHOLDS,
    MAX_DETECTIONS,
    RECALL_THRESHOLDS,
    STAT_NAMES,
    MatchRecord,
    accumulate,
    box_iou_xywh,
    match_image,
    match_images,
    merge_records,
)

__all__ = [
    "AREA_LABELS", "AREA_RANGES", "IOU_THRESHOLDS", "MAX_DETECTIONS", "RECALL_THRESHOLDS",
    "STAT_NAMES", "MatchRecord", "accumulate", "box_iou_xywh", "match_image", "match_images",
    "merge_records", "load_coco_ground_truth", "load_coco_results", "evaluate_coco",
    "evaluate_arrays", "summarize", "per_category_ap", "stats_to_dict", "COCOEvaluator",
]


def summarize(accumulated):
    """The 12 COCO numbers (``COCOeval.summarize`` for boxes), no printing.

    Args:
        accumulated: the dict returned by :func:`accumulate`.

    Returns:
        float64 ``[12]`` in the order of ``STAT_NAMES``.
    """
    precision, recall = accumulated["precision"], accumulated["recall"]

    def _one(ap, iou_thr=None, area="all", max_dets=100):
        aind = [i for i, label in enumerate(AREA_LABELS) if label == area]
        mind = [i for i, m in enumerate(MAX_DETECTIONS) if m == max_dets]
        if ap:
            s = precision
            if iou_thr is not None:
                s = s[np.where(iou_thr == IOU_THRESHOLDS)[0]]
            s = s[:, :, :, aind, mind]
        else:
            s = recall
            if iou_thr is not None:
                s = s[np.where(iou_thr == IOU_THRESHOLDS)[0]]
            s = s[:, :, aind, mind]
        valid = s[s > -1]
        return -1.0 if valid.size == 0 else float(np.mean(valid))

    m = MAX_DETECTIONS
    return np.array(
        [
            _one(1),
            _one(1, iou_thr=0.5, max_dets=m[2]),
            _one(1, iou_thr=0.75, max_dets=m[2]),
            _one(1, area="small", max_dets=m[2]),
            _one(1, area="medium", max_dets=m[2]),
            _one(1, area="large", max_dets=m[2]),
            _one(0, max_dets=m[0]),
            _one(0, max_dets=m[1]),
            _one(0, max_dets=m[2]),
            _one(0, area="small", max_dets=m[2]),
            _one(0, area="medium", max_dets=m[2]),
            _one(0, area="large", max_dets=m[2]),
        ],
        dtype=np.float64,
    )


def per_category_ap(accumulated, iou_threshold=None):
    """AP per category (all areas, 100 detections), as pycocotools' tables.

    Args:
        accumulated: the dict returned by :func:`accumulate`.
        iou_threshold: one of the IoU thresholds (e.g. 0.5) or None for the
            mean over 0.50:0.95.

    Returns:
        ``{category_id: AP}`` for categories with ground truth.
    """
    s = accumulated["precision"][:, :, :, AREA_LABELS.index("all"), MAX_DETECTIONS.index(100)]
    if iou_threshold is not None:
        s = s[np.where(iou_threshold == IOU_THRESHOLDS)[0]]
    out = {}
    for k, cat in enumerate(np.asarray(accumulated["category_ids"]).tolist()):
        v = s[:, :, k]
        v = v[v > -1]
        if v.size:
            out[cat] = float(np.mean(v))
    return out


def stats_to_dict(stats):
    """``{"AP": ..., ..., "ARl": ...}`` from the 12 summarize numbers."""
    return {name: float(v) for name, v in zip(STAT_NAMES, stats)}


def evaluate_coco(gt_json_path, results_json_path):
    """COCO box mAP of a results file, identical to pycocotools' ``stats``.

    Args:
        gt_json_path: COCO instances JSON (``images``, ``annotations``,
            ``categories``), or the loaded dict.
        results_json_path: COCO results JSON, a list of
            ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``,
            or the loaded list. An empty list is allowed (pycocotools fails
            on it); it scores 0 for every category with ground truth.

    Returns:
        dict ``AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm,
        ARl`` → float (``-1.0`` where undefined, as pycocotools).

    Raises:
        ValueError: naming the file and entry for bad input (see
            :func:`load_coco_ground_truth`, :func:`load_coco_results`).
    """
    gt = load_coco_ground_truth(gt_json_path)
    gt_name = gt_json_path if isinstance(gt_json_path, (str, os.PathLike)) else "the ground truth"
    dt = load_coco_results(results_json_path, gt, ground_truth_path=os.fspath(gt_name))
    return stats_to_dict(summarize(evaluate_arrays(gt, dt)))


def evaluate_arrays(gt, dt):
    """Matches and accumulates loaded ground truth / results.

    Args:
        gt: output of :func:`load_coco_ground_truth`.
        dt: output of :func:`load_coco_results`.

    Returns:
        The :func:`accumulate` dict (``category_ids`` are the file's ids).
    """
    # Integer codes in sorted-id order keep pycocotools' tie-breaking and let
    # string ids work.
    img_ids, cat_ids = gt["image_ids"], gt["category_ids"]
    record = match_images(
        np.searchsorted(img_ids, gt["image_id"]),
        np.searchsorted(cat_ids, gt["category_id"]),
        gt["bbox"],
        np.searchsorted(img_ids, dt["image_id"]),
        np.searchsorted(cat_ids, dt["category_id"]),
        dt["bbox"],
        dt["score"],
        gt_areas=gt["area"],
        gt_iscrowd=gt["iscrowd"],
        gt_ids=gt["id"] if len(gt["id"]) else None,
        image_ids=np.arange(len(img_ids)),
    )
    acc = accumulate(record, category_ids=np.arange(len(cat_ids)))
    acc["category_ids"] = cat_ids
    return acc


# --------------------------------------------------------------------------
# Keras-metric-like evaluator.


def _to_numpy(x):
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x)


class COCOEvaluator:
    """Accumulates batches and reports the 12 COCO box numbers.

    Follows the Keras metric protocol (``update_state`` / ``result`` /
    ``reset_state``) but keeps NumPy state; matching runs in
    ``update_state`` (so state is the small :class:`MatchRecord` s, not the
    boxes). Each image in a batch gets the next integer image id; class
    labels are used as category ids.

    Args:
        bounding_box_format: format of ``y_true["boxes"]`` and
            ``y_pred["boxes"]`` (Keras names). Converted to ``xywh`` with
            ``keras_det.ops.boxes.convert_format`` (float32); ``"xywh"``
            input is used as given, in float64.
        image_shape: ``(height, width)``, needed only for ``rel_`` formats.
        category_ids: optional list of class labels to evaluate (the K axis);
            default: every label seen.

    Example:
        >>> ev = COCOEvaluator(bounding_box_format="xyxy")
        >>> ev.update_state(batch["bounding_boxes"], model.predict_on_batch(batch["images"]))
        >>> ev.result()["AP"]
    """

    def __init__(self, bounding_box_format="yxyx", image_shape=None, category_ids=None):
        from keras_det.ops.boxes import check_format

        self.bounding_box_format = check_format(bounding_box_format)
        self.image_shape = image_shape
        self.category_ids = None if category_ids is None else list(category_ids)
        self.reset_state()

    def reset_state(self):
        """Forgets every image seen."""
        self._records = []
        self._next_image_id = 0

    @property
    def records(self):
        """The :class:`MatchRecord` s collected so far (one per batch)."""
        return list(self._records)

    def _to_xywh(self, boxes):
        boxes = _to_numpy(boxes)
        if self.bounding_box_format == "xywh":
            return boxes.astype(np.float64)
        from keras_det.ops.boxes import convert_format

        out = convert_format(boxes, self.bounding_box_format, "xywh", image_shape=self.image_shape)
        return np.asarray(out).astype(np.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds a batch.

        Args:
            y_true: ``{"boxes": [B, M, 4], "labels": [B, M]}`` (``-1`` =
                padding), optional ``"iscrowd" [B, M]`` and ``"area" [B, M]``
                (default: box area). A whole batch element
                ``{"images", "bounding_boxes": {...}}`` is also accepted.
            y_pred: ``{"boxes": [B, K, 4], "scores": [B, K], "labels": [B, K]
                (-1 = padding), "num_detections": [B]}`` (``num_detections``
                optional). Boxes in ``bounding_box_format``.
            sample_weight: unused (Keras signature).
        """
        del sample_weight
        if "bounding_boxes" in y_true:
            y_true = y_true["bounding_boxes"]
        gt_boxes = self._to_xywh(y_true["boxes"])
        gt_labels = _to_numpy(y_true["labels"]).astype(np.int64)
        if gt_boxes.ndim == 2:  # a single image
            gt_boxes, gt_labels = gt_boxes[None], gt_labels[None]
        b, m = gt_labels.shape
        gt_boxes = gt_boxes.reshape(b, m, 4)
        gt_valid = gt_labels >= 0
        iscrowd = y_true.get("iscrowd") if hasattr(y_true, "get") else None
        area = y_true.get("area") if hasattr(y_true, "get") else None
        gt_img = np.broadcast_to(np.arange(b)[:, None], (b, m))

        det_boxes = self._to_xywh(y_pred["boxes"])
        det_labels = _to_numpy(y_pred["labels"]).astype(np.int64)
        det_scores = _to_numpy(y_pred["scores"]).astype(np.float64)
        if det_labels.ndim == 1:
            det_boxes, det_labels, det_scores = det_boxes[None], det_labels[None], det_scores[None]
        k = det_labels.shape[1]
        det_boxes = det_boxes.reshape(det_labels.shape[0], k, 4)
        if det_labels.shape[0] != b:
            raise ValueError(
                f"y_true has {b} images but y_pred has {det_labels.shape[0]}."
            )
        det_valid = det_labels >= 0
        if "num_detections" in y_pred:
            num = _to_numpy(y_pred["num_detections"]).reshape(-1)
            det_valid &= np.arange(k)[None, :] < num[:, None]
        det_img = np.broadcast_to(np.arange(b)[:, None], (b, k))

        offset = self._next_image_id
        kwargs = {}
        if iscrowd is not None:
            kwargs["gt_iscrowd"] = _to_numpy(iscrowd).reshape(b, m)[gt_valid]
        if area is not None:
            kwargs["gt_areas"] = _to_numpy(area).astype(np.float64).reshape(b, m)[gt_valid]
        record = match_images(
            gt_img[gt_valid] + offset,
            gt_labels[gt_valid],
            gt_boxes[gt_valid],
            det_img[det_valid] + offset,
            det_labels[det_valid],
            det_boxes[det_valid],
            det_scores[det_valid],
            image_ids=np.arange(b) + offset,
            **kwargs,
        )
        self._records.append(record)
        self._next_image_id += b

    def accumulate(self):
        """The :func:`accumulate` dict (precision/recall tables) so far."""
        return accumulate(self._records, category_ids=self.category_ids)

    def per_class_ap(self, iou_threshold=None):
        """``{label: AP}`` for labels with ground truth (see :func:`per_category_ap`)."""
        return per_category_ap(self.accumulate(), iou_threshold)

    def result(self):
        """dict ``AP, AP50, ..., ARl`` → float (``-1.0`` with no ground truth)."""
        return stats_to_dict(summarize(self.accumulate()))
