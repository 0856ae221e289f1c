"""COCO JSON files: reading ground truth and results into arrays, with checks.

`load_coco_ground_truth` and `load_coco_results` turn COCO JSON (a path or the
loaded object) into the column arrays that `keras_det.metrics.coco_matching`
matches. Malformed input is a ``ValueError`` naming the file, the entry and
the problem. pycocotools is not imported here.
"""

import json
import math
import os

import numpy as np

IOU_TYPES = ("bbox", "segm", "keypoints")
# The field that carries the prediction of each evaluation type.
RESULT_FIELD = {"bbox": "bbox", "segm": "segmentation", "keypoints": "keypoints"}


def check_iou_type(iou_type):
    """``iou_type`` if it is one of `IOU_TYPES`, else a ValueError naming it."""
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {', '.join(IOU_TYPES)}, got {iou_type!r}.")
    return iou_type


def _number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _bbox_reason(box):
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(_number(v) for v in box):
        return f"has a bbox that is not 4 numbers: {box!r:.80}"
    box = [float(v) for v in box]
    if not all(math.isfinite(v) for v in box):
        return f"has a bbox with a NaN or infinite value: {box}"
    if box[2] < 0 or box[3] < 0:
        return f"has a bbox with negative width or height (bbox is [x, y, w, h]): {box}"
    return None


def check_result(entry, iou_type="bbox"):
    """``None`` if ``entry`` is a well-formed COCO result record, else the reason.

    The one check of a result record, used by `load_coco_results`,
    `keras_det.results.join_results` (``keras-det evaluate``) and the Beam
    evaluation (``keras_det.beam.evaluate``, whose dead letters carry the reason).

    Args:
        entry: one decoded JSON value of a results file.
        iou_type: ``"bbox"`` (needs ``bbox`` ``[x, y, w, h]``), ``"segm"``
            (needs ``segmentation``: an RLE ``{"size": [h, w], "counts"}``
            or a list of polygons) or ``"keypoints"`` (needs ``keypoints``:
            ``[x1, y1, v1, x2, ...]``). Every type needs ``image_id``,
            ``category_id`` and ``score``; a ``bbox``, where present, must be
            valid whatever the type.

    Returns:
        ``None``, or one line that reads after ``"results entry 3 "``
        (e.g. ``"has no 'score' field"``).
    """
    if not isinstance(entry, dict):
        return f"is not a JSON object: {entry!r:.80}"
    field = RESULT_FIELD[check_iou_type(iou_type)]
    for key in ("image_id", "category_id", field, "score"):
        if key not in entry:
            return f"has no {key!r} field"
    ids = (entry["image_id"], entry["category_id"])
    if any(isinstance(v, (bool, np.bool_)) for v in ids):
        return "has an image_id or category_id that is a boolean (it must be a number or a string, not a boolean)"
    if any(isinstance(v, (list, dict)) for v in ids):
        return "has an image_id or category_id that is a list or an object (it must be a number or a string)"
    if "bbox" in entry:
        reason = _bbox_reason(entry["bbox"])
        if reason:
            return reason
    if iou_type == "segm":
        from keras_det.metrics.masks import segmentation_reason

        reason = segmentation_reason(entry["segmentation"])
        if reason:
            return f"has a segmentation that {reason}"
    elif iou_type == "keypoints":
        from keras_det.metrics.keypoints import keypoints_reason

        reason = keypoints_reason(entry["keypoints"])
        if reason:
            return f"has keypoints that {reason}"
    if not _number(entry["score"]):
        return f"has a non-numeric score: {entry['score']!r:.80}"
    if not math.isfinite(float(entry["score"])):
        return f"has a score that is not finite: {entry['score']!r}"
    return None

def _load_json(source, what):
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f), path
        except OSError as e:
            raise ValueError(f"Cannot read the {what} file {path!r}: {e}") from e
        except json.JSONDecodeError as e:
            raise ValueError(f"The {what} file {path!r} is not valid JSON: {e}") from e
    return source, f"<in-memory {what}>"


