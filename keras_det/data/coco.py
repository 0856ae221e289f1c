"""COCO JSON reader (``instances_<split>.json`` + an image folder).

Layouts found by `find_coco` for ``load(folder, split)``:
``<folder>/annotations/instances_<split>.json`` (``<split>`` may also be
``val`` for ``validation``, or carry a year suffix: ``instances_val2017.json``),
with images in the first existing of ``<folder>/images/<name>``,
``<folder>/<name>``, ``<folder>/images``, ``<folder>`` (``<name>`` = the json
name without ``instances_``). ``load(path_to.json, split)`` reads that file
with images found the same way relative to the json's parent folder;
``image_dir=`` overrides.

Class order: categories sorted by COCO ``category_id``; label ``i`` is the
``i``-th category, ``info.category_ids[i]`` its COCO id. ``image_id`` is the
COCO image id. COCO boxes ``[x, y, w, h]`` are continuous pixel coordinates.
Crowd annotations (``iscrowd=1``) are dropped (counted) unless
``include_crowd=True``, which keeps them and adds
``bounding_boxes["is_crowd"]`` (bool ``[N]``). Images without annotations
are kept (``N = 0``) unless ``skip_empty=True``.

``with_masks=True`` adds ``"masks"`` (uint8 ``[N, H, W]``) decoded from each
annotation's ``segmentation`` at iteration time (in a ``tf.numpy_function``):
polygons are rasterized by pixel centre (a pixel is in the mask when its
centre is inside; ties on edges may differ from pycocotools by a pixel),
RLE (uncompressed
``counts`` lists and compressed strings) is decoded exactly. An annotation
without a usable segmentation is then an error.
"""

import glob
import json
import os

import numpy as np

from keras_det.data.core import (
    normalize_file_name,
    DataError,
    DatasetInfo,
    Record,
    Stats,
    check_image,
    clean_boxes,
    finish_records,
    rle_string_to_counts,
    records_to_dataset,
    split_candidates,
)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _segmentation(ann, where):
    """One annotation's segmentation in the form `core.rasterize_segmentations` reads.

    Raises:
        DataError: a polygon with an odd number of coordinates, fewer than 3
            points or a non-number; an RLE whose ``size`` is not ``[h, w]`` or
            whose counts are not non-negative and summing to ``h * w``.
    """
    seg = ann.get("segmentation")
    aid = ann.get("id")
    if isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
        for k, poly in enumerate(seg):
            if not all(_is_number(v) and np.isfinite(v) for v in poly):
                raise DataError(
                    f"{where}: annotation id {aid} segmentation polygon {k} has a "
                    "coordinate that is not a finite number."
                )
            if len(poly) % 2 or len(poly) < 6:
                raise DataError(
                    f"{where}: annotation id {aid} segmentation polygon {k} has "
                    f"{len(poly)} coordinates; expected an even number >= 6 (x, y pairs)."
                )
        return {"polygons": [[float(v) for v in p] for p in seg]}
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        counts, size = seg["counts"], seg["size"]
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
            raise DataError(
                f"{where}: annotation id {aid} RLE segmentation size {size!r} is not [h, w]."
            )
        if isinstance(counts, str):
            try:
                counts = rle_string_to_counts(counts)
            except IndexError:
                raise DataError(
                    f"{where}: annotation id {aid} RLE counts string is truncated."
                ) from None
        if not isinstance(counts, list) or not all(_is_int(c) and c >= 0 for c in counts):
            raise DataError(
                f"{where}: annotation id {aid} RLE counts are not non-negative integers."
            )
        if sum(counts) != size[0] * size[1]:
            raise DataError(
                f"{where}: annotation id {aid} RLE counts sum to {sum(counts)}, but its size "
                f"{size[0]} x {size[1]} has {size[0] * size[1]} pixels."
            )
        return {"rle": [int(c) for c in counts], "size": [int(v) for v in size]}
    raise DataError(
        f"{where}: annotation id {ann.get('id')} has no polygon or RLE segmentation "
        "(needed with with_masks=True)."
    )


