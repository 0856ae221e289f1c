"""COCO results files: writing detections, joining them to ground truth, scoring them.

Boxes by default; ``iou_type="segm"`` / ``"keypoints"`` score results that
carry a ``segmentation`` (RLE or polygons) / ``keypoints`` instead (see
`keras_det.metrics.coco`).

One format for detections everywhere (``keras-det predict``, ``keras-det
evaluate --model``, ``keras_det.beam.predict``): a COCO results list of::

    {"image_id": int, "category_id": int (1-based class = label + 1),
     "bbox": [x, y, w, h] (absolute pixels of the *original* image),
     "score": float, "file_name": str (path relative to the input root)}

which pycocotools' ``loadRes``, `keras_det.metrics.evaluate_coco` and
``keras_det.beam.evaluate`` read. `evaluate_results` joins such a list to a COCO
ground-truth dict (``keras_det.data.to_coco`` of a split) by ``file_name``
(else ``image_id``) and scores it with the exact pycocotools semantics of
`keras_det.metrics.coco`, adding the AP / AP50 of every class by name.

This module needs NumPy only (no TensorFlow): Beam workers import it.
"""

import re

import numpy as np

from keras_det.identity import normalize_file_name
from keras_det.metrics.coco_io import check_result

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
KEYPOINT_STAT_KEYS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def stat_keys(iou_type="bbox"):
    """The metric keys of an evaluation type: `STAT_KEYS` (bbox, segm) or `KEYPOINT_STAT_KEYS`."""
    return KEYPOINT_STAT_KEYS if iou_type == "keypoints" else STAT_KEYS


