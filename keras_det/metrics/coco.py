"""Exact COCO evaluation in vectorised NumPy: the evaluator and its entry points.

The numbers returned here are those of pycocotools'
``COCOeval(gt, dt, iou_type)`` (``"bbox"``, ``"segm"`` or ``"keypoints"``)
followed by ``evaluate()``, ``accumulate()`` and ``summarize()``
(``stats``), reproduced operation by operation so that they
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
  `load_coco_results` and their checks (`check_result`).
* `keras_det.metrics.masks` (RLE, polygons, mask IoU) and
  `keras_det.metrics.keypoints` (OKS) — the similarities of ``segm`` and
  ``keypoints`` evaluation (``iou_type``), with the same matching and
  accumulation as boxes.
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
    KEYPOINT_AREA_LABELS,
    KEYPOINT_AREA_RANGES,
    KEYPOINT_MAX_DETECTIONS,
    KEYPOINT_STAT_NAMES,
    MAX_DETECTIONS,
    RECALL_THRESHOLDS,
    STAT_NAMES,
    EvalParams,
    MatchRecord,
    accumulate,
    box_iou_xywh,
    empty_record,
    eval_params,
    match_image,
    match_images,
    merge_records,
)

__all__ = [
    "AREA_LABELS", "AREA_RANGES", "IOU_THRESHOLDS", "MAX_DETECTIONS", "RECALL_THRESHOLDS",
    "STAT_NAMES", "KEYPOINT_AREA_LABELS", "KEYPOINT_AREA_RANGES", "KEYPOINT_MAX_DETECTIONS",
    "KEYPOINT_STAT_NAMES", "EvalParams", "eval_params", "MatchRecord", "accumulate",
    "box_iou_xywh", "empty_record", "match_image", "match_images", "merge_records", "load_coco_ground_truth", "load_coco_results", "evaluate_coco",
    "evaluate_arrays", "summarize", "per_category_ap", "stats_to_dict", "COCOEvaluator",
]


def summarize(accumulated):
    """The COCO summary numbers (``COCOeval.summarize``), no printing.

    Args:
        accumulated: the dict returned by :func:`accumulate` (its
            ``iou_type``, default ``"bbox"``, decides the layout).

    Returns:
        float64 ``[12]`` in the order of ``STAT_NAMES`` (bbox, segm), or
        ``[10]`` in the order of ``KEYPOINT_STAT_NAMES`` (keypoints).
    """
    params = eval_params(accumulated.get("iou_type", "bbox"))
    precision, recall = accumulated["precision"], accumulated["recall"]

    def _one(ap, iou_thr=None, area="all", max_dets=100):
        aind = [i for i, label in enumerate(params.area_labels) if label == area]
        mind = [i for i, m in enumerate(params.max_detections) if m == max_dets]
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

    m = params.max_detections
    if params.iou_type == "keypoints":
        rows = [(ap, thr, area, m[-1]) for ap in (1, 0)
                for thr, area in ((None, "all"), (0.5, "all"), (0.75, "all"), (None, "medium"), (None, "large"))]
    else:
        rows = [(1, None, "all", m[2]), (1, 0.5, "all", m[2]), (1, 0.75, "all", m[2]),
                (1, None, "small", m[2]), (1, None, "medium", m[2]), (1, None, "large", m[2]),
                (0, None, "all", m[0]), (0, None, "all", m[1]), (0, None, "all", m[2]),
                (0, None, "small", m[2]), (0, None, "medium", m[2]), (0, None, "large", m[2])]
    return np.array([_one(ap, thr, area, md) for ap, thr, area, md in rows], dtype=np.float64)


def per_category_ap(accumulated, iou_threshold=None):
    """AP per category (all areas, the largest ``maxDets``), as pycocotools' tables.

    Args:
        accumulated: the dict returned by :func:`accumulate`.
        iou_threshold: one of the IoU thresholds (e.g. 0.5) or None for the
            mean over 0.50:0.95.

    Returns:
        ``{category_id: AP}`` for categories with ground truth.
    """
    params = eval_params(accumulated.get("iou_type", "bbox"))
    s = accumulated["precision"][:, :, :, params.area_labels.index("all"), len(params.max_detections) - 1]
    if iou_threshold is not None:
        s = s[np.where(iou_threshold == IOU_THRESHOLDS)[0]]
    out = {}
    for k, cat in enumerate(np.asarray(accumulated["category_ids"]).tolist()):
        v = s[:, :, k]
        v = v[v > -1]
        if v.size:
            out[cat] = float(np.mean(v))
    return out


def stats_to_dict(stats, iou_type=None):
    """``{"AP": ..., ..., "ARl": ...}`` from the summarize numbers.

    Args:
        stats: the 12 (bbox, segm) or 10 (keypoints) numbers of `summarize`.
        iou_type: names the numbers; default: by their count.
    """
    if iou_type is None:
        iou_type = "keypoints" if len(stats) == len(KEYPOINT_STAT_NAMES) else "bbox"
    return {name: float(v) for name, v in zip(eval_params(iou_type).stat_names, stats)}


def evaluate_coco(gt_json_path, results_json_path, iou_type="bbox", sigmas=None):
    """COCO mAP of a results file, identical to pycocotools' ``stats``.

    Args:
        gt_json_path: COCO instances JSON (``images``, ``annotations``,
            ``categories``), or the loaded dict.
        results_json_path: COCO results JSON, a list of
            ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
            (``"segmentation"`` for segm, ``"keypoints"`` for keypoints), or
            the loaded list. An empty list is allowed (pycocotools fails on
            it); it scores 0 for every category with ground truth.
        iou_type: ``"bbox"`` (default), ``"segm"`` (mask IoU) or
            ``"keypoints"`` (OKS), as ``COCOeval``'s ``iouType``.
        sigmas: keypoints only: ``[P]`` per-keypoint sigmas (default COCO's
            17 person sigmas, ``Params.kpt_oks_sigmas``).

    Returns:
        dict ``AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm,
        ARl`` → float (``-1.0`` where undefined, as pycocotools); keypoints:
        ``AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl``.

    Raises:
        ValueError: naming the file and entry for bad input (see
            :func:`load_coco_ground_truth`, :func:`load_coco_results`).
    """
    gt = load_coco_ground_truth(gt_json_path, iou_type=iou_type)
    gt_name = gt_json_path if isinstance(gt_json_path, (str, os.PathLike)) else "the ground truth"
    dt = load_coco_results(results_json_path, gt, ground_truth_path=os.fspath(gt_name), iou_type=iou_type)
    return stats_to_dict(summarize(evaluate_arrays(gt, dt, iou_type, sigmas=sigmas)), iou_type)


def evaluate_arrays(gt, dt, iou_type=None, sigmas=None):
    """Matches and accumulates loaded ground truth / results.

    Args:
        gt: output of :func:`load_coco_ground_truth`, or a dict of the same
            arrays (``image_ids``, ``category_ids``, ``image_id``,
            ``category_id``, ``bbox``; optional ``area``, ``iscrowd``, ``id``;
            segm: ``segmentation`` as a `keras_det.metrics.masks.MaskSet` or
            binary masks ``[G, H, W]``; keypoints: ``keypoints [G, P, 3]``
            and optional ``ignore``).
        dt: output of :func:`load_coco_results`, or a dict of the same arrays
            (``image_id``, ``category_id``, ``score``, ``bbox`` for boxes;
            ``segmentation`` masks ``[D, H, W]`` or ``keypoints [D, P, 3]``;
            optional ``area``).
        iou_type: ``"bbox"``, ``"segm"`` or ``"keypoints"``; default the
            ``iou_type`` of ``dt`` (else bbox).
        sigmas: keypoints: ``[P]`` sigmas (default COCO's person sigmas).

    Returns:
        The :func:`accumulate` dict (``category_ids`` are the file's ids).
    """
    iou_type = iou_type or dt.get("iou_type") or gt.get("iou_type") or "bbox"
    # Integer codes in sorted-id order keep pycocotools' tie-breaking and let
    # string ids work.
    img_ids, cat_ids = np.asarray(gt["image_ids"]), np.asarray(gt["category_ids"])
    kwargs = {}
    if iou_type == "segm":
        kwargs = dict(gt_masks=gt["segmentation"], det_masks=dt["segmentation"])
    elif iou_type == "keypoints":
        kwargs = dict(gt_keypoints=gt["keypoints"], det_keypoints=dt["keypoints"], sigmas=sigmas,
                      gt_ignore=gt.get("ignore"))
    ids = gt.get("id")
    record = match_images(
        np.searchsorted(img_ids, gt["image_id"]),
        np.searchsorted(cat_ids, gt["category_id"]),
        gt.get("bbox"),
        np.searchsorted(img_ids, dt["image_id"]),
        np.searchsorted(cat_ids, dt["category_id"]),
        dt.get("bbox"),
        dt["score"],
        gt_areas=gt.get("area"),
        gt_iscrowd=gt.get("iscrowd"),
        gt_ids=ids if ids is not None and len(ids) else None,
        image_ids=np.arange(len(img_ids)),
        iou_type=iou_type,
        det_areas=dt.get("area"),
        **kwargs,
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
    """Accumulates batches and reports the COCO numbers (boxes, masks or keypoints).

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
        iou_type: ``"bbox"`` (default), ``"segm"`` (``masks`` in ``y_true``
            and ``y_pred``: image-sized ``[B, M, H, W]`` / ``[B, K, H, W]``,
            values > 0.5 are foreground) or ``"keypoints"`` (``keypoints``
            ``[B, M, P, 3]`` ``(x, y, v)`` absolute pixels in ``y_true``,
            ``[B, K, P, 3]`` or ``[B, K, P, 2]`` in ``y_pred``; ``y_true``
            boxes are still needed, see `keras_det.metrics.keypoints`).
        sigmas: keypoints: ``[P]`` per-keypoint sigmas (default COCO's 17
            person sigmas).

    Example:
        >>> ev = COCOEvaluator(bounding_box_format="xyxy")
        >>> ev.update_state(batch["bounding_boxes"], model.predict_on_batch(batch["images"]))
        >>> ev.result()["AP"]
    """

    def __init__(self, bounding_box_format="yxyx", image_shape=None, category_ids=None,
                 iou_type="bbox", sigmas=None):
        from keras_det.ops.boxes import check_format

        self.iou_type = eval_params(iou_type).iou_type
        self.sigmas = sigmas
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
                (default: box area; the mask area for segm), ``"masks"`` /
                ``"keypoints"`` for segm / keypoints. A whole batch element
                ``{"images", "bounding_boxes": {...}}`` is also accepted
                (masks / keypoints inside ``bounding_boxes`` or beside it).
            y_pred: ``{"boxes": [B, K, 4], "scores": [B, K], "labels": [B, K]
                (-1 = padding), "num_detections": [B]}`` (``num_detections``
                optional). Boxes in ``bounding_box_format`` (optional for
                segm / keypoints); ``"masks"`` / ``"keypoints"`` as above.
            sample_weight: unused (Keras signature).
        """
        del sample_weight
        if "bounding_boxes" in y_true:
            outer = y_true
            y_true = dict(y_true["bounding_boxes"])
            for key in ("masks", "keypoints"):
                if key in outer and key not in y_true:
                    y_true[key] = outer[key]
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

        det_labels = _to_numpy(y_pred["labels"]).astype(np.int64)
        det_scores = _to_numpy(y_pred["scores"]).astype(np.float64)
        single = det_labels.ndim == 1
        if single:
            det_labels, det_scores = det_labels[None], det_scores[None]
        k = det_labels.shape[1]
        if "boxes" in y_pred or self.iou_type == "bbox":
            det_boxes = self._to_xywh(y_pred["boxes"]).reshape(det_labels.shape[0], k, 4)
        else:
            det_boxes = np.zeros((det_labels.shape[0], k, 4))
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
        if self.iou_type == "segm":
            gm, dm = _to_numpy(y_true["masks"]), _to_numpy(y_pred["masks"])
            if single:
                dm = dm[None]
            gm = gm.reshape((b, m) + gm.shape[-2:])
            dm = dm.reshape((b, k) + dm.shape[-2:])
            kwargs["gt_masks"] = gm[gt_valid] > 0.5
            kwargs["det_masks"] = dm[det_valid] > 0.5
        elif self.iou_type == "keypoints":
            gk, dk = _to_numpy(y_true["keypoints"]).astype(np.float64), _to_numpy(y_pred["keypoints"])
            dk = dk.astype(np.float64)
            if single:
                dk = dk[None]
            gk = gk.reshape(b, m, -1, 3)
            dk = dk.reshape((b, k) + dk.shape[-2:])
            if dk.shape[-1] == 2:
                dk = np.concatenate([dk, np.ones(dk.shape[:-1] + (1,))], axis=-1)
            kwargs.update(gt_keypoints=gk[gt_valid], det_keypoints=dk[det_valid], sigmas=self.sigmas)
        record = match_images(
            gt_img[gt_valid] + offset,
            gt_labels[gt_valid],
            gt_boxes[gt_valid],
            det_img[det_valid] + offset,
            det_labels[det_valid],
            det_boxes[det_valid],
            det_scores[det_valid],
            image_ids=np.arange(b) + offset,
            iou_type=self.iou_type,
            **kwargs,
        )
        self._records.append(record)
        self._next_image_id += b

    def accumulate(self):
        """The :func:`accumulate` dict (precision/recall tables) so far."""
        records = self._records or [empty_record(self.iou_type)]
        return accumulate(records, category_ids=self.category_ids)

    def per_class_ap(self, iou_threshold=None):
        """``{label: AP}`` for labels with ground truth (see :func:`per_category_ap`)."""
        return per_category_ap(self.accumulate(), iou_threshold)

    def result(self):
        """dict ``AP, AP50, ..., ARl`` → float (``-1.0`` with no ground truth)."""
        acc = self.accumulate()
        acc["iou_type"] = self.iou_type
        return stats_to_dict(summarize(acc), self.iou_type)