def validate_coco(coco, json_path):
    """Checks the structure of a parsed COCO instances file before it is read.

    Raises:
        DataError: naming ``json_path``, the entry (``images[3]``, image id,
            annotation id) and the field: a top level that is not an object;
            ``images`` / ``annotations`` / ``categories`` missing or not lists;
            entries that are not objects; ids that are not integers;
            ``file_name`` / category ``name`` not a non-empty string;
            ``height`` / ``width`` not positive integers; a ``bbox`` that is
            not 4 numbers; ``iscrowd`` not 0 / 1; the same image id or category
            id twice, or one ``file_name`` under two image ids (naming both
            entries).
    """
    if not isinstance(coco, dict):
        raise DataError(
            f"COCO annotation file {json_path}: the top level is a {type(coco).__name__}, "
            "expected an object with 'images', 'annotations' and 'categories'."
        )
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise DataError(f"COCO annotation file {json_path} has no {key!r} list.")
        if not isinstance(coco[key], list):
            raise DataError(
                f"COCO annotation file {json_path}: {key!r} is "
                f"{'null' if coco[key] is None else 'a ' + type(coco[key]).__name__}, expected a list."
            )
        for i, entry in enumerate(coco[key]):
            if not isinstance(entry, dict):
                raise DataError(
                    f"{json_path}: {key}[{i}] is {entry!r:.80}, expected an object."
                )
    if not coco["images"]:
        raise DataError(f"COCO annotation file {json_path} lists no images.")
    ids, names = {}, {}
    for i, img in enumerate(coco["images"]):
        entry = f"{json_path}: images[{i}]"
        if not _is_int(img.get("id")):
            raise DataError(f"{entry} field 'id' is {img.get('id')!r}, expected an integer.")
        fname = img.get("file_name")
        if not isinstance(fname, str) or not fname:
            raise DataError(
                f"{entry} (id {img['id']}) field 'file_name' is {fname!r}, expected a file name."
            )
        for field in ("height", "width"):
            v = img.get(field)
            if v is not None and not (_is_int(v) and v > 0) and not (
                isinstance(v, float) and v.is_integer() and v > 0
            ):
                raise DataError(
                    f"{entry} (id {img['id']}, {fname}) field {field!r} is {v!r}, "
                    "expected a positive integer."
                )
        if img["id"] in ids:
            raise DataError(
                f"{json_path}: images[{ids[img['id']]}] and images[{i}] have the same id "
                f"{img['id']} ({coco['images'][ids[img['id']]]['file_name']!r}, {fname!r})."
            )
        key = normalize_file_name(fname)
        if key in names:
            raise DataError(
                f"{json_path}: file {fname!r} is listed twice, as image ids "
                f"{coco['images'][names[key]]['id']} (images[{names[key]}]) and {img['id']} "
                f"(images[{i}])."
            )
        ids[img["id"]], names[key] = i, i
    cats = {}
    for i, cat in enumerate(coco["categories"]):
        entry = f"{json_path}: categories[{i}]"
        if not _is_int(cat.get("id")):
            raise DataError(f"{entry} field 'id' is {cat.get('id')!r}, expected an integer.")
        if not isinstance(cat.get("name"), str) or not cat.get("name"):
            raise DataError(
                f"{entry} (id {cat['id']}) field 'name' is {cat.get('name')!r}, expected a name."
            )
        if cat["id"] in cats:
            raise DataError(
                f"{json_path}: categories[{cats[cat['id']]}] and categories[{i}] have the same "
                f"id {cat['id']}."
            )
        cats[cat["id"]] = i
    for i, ann in enumerate(coco["annotations"]):
        entry = f"{json_path}: annotations[{i}] (id {ann.get('id')!r})"
        for field in ("image_id", "category_id"):
            if not _is_int(ann.get(field)):
                raise DataError(
                    f"{entry} field {field!r} is {ann.get(field)!r}, expected an integer."
                )
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            raise DataError(f"{entry} field 'bbox' is {bbox!r:.80}, expected [x, y, w, h] numbers.")
        if ann.get("iscrowd", 0) not in (0, 1) or isinstance(ann.get("iscrowd"), float):
            raise DataError(f"{entry} field 'iscrowd' is {ann.get('iscrowd')!r}, expected 0 or 1.")


def find_coco(folder, split):
    """Returns the annotation json of ``split`` in ``folder`` or ``None``."""
    ann_dir = os.path.join(folder, "annotations")
    if not os.path.isdir(ann_dir):
        return None
    for name in split_candidates(split):
        exact = os.path.join(ann_dir, f"instances_{name}.json")
        if os.path.isfile(exact):
            return exact
        found = sorted(glob.glob(os.path.join(ann_dir, f"instances_{name}[0-9]*.json")))
        if found:
            return found[0]
    return None


def is_coco_folder(folder):
    return bool(glob.glob(os.path.join(folder, "annotations", "instances_*.json")))