def to_pixels(boxes, height, width):
    """Normalized ``[ymin, xmin, ymax, xmax]`` → COCO ``[x, y, w, h]`` pixels of a ``height x width`` image.

    Args:
        boxes: float ``[n, 4]`` normalized ``yxyx`` (the exported models' ``detection_boxes``).
        height, width: the original image size in pixels.

    Returns:
        float64 ``[n, 4]`` absolute ``xywh``.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x, y = boxes[:, 1] * width, boxes[:, 0] * height
    return np.stack([x, y, boxes[:, 3] * width - x, boxes[:, 2] * height - y], axis=-1)


def convert_image_id(image_id, image_id_type="auto"):
    """``"auto"``: keep the record's id (an int for image files; an all-digit
    string becomes an int); ``"int"`` / ``"str"`` force."""
    if image_id_type == "str":
        return str(image_id)
    if image_id_type == "int":
        return int(image_id)
    if isinstance(image_id, (int, np.integer)):
        return int(image_id)
    text = str(image_id)
    return int(text) if text.isdigit() else image_id


def to_results(prediction, category_ids=None, image_id_type="auto", min_score=0.0):
    """One image's prediction → COCO result dicts (one per detection at ``score >= min_score``).

    Args:
        prediction: dict with ``image_id``, ``boxes`` ``[n, 4]`` (``xywh``
            pixels of the original image), ``scores [n]``, ``classes [n]``
            (1-based; rows with a class < 1 are padding and skipped) and an
            optional ``file_name``.
        category_ids: optional list: the category id of 1-based class ``c``
            is ``category_ids[c - 1]`` (default ``c``).
        image_id_type: see `convert_image_id`.
        min_score: detections scoring below it are left out.

    Returns:
        list of ``{"image_id", "category_id", "bbox", "score"[, "file_name"]}``.
    """
    image_id = convert_image_id(prediction["image_id"], image_id_type)
    out = []
    for box, score, cls in zip(prediction["boxes"], prediction["scores"], prediction["classes"]):
        if score < min_score or cls < 1:
            continue
        category = int(cls) if category_ids is None else category_ids[int(cls) - 1]
        result = {"image_id": image_id, "category_id": category, "bbox": [float(v) for v in box], "score": float(score)}
        if prediction.get("file_name"):
            result["file_name"] = prediction["file_name"]
        out.append(result)
    return out


def serving_results(outputs, index, height, width, image_id, file_name=None):
    """Image ``index`` of a SavedModel's outputs → its COCO results (every detection).

    Args:
        outputs: dict of NumPy arrays as ``serving_default`` / ``serving_tensor``
            return them: ``detection_boxes [B, K, 4]`` (normalized ``yxyx`` of
            the original image), ``detection_scores [B, K]``,
            ``detection_classes [B, K]`` (1-based), ``num_detections [B]``.
        index: the image's row.
        height, width: its original size in pixels.
        image_id, file_name: its identity (`keras_det.identity`).

    Returns:
        list of COCO result dicts (`to_results`), ``category_id`` = class.
    """
    n = int(outputs["num_detections"][index])
    prediction = {
        "image_id": image_id,
        "file_name": file_name,
        "boxes": to_pixels(outputs["detection_boxes"][index, :n], height, width),
        "scores": np.asarray(outputs["detection_scores"][index, :n], np.float64),
        "classes": np.asarray(outputs["detection_classes"][index, :n]).astype(np.int64),
    }
    return to_results(prediction)


def join_results(ground_truth, results, source="the results", iou_type="bbox"):
    """Keys each result by the ground-truth image it belongs to.

    A result whose ``file_name`` names an image of the ground truth takes that
    image's id (a COCO source keeps its own ids while predict numbers files by
    `keras_det.identity.file_image_id`); otherwise its ``image_id`` is used
    when it is an image of the ground truth. Results of other images or of
    unknown categories are left out *and counted*. Classes join by name the
    same way: a result's ``category_name`` (``keras-det predict`` writes the
    model's class names) that names a ground-truth category takes its id, so a
    model whose class order differs from the dataset's (a VOC folder's sorted
    names) is scored right, and a name the ground truth lacks is an unknown
    class; without a name (or with a placeholder ``class_<i>``) the
    ``category_id`` is used.

    Args:
        ground_truth: COCO ground-truth dict (``images`` with ``id`` and
            optional ``file_name``, ``categories``).
        results: list of COCO result dicts.
        source: name of the results for error messages (a path).
        iou_type: ``"bbox"``, ``"segm"`` or ``"keypoints"``: the field each
            entry must carry (``bbox`` / ``segmentation`` / ``keypoints``),
            see `keras_det.metrics.coco_io.check_result`.

    Returns:
        ``(kept, report)``: ``kept`` the results (``image_id`` set to the ground
        truth's id), ``report`` a dict ``{"outside_split": n,
        "unknown_category": n, "outside_examples": [up to 3 file names / ids]}``.

    Raises:
        ValueError: ``results`` is not a list, or an entry is malformed
            (naming ``source``, the entry index and the field).
    """
    if not isinstance(results, list):
        raise ValueError(f"{source}: a COCO results file must be a JSON list of detections, got {type(results).__name__}.")
    images = ground_truth.get("images") or []
    ids = {image["id"] for image in images}
    by_name, twice = {}, set()
    for image in images:
        name = image.get("file_name")
        if isinstance(name, str) and name:
            name = normalize_file_name(name)
            if name in by_name:
                twice.add(name)
            by_name[name] = image["id"]
    for name in twice:
        del by_name[name]
    categories = {c["id"] for c in ground_truth.get("categories") or []}
    category_of_name = {str(c["name"]): c["id"] for c in ground_truth.get("categories") or [] if "name" in c}
    kept, outside, unknown_category, examples = [], 0, 0, []
    for i, entry in enumerate(results):
        reason = check_result(entry, iou_type)
        if reason:
            raise ValueError(f"{source}: results entry {i} {reason}.")
        name = entry.get("file_name")
        image_id = by_name.get(normalize_file_name(name)) if isinstance(name, str) and name else None
        if image_id is None:
            image_id = entry["image_id"] if _hashable(entry["image_id"]) and entry["image_id"] in ids else None
        if image_id is None:
            outside += 1
            if len(examples) < 3:
                label = name if isinstance(name, str) and name else entry["image_id"]
                if label not in examples:
                    examples.append(label)
            continue
        category = entry["category_id"]
        named = entry.get("category_name")
        if category_of_name and isinstance(named, str) and not _PLACEHOLDER.fullmatch(named):
            # A real class name decides; one the ground truth does not have is an unknown class
            # (never silently the ground truth's class of the same number).
            category = category_of_name.get(named)
        if categories and category not in categories:
            unknown_category += 1
            continue
        kept.append({**entry, "image_id": image_id, "category_id": category})
    return kept, {"outside_split": outside, "unknown_category": unknown_category, "outside_examples": examples}


_PLACEHOLDER = re.compile(r"class_\d+")  # the default names of a model without class names


def _hashable(value):
    return isinstance(value, (int, str, float)) and not isinstance(value, bool)


def evaluate_results(ground_truth, results, source="the results", iou_type="bbox"):
    """COCO metrics of a results list against a COCO ground-truth dict, with AP per class.

    The numbers are pycocotools' ``COCOeval(..., iou_type).stats`` (via
    `keras_det.metrics.coco.evaluate_arrays`), computed after `join_results`.

    Args:
        ground_truth: COCO ground-truth dict (e.g. ``keras_det.data.to_coco``
            of a split: category ids ``label + 1``, names in ``categories``).
        results: COCO results list (``keras-det predict``'s
            ``detections.json``).
        source: name of the results for error messages.
        iou_type: ``"bbox"`` (default), ``"segm"`` (results carry
            ``segmentation``, the ground truth masks) or ``"keypoints"``.

    Returns:
        dict with the keys of `stat_keys` (``iou_type``) (``-1.0`` where undefined, as
        pycocotools), ``per_class`` (class name → ``{"AP", "AP50"}`` for
        classes with ground truth), ``images`` (of the ground truth),
        ``detections`` (evaluated), ``outside_split``, ``unknown_category``
        ``outside_examples`` (see `join_results`) and ``iou_type``.

    Raises:
        ValueError: malformed results or ground truth, naming the entry.
    """
    from keras_det.metrics.coco import evaluate_arrays, load_coco_ground_truth, load_coco_results, per_category_ap, stats_to_dict, summarize

    kept, report = join_results(ground_truth, results, source, iou_type)
    gt = load_coco_ground_truth(ground_truth, iou_type=iou_type)
    dt = load_coco_results(kept, gt, ground_truth_path="the ground truth", iou_type=iou_type)
    accumulated = evaluate_arrays(gt, dt, iou_type)
    metrics = stats_to_dict(summarize(accumulated), iou_type)
    names = {c["id"]: str(c.get("name", c["id"])) for c in ground_truth.get("categories") or []}
    ap, ap50 = per_category_ap(accumulated), per_category_ap(accumulated, iou_threshold=0.5)
    metrics["per_class"] = {names.get(k, str(k)): {"AP": ap[k], "AP50": ap50[k]} for k in ap}
    metrics.update(images=len(ground_truth.get("images") or []), detections=len(kept), iou_type=iou_type, **report)
    return metrics


def format_metrics(metrics):
    """The metrics of `evaluate_results` as a printable table (COCO numbers, then AP per class)."""
    if metrics.get("iou_type") == "keypoints":
        rows = [
            ("AP", "OKS=0.50:0.95 area=all maxDets=20"), ("AP50", "OKS=0.50"), ("AP75", "OKS=0.75"),
            ("APm", "medium"), ("APl", "large"), ("AR", "OKS=0.50:0.95 maxDets=20"), ("AR50", "OKS=0.50"),
            ("AR75", "OKS=0.75"), ("ARm", "medium"), ("ARl", "large"),
        ]
    else:
        rows = [
            ("AP", "IoU=0.50:0.95 area=all maxDets=100"), ("AP50", "IoU=0.50"), ("AP75", "IoU=0.75"),
            ("APs", "small"), ("APm", "medium"), ("APl", "large"),
            ("AR1", "maxDets=1"), ("AR10", "maxDets=10"), ("AR100", "maxDets=100"),
            ("ARs", "small"), ("ARm", "medium"), ("ARl", "large"),
        ]
    lines = [f"{key:<6} {metrics[key]:7.4f}   {what}" for key, what in rows]
    per_class = metrics.get("per_class") or {}
    if per_class:
        width = max(8, max(len(name) for name in per_class))
        lines.append(f"{'class':<{width}}  {'AP':>7} {'AP50':>7}")
        lines += [f"{name:<{width}}  {v['AP']:7.4f} {v['AP50']:7.4f}" for name, v in per_class.items()]
    return "\n".join(lines)