def _field_arrays(entries, fields, path, kind):
    """Columns of ``entries`` (list of dicts); a ValueError names a bad entry."""
    try:
        return {f: [e[f] for e in entries] for f in fields}
    except (KeyError, TypeError, IndexError):
        pass
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ValueError(f"{path}: {kind} entry {i} is not an object: {e!r:.200}")
        for f in fields:
            if f not in e:
                raise ValueError(f"{path}: {kind} entry {i} has no {f!r} field: {e!r:.200}")
    raise ValueError(f"{path}: malformed {kind} entries.")  # pragma: no cover


def _bbox_array(boxes, path, kind):
    try:
        arr = np.array(boxes, dtype=np.float64)
        if arr.ndim == 2 and arr.shape[1] == 4 or arr.shape == (0,):
            return arr.reshape(-1, 4)
    except (ValueError, TypeError):
        pass
    for i, b in enumerate(boxes):
        ok = isinstance(b, (list, tuple)) and len(b) == 4
        if ok:
            try:
                [float(x) for x in b]
            except (TypeError, ValueError):
                ok = False
        if not ok:
            raise ValueError(
                f"{path}: {kind} entry {i} has a bbox that is not 4 numbers: {b!r:.200}"
            )
    raise ValueError(f"{path}: malformed {kind} bboxes.")  # pragma: no cover


def _first_bad(mask):
    return int(np.flatnonzero(mask)[0])


def _image_sizes(data, image_ids_u, path):
    """``(heights, widths)`` int64 aligned with the sorted image ids (-1 where not given)."""
    h = np.full(image_ids_u.shape, -1, np.int64)
    w = np.full(image_ids_u.shape, -1, np.int64)
    for image in data["images"]:
        if "height" in image and "width" in image:
            i = int(np.searchsorted(image_ids_u, image["id"]))
            h[i], w[i] = int(image["height"]), int(image["width"])
    return h, w


def _segmentations(segs, heights, widths, labels, path, kind):
    """COCO segmentations → `MaskSet`; image sizes needed for polygons and uncompressed RLE."""
    from keras_det.metrics import masks

    for j, seg in enumerate(segs):
        needs_size = not (isinstance(seg, dict) and isinstance(seg.get("counts"), (str, bytes)))
        if needs_size and (heights[j] < 0 or widths[j] < 0):
            raise ValueError(
                f"{path}: {kind} entry {labels[j]} has a polygon or uncompressed RLE segmentation but its "
                "image has no 'height' / 'width'."
            )
    return masks.masks_from_segmentations(segs, heights, widths, what=f"{path}: {kind} entry",
                                          labels=labels)


def _keypoint_array(kps, path, kind, labels, expect=None):
    """Flat ``[x1, y1, v1, ...]`` lists → float64 ``[n, P, 3]``; a ValueError names the first bad entry.

    ``expect``: the required list length (``3 P``), default the first entry's.
    """
    from keras_det.metrics.keypoints import keypoints_reason

    n = len(kps)
    lengths = set(map(len, kps)) if all(isinstance(k, (list, tuple)) for k in kps) else None
    if lengths is not None and len(lengths) <= 1:
        length = lengths.pop() if lengths else 0
        if (length and length % 3 == 0 and (expect is None or length == expect)
                and _all_numbers(v for k in kps for v in k)):
            arr = np.asarray(kps, np.float64).reshape(n, -1, 3)
            if np.all(np.isfinite(arr)):
                return arr
    for j, k in enumerate(kps):
        reason = keypoints_reason(k)
        if reason is None and expect is None:
            expect = len(k)
        if reason is None and len(k) != expect:
            reason = f"are {len(k) // 3} points, not {expect // 3} as the others"
        if reason:
            raise ValueError(f"{path}: {kind} entry {labels[j]} has keypoints that {reason}.")
    return np.zeros((0, 0, 3)) if n == 0 else np.asarray(kps, np.float64).reshape(n, -1, 3)