def _image_dir(root, json_path, first_files):
    stem = os.path.splitext(os.path.basename(json_path))[0]
    name = stem[len("instances_") :] if stem.startswith("instances_") else stem
    candidates = [
        os.path.join(root, "images", name),
        os.path.join(root, name),
        os.path.join(root, "images"),
        root,
    ]
    if not first_files:
        return next((c for c in candidates if os.path.isdir(c)), root)
    # The candidate holding most of the first images (a missing or broken one is then
    # reported by name by the image check, not as a missing folder).
    found = [sum(os.path.lexists(os.path.join(c, f)) for f in first_files) for c in candidates]
    if max(found) > 0:
        return candidates[found.index(max(found))]
    raise DataError(
        f"{json_path}: cannot find the image folder: {first_files[0]!r} is in none of "
        f"{', '.join(candidates)}; pass image_dir=."
    )


def read_coco(
    json_path,
    split,
    bounding_box_format="xyxy",
    image_dir=None,
    include_crowd=False,
    skip_empty=False,
    drop_invalid=False,
    check_images=True,
    num_parallel_calls=None,
    with_masks=False,
):
    """Reads a COCO instances json into ``(dataset, DatasetInfo)``; see the module docstring."""
    if not os.path.isfile(json_path):
        raise DataError(f"COCO annotation file {json_path} does not exist.")
    try:
        with open(json_path, encoding="utf-8") as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"COCO annotation file {json_path} is not valid JSON: {e}") from None
    validate_coco(coco, json_path)
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    cat_to_label = {c["id"]: i for i, c in enumerate(categories)}
    images = coco["images"]
    if image_dir is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(json_path)))
        if os.path.basename(os.path.dirname(os.path.abspath(json_path))) != "annotations":
            root = os.path.dirname(os.path.abspath(json_path))
        image_dir = _image_dir(root, json_path, [img["file_name"] for img in images[:20]])
    per_image = {img["id"]: [] for img in images}
    for ann in coco["annotations"]:
        if ann.get("image_id") not in per_image:
            raise DataError(
                f"{json_path}: annotation id {ann.get('id')} refers to unknown "
                f"image_id {ann.get('image_id')}."
            )
        if ann.get("category_id") not in cat_to_label:
            raise DataError(
                f"{json_path}: annotation id {ann.get('id')} has unknown category_id "
                f"{ann.get('category_id')} (known: {sorted(cat_to_label)})."
            )
        per_image[ann["image_id"]].append(ann)
    stats = Stats()
    records = []
    for img in images:
        path = os.path.join(image_dir, img["file_name"])
        where = f"{json_path} (image id {img['id']}, {img['file_name']})"
        check_image(path, json_path, check_images)
        anns = per_image[img["id"]]
        if not include_crowd:
            stats.add("crowd_dropped", where, sum(1 for a in anns if a.get("iscrowd", 0)))
            anns = [a for a in anns if not a.get("iscrowd", 0)]
        xyxy = []
        for a in anns:
            bbox = a.get("bbox")
            if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
                raise DataError(
                    f"{where}: annotation id {a.get('id')} has bbox {bbox!r}, "
                    "expected [x, y, w, h]."
                )
            x, y, w, h = (float(v) if v is not None else float("nan") for v in bbox)
            xyxy.append((x, y, x + w, y + h))
        keep, boxes = clean_boxes(
            np.asarray(xyxy, np.float64).reshape(-1, 4),
            where,
            height=int(img.get("height", -1) or -1),
            width=int(img.get("width", -1) or -1),
            drop_invalid=drop_invalid,
            stats=stats,
        )
        anns = [anns[i] for i in keep]
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
        records.append(
            Record(
                file=path,
                image_id=int(img["id"]),
                file_name=normalize_file_name(img["file_name"]),
                boxes=boxes,
                labels=np.array([cat_to_label[a["category_id"]] for a in anns], np.int32),
                height=int(img.get("height", -1) or -1),
                width=int(img.get("width", -1) or -1),
                is_crowd=crowd if include_crowd else None,
                where=where,
                segmentation=(
                    json.dumps([_segmentation(a, where) for a in anns]) if with_masks else None
                ),
            )
        )
    records = finish_records(records, stats, "coco", split, skip_empty)
    ds = records_to_dataset(
        records, bounding_box_format, num_parallel_calls=num_parallel_calls,
        checked_images=bool(check_images),
    )
    info = DatasetInfo(
        name="coco",
        split=split,
        class_names=tuple(c["name"] for c in categories),
        bounding_box_format=bounding_box_format,
        num_examples=len(records),
        num_boxes=sum(len(r.labels) for r in records),
        source=json_path,
        image_files=tuple(r.file for r in records),
        file_names=tuple(r.file_name for r in records),
        image_ids=tuple(r.image_id for r in records),
        category_ids=tuple(c["id"] for c in categories),
        stats=dict(stats.counts),
    )
    return ds, info
