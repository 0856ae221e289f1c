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
    check_image_file,
    clean_boxes,
    finish_records,
    rle_string_to_counts,
    records_to_dataset,
    split_candidates,
)


def _segmentation(ann, where):
    """One annotation's segmentation in the form `core.rasterize_segmentations` reads."""
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
        return {"polygons": [[float(v) for v in p] for p in seg]}
    if isinstance(seg, dict) and "counts" in seg and "size" in seg:
        counts = seg["counts"]
        if isinstance(counts, str):
            counts = rle_string_to_counts(counts)
        return {"rle": [int(c) for c in counts], "size": [int(v) for v in seg["size"]]}
    raise DataError(
        f"{where}: annotation id {ann.get('id')} has no polygon or RLE segmentation "
        "(needed with with_masks=True)."
    )


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


def _image_dir(root, json_path, first_file):
    stem = os.path.splitext(os.path.basename(json_path))[0]
    name = stem[len("instances_") :] if stem.startswith("instances_") else stem
    candidates = [
        os.path.join(root, "images", name),
        os.path.join(root, name),
        os.path.join(root, "images"),
        root,
    ]
    if first_file is None:
        return next((c for c in candidates if os.path.isdir(c)), root)
    for c in candidates:
        if os.path.isfile(os.path.join(c, first_file)):
            return c
    raise DataError(
        f"{json_path}: cannot find the image folder: {first_file!r} is in none of "
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
        with open(json_path) as f:
            coco = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"COCO annotation file {json_path} is not valid JSON: {e}") from None
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise DataError(f"COCO annotation file {json_path} has no {key!r} list.")
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    cat_to_label = {c["id"]: i for i, c in enumerate(categories)}
    images = coco["images"]
    if image_dir is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(json_path)))
        if os.path.basename(os.path.dirname(os.path.abspath(json_path))) != "annotations":
            root = os.path.dirname(os.path.abspath(json_path))
        image_dir = _image_dir(root, json_path, images[0]["file_name"] if images else None)
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
        if check_images:
            check_image_file(path, json_path)
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
    ds = records_to_dataset(records, bounding_box_format, num_parallel_calls=num_parallel_calls)
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