def load_coco_ground_truth(source, iou_type="bbox"):
    """Reads a COCO ground-truth file into arrays.

    Args:
        source: path to a COCO instances JSON (or the already-loaded dict).
        iou_type: ``"bbox"`` (default), ``"segm"`` (reads ``segmentation``:
            polygons, RLE or uncompressed RLE; images need ``height`` /
            ``width`` for polygons and uncompressed RLE; ``bbox`` optional)
            or ``"keypoints"`` (reads ``keypoints`` ``[x1, y1, v1, ...]`` and
            ``num_keypoints``, default the number with ``v > 0``).

    Returns:
        dict with ``image_ids [N]``, ``category_ids [K]`` (sorted, from
        ``categories`` or, without that list, from the annotations), and per
        annotation (only those whose image and category are listed, as
        pycocotools): ``image_id``, ``category_id``, ``bbox [G, 4]`` xywh,
        ``area`` (``w * h`` when absent; the mask area for segm),
        ``iscrowd`` (bool, default False), ``id``; ``heights`` / ``widths``
        ``[N]`` the image sizes (-1 where not given) and ``iou_type``; segm
        adds ``segmentation`` (a `keras_det.metrics.masks.MaskSet`),
        keypoints ``keypoints [G, P, 3]`` and ``ignore`` (``num_keypoints
        == 0``, pycocotools' ignore of such ground truth).

    Raises:
        ValueError: naming the file and entry for malformed input.
    """
    check_iou_type(iou_type)
    data, path = _load_json(source, "ground-truth")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(
            f"{path}: a COCO ground-truth file must be a JSON object with an 'images' list "
            f"(got {type(data).__name__}{' without images' if isinstance(data, dict) else ''})."
        )
    image_ids = np.asarray(_field_arrays(data["images"], ["id"], path, "images")["id"])
    anns = data.get("annotations", [])
    if not isinstance(anns, list):
        raise ValueError(f"{path}: 'annotations' must be a list.")
    fields = ["image_id", "category_id"] + (["bbox"] if iou_type != "segm" else [])
    fields += {"bbox": [], "segm": ["segmentation"], "keypoints": ["keypoints"]}[iou_type]
    cols = _field_arrays(anns, fields, path, "annotations")
    if iou_type == "segm":
        cols["bbox"] = [a.get("bbox", [0, 0, 0, 0]) for a in anns]
    bbox = _bbox_array(cols["bbox"], path, "annotations")
    ann_img = np.asarray(cols["image_id"])
    ann_cat = np.asarray(cols["category_id"])
    if "categories" in data:
        if not isinstance(data["categories"], list):
            raise ValueError(f"{path}: 'categories' must be a list.")
        cat_ids = np.asarray(_field_arrays(data["categories"], ["id"], path, "categories")["id"])
    else:
        cat_ids = ann_cat
    area = np.array([a.get("area", np.nan) for a in anns], dtype=np.float64).reshape(-1)
    iscrowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool).reshape(-1)
    ann_ids = [a.get("id", i + 1) for i, a in enumerate(anns)]
    ids_arr = np.asarray(ann_ids)
    if ids_arr.size:
        uniq, cnt = np.unique(ids_arr, return_counts=True)
        if np.any(cnt > 1):
            dup = uniq[cnt > 1][0]
            idx = int(np.flatnonzero(ids_arr == dup)[1])
            raise ValueError(
                f"{path}: annotation entry {idx} repeats the annotation id {anns[idx].get('id')!r} "
                "(ids must be unique)."
            )
    image_ids_u = np.unique(image_ids)
    cat_ids_u = np.unique(cat_ids)
    keep = np.isin(ann_img, image_ids_u) & np.isin(ann_cat, cat_ids_u)
    heights, widths = _image_sizes(data, image_ids_u, path)
    kept = np.flatnonzero(keep)
    out = {
        "image_ids": image_ids_u,
        "category_ids": cat_ids_u,
        "image_id": ann_img[keep],
        "category_id": ann_cat[keep],
        "bbox": bbox[keep],
        "area": area[keep],
        "iscrowd": iscrowd[keep],
        "id": ids_arr[keep] if ids_arr.size else ids_arr,
        "heights": heights,
        "widths": widths,
        "iou_type": iou_type,
    }
    missing = np.isnan(out["area"])
    if iou_type == "segm":
        pos = np.searchsorted(image_ids_u, out["image_id"])
        ms = _segmentations([cols["segmentation"][i] for i in kept], heights[pos], widths[pos],
                            kept.tolist(), path, "annotation")
        out["segmentation"] = ms
        out["area"][missing] = ms.areas[missing]
    else:
        out["area"][missing] = out["bbox"][missing, 2] * out["bbox"][missing, 3]
    if iou_type == "keypoints":
        arr = _keypoint_array([cols["keypoints"][i] for i in kept], path, "annotation", kept.tolist())
        num = np.array([anns[i].get("num_keypoints", -1) for i in kept], np.float64).reshape(-1)
        num = np.where(num < 0, (arr[:, :, 2] > 0).sum(1), num)
        out["keypoints"], out["ignore"] = arr, num == 0
    return out


