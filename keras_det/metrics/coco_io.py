"""COCO JSON files: reading ground truth and results into arrays, with checks.

`load_coco_ground_truth` and `load_coco_results` turn COCO JSON (a path or the
loaded object) into the column arrays that `keras_det.metrics.coco_matching`
matches. Malformed input is a ``ValueError`` naming the file, the entry and
the problem. pycocotools is not imported here.
"""

import json
import os

import numpy as np

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


def load_coco_ground_truth(source):
    """Reads a COCO ground-truth file into arrays.

    Args:
        source: path to a COCO instances JSON (or the already-loaded dict).

    Returns:
        dict with ``image_ids [N]``, ``category_ids [K]`` (sorted, from
        ``categories`` or, without that list, from the annotations), and per
        annotation (only those whose image and category are listed, as
        pycocotools): ``image_id``, ``category_id``, ``bbox [G, 4]`` xywh,
        ``area`` (``w * h`` when absent), ``iscrowd`` (bool, default False),
        ``id``.

    Raises:
        ValueError: naming the file and entry for malformed input.
    """
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
    cols = _field_arrays(anns, ["image_id", "category_id", "bbox"], path, "annotations")
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
    missing = np.isnan(area)
    area[missing] = bbox[missing, 2] * bbox[missing, 3]
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
    return {
        "image_ids": image_ids_u,
        "category_ids": cat_ids_u,
        "image_id": ann_img[keep],
        "category_id": ann_cat[keep],
        "bbox": bbox[keep],
        "area": area[keep],
        "iscrowd": iscrowd[keep],
        "id": ids_arr[keep] if ids_arr.size else ids_arr,
    }


def load_coco_results(source, ground_truth=None, ground_truth_path="the ground truth"):
    """Reads a COCO box results file (list of ``{image_id, category_id, bbox, score}``).

    Args:
        source: path to the results JSON (or the already-loaded list).
        ground_truth: optional output of :func:`load_coco_ground_truth` to
            check image and category ids against.
        ground_truth_path: name used in error messages.

    Returns:
        dict with ``image_id [D]``, ``category_id [D]``, ``bbox [D, 4]`` xywh,
        ``score [D]``, in file order.

    Raises:
        ValueError: naming the file and entry: not a list, missing fields,
            a bbox that is not 4 numbers or has negative width/height, an
            unknown image id or category id.
    """
    data, path = _load_json(source, "results")
    if not isinstance(data, list):
        raise ValueError(
            f"{path}: a COCO results file must be a JSON list of detections, "
            f"got {type(data).__name__}."
        )
    cols = _field_arrays(data, ["image_id", "category_id", "bbox", "score"], path, "results")
    bbox = _bbox_array(cols["bbox"], path, "results")
    try:
        score = np.array(cols["score"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        for i, s in enumerate(cols["score"]):
            try:
                float(s)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path}: results entry {i} has a non-numeric score {s!r}."
                ) from None
        raise
    neg = (bbox[:, 2] < 0) | (bbox[:, 3] < 0)
    if np.any(neg):
        i = _first_bad(neg)
        raise ValueError(
            f"{path}: results entry {i} has a bbox with negative width or height "
            f"(bbox is [x, y, w, h]): {data[i]['bbox']!r}."
        )
    img = np.asarray(cols["image_id"])
    cat = np.asarray(cols["category_id"])
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
    return {"image_id": img, "category_id": cat, "bbox": bbox, "score": score}