def _first_bad_entry(data, path, iou_type):
    """The ValueError of the first entry `check_result` rejects (the slow path of a bad file)."""
    for i, entry in enumerate(data):
        reason = check_result(entry, iou_type)
        if reason:
            return ValueError(f"{path}: results entry {i} {reason}.")
    return ValueError(f"{path}: malformed results entries.")  # pragma: no cover


def _number_type(t):
    return issubclass(t, (int, float, np.integer, np.floating)) and not issubclass(t, (bool, np.bool_))


def _all_numbers(values):
    """Whether every value is a number (not a boolean): one pass over the types."""
    return all(_number_type(t) for t in set(map(type, values)))


def _all_ids(values):
    return all(_number_type(t) or issubclass(t, str) for t in set(map(type, values)))


def _result_columns(data, iou_type):
    """Columns of a results list when every entry passes `check_result`, else ``None``.

    Vectorised (a few passes over Python lists, no per-entry calls); the
    caller falls back to `check_result` entry by entry to name a bad entry.
    """
    field = RESULT_FIELD[iou_type]
    try:
        cols = {f: [e[f] for e in data] for f in ("image_id", "category_id", field, "score")}
        if not _all_numbers(cols["score"]):
            return None
        if not (_all_ids(cols["image_id"]) and _all_ids(cols["category_id"])):
            return None
        score = np.array(cols["score"], dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(score)):
            return None
        has_box = [("bbox" in e) for e in data] if iou_type != "bbox" else None
        boxes = cols["bbox"] if iou_type == "bbox" else [e.get("bbox", [0, 0, 0, 0]) for e in data]
        if boxes:
            if not set(map(type, boxes)) <= {list, tuple}:
                return None
            bbox = np.array(boxes, dtype=np.float64)
            if bbox.ndim != 2 or bbox.shape[1] != 4:
                return None
            if not _all_numbers(v for b in boxes for v in b):
                return None
            if not np.all(np.isfinite(bbox)) or np.any(bbox[:, 2:] < 0):
                return None
        else:
            bbox = np.zeros((0, 4), np.float64)
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    out = {"image_id": np.asarray(cols["image_id"]), "category_id": np.asarray(cols["category_id"]),
           "score": score, "bbox": bbox}
    if field != "bbox":
        out[field] = cols[field]
    if has_box is not None:
        out["has_bbox"] = np.asarray(has_box, bool).reshape(-1)
    return out


def load_coco_results(source, ground_truth=None, ground_truth_path="the ground truth",
                      iou_type="bbox"):
    """Reads a COCO results file (a list of ``{image_id, category_id, bbox, score}``).

    Every entry must pass `check_result` (the same check as
    ``keras-det evaluate`` and the Beam evaluation); the first that does not
    is named in the error.

    Args:
        source: path to the results JSON (or the already-loaded list).
        ground_truth: optional output of :func:`load_coco_ground_truth` to
            check image and category ids against.
        ground_truth_path: name used in error messages.
        iou_type: ``"bbox"`` (the default), ``"segm"`` (entries carry a
            ``segmentation``: compressed or uncompressed RLE, or polygons,
            which take their image's size from ``ground_truth``) or
            ``"keypoints"`` (entries carry ``keypoints`` ``[x1, y1, v1, ...]``).

    Returns:
        dict with ``image_id [D]``, ``category_id [D]``, ``bbox [D, 4]`` xywh
        (zeros where a segm / keypoints entry has none), ``score [D]``, in
        file order, and ``iou_type``. segm adds ``segmentation`` (a
        `keras_det.metrics.masks.MaskSet`), keypoints ``keypoints [D, P, 3]``;
        both add ``area [D]``, the detection area for the area ranges as
        pycocotools' ``loadRes`` sets it: the box area ``w * h`` when the
        *first* entry has a ``bbox``, else the mask area / the extent of the
        keypoints ``(max x - min x) * (max y - min y)``.

    Raises:
        ValueError: naming the file and entry: not a list, missing fields,
            a bbox that is not 4 finite numbers or has negative width/height,
            a score that is not a finite number, an unknown image id or
            category id.
    """
    check_iou_type(iou_type)
    data, path = _load_json(source, "results")
    if not isinstance(data, list):
        raise ValueError(
            f"{path}: a COCO results file must be a JSON list of detections, "
            f"got {type(data).__name__}."
        )
    cols = _result_columns(data, iou_type)
    if cols is None:
        raise _first_bad_entry(data, path, iou_type)
    img, cat = cols["image_id"], cols["category_id"]
    if ground_truth is not None and len(data):
        bad = ~np.isin(img, ground_truth["image_ids"])
        if np.any(bad):
            i = _first_bad(bad)
            raise ValueError(
                f"{path}: results entry {i} has image_id {data[i]['image_id']!r}, which is not an "
                f"image of {ground_truth_path}."
            )
        bad = ~np.isin(cat, ground_truth["category_ids"])
        if np.any(bad):
            i = _first_bad(bad)
            raise ValueError(
                f"{path}: results entry {i} has category_id {data[i]['category_id']!r}, which is "
                f"not a category of {ground_truth_path}."
            )
    out = {"image_id": img, "category_id": cat, "bbox": cols["bbox"].reshape(-1, 4),
           "score": cols["score"], "iou_type": iou_type}
    if iou_type == "bbox":
        return out
    n = len(data)
    if ground_truth is not None and "heights" in ground_truth and n:
        pos = np.searchsorted(ground_truth["image_ids"], img)
        heights, widths = ground_truth["heights"][pos], ground_truth["widths"][pos]
    else:
        heights = widths = np.full((n,), -1, np.int64)
    if iou_type == "segm":
        ms = _segmentations(cols["segmentation"], heights, widths, list(range(n)), path, "results")
        wrong = (heights >= 0) & ((ms.heights != heights) | (ms.widths != widths))
        if np.any(wrong):
            i = _first_bad(wrong)
            raise ValueError(
                f"{path}: results entry {i} has a segmentation of size {int(ms.heights[i])} x "
                f"{int(ms.widths[i])} but its image is {int(heights[i])} x {int(widths[i])} (h x w)."
            )
        out["segmentation"] = ms
        own_area = ms.areas.astype(np.float64)
    else:
        from keras_det.metrics.keypoints import keypoint_extent_areas

        expect = None
        if ground_truth is not None and "keypoints" in ground_truth and len(ground_truth["keypoints"]):
            expect = 3 * ground_truth["keypoints"].shape[1]
        arr = _keypoint_array(cols["keypoints"], path, "results", list(range(n)), expect)
        out["keypoints"] = arr
        own_area = keypoint_extent_areas(arr)
    box_area = out["bbox"][:, 2] * out["bbox"][:, 3]
    first_has_box = bool(n) and "bbox" in data[0]
    out["area"] = np.where(cols["has_bbox"] & first_has_box, box_area, own_area)
    return out
