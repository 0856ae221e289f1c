"""`load`: the one entry point from a source name to the data contract."""

import os

from keras_det.data import coco, shapes, tfds_adapter, voc, yolo
from keras_det.data.core import DataError, split_candidates
from keras_det.ops import boxes as box_ops

_LAYOUTS = (
    "COCO (annotations/instances_<split>.json), VOC devkit (Annotations/, JPEGImages/, "
    "ImageSets/Main/<split>.txt), LabelImg (annotations/*.xml + images/) or YOLO "
    "(images/<split>/, labels/<split>/ + data.yaml or classes.txt)"
)


def detect_layout(path):
    """Names the layout of a local folder or file.

    Returns ``"coco"``, ``"voc"``, ``"labelimg"`` or ``"yolo"``.

    Raises:
        DataError: when ``path`` does not exist or matches no layout.
    """
    if os.path.isfile(path):
        if path.lower().endswith(".json"):
            return "coco"
        raise DataError(f"{path} is a file but not a COCO .json annotation file.")
    if not os.path.isdir(path):
        if path.lower().endswith(".json"):
            raise DataError(f"COCO annotation file {path} does not exist.")
        raise DataError(f"Dataset folder {path} does not exist.")
    if coco.is_coco_folder(path):
        return "coco"
    if voc.find_devkit(path) is not None:
        return "voc"
    if yolo.is_yolo_folder(path):
        return "yolo"
    if voc.find_labelimg(path) is not None:
        return "labelimg"
    raise DataError(f"Cannot detect the dataset layout of {path}; expected {_LAYOUTS}.")


def load(source="shapes", split="train", bounding_box_format="xyxy", with_info=False, **options):
    """Loads a detection dataset as an unbatched ``tf.data.Dataset`` of the data contract.

    Each element::

        {"images": float32 [H, W, 3] in 0..255,
         "bounding_boxes": {"boxes": float32 [N, 4] in `bounding_box_format`,
                            "labels": int32 [N] (0-based),
                            "difficult": bool [N] (VOC only),
                            "is_crowd": bool [N] (COCO with include_crowd=True)},
         "image_id": int64 scalar,
         "masks": uint8 [N, H, W] (shapes; COCO with with_masks=True),
         "keypoints": float32 [N, K, 3] (shapes with with_keypoints=True)}

    Args:
        source: ``"shapes"`` (embedded synthetic set), a local folder or COCO
            ``.json`` file (layout detected by `detect_layout`), or a TFDS
            name such as ``"voc/2007"`` or ``"coco/2017"``.
        split: ``"train"``, ``"validation"`` (``"val"`` accepted), ``"test"``;
            for LabelImg folders without split lists also ``"all"``.
        bounding_box_format: a Keras box format (``xyxy``, ``yxyx``,
            ``xywh``, ``center_xywh``, ``rel_xyxy``, ...).
        with_info: also return a `DatasetInfo` (``class_names``, ...).
        **options: reader options. Common to folder readers: ``class_names``
            (VOC / LabelImg / YOLO), ``skip_empty=False``,
            ``drop_invalid=False``, ``check_images=True`` (``"header"``:
            structure only, ``False``: no load-time check, errors at
            iteration name the file),
            ``num_parallel_calls``. shapes: ``num_images``, ``image_size``,
            ``seed``, ``with_masks``, ``min_objects``, ``max_objects``,
            ``with_keypoints``.
            COCO: ``image_dir``, ``include_crowd``, ``with_masks``. VOC/LabelImg:
            ``one_based``; LabelImg and single-pool YOLO: ``val_fraction``,
            ``test_fraction``, ``split_seed``. TFDS: ``data_dir``, ``download``,
            ``include_crowd``, ``shuffle_files``, ``read_config``.

    Returns:
        The dataset, or ``(dataset, info)`` with ``with_info=True``.

    Splits: a dataset's own split files win (COCO ``instances_<split>.json``,
    VOC ``ImageSets/Main/<split>.txt``, YOLO ``images/<split>/``, LabelImg
    ``<split>.txt``); a flat LabelImg folder or a single-pool YOLO folder is
    divided by ``val_fraction`` / ``test_fraction`` (default 0.1 each, seeded
    by ``split_seed=0``; see `core.fraction_split`).

    Raises:
        DataError (a ValueError): bad source, layout, split or annotations;
            the message names the file and the problem. A folder split with
            no images, or with images but no boxes, is an error naming the
            split and the sizes of the other splits.
    """
    bounding_box_format = box_ops.check_format(bounding_box_format)
    ds, info = _read(source, split, bounding_box_format, options)
    if info.num_boxes is not None and (info.num_examples == 0 or info.num_boxes == 0):
        raise DataError(_empty_split_message(source, split, info, options))
    return (ds, info) if with_info else ds


SPLITS = ("train", "validation", "test")


def split_sizes(source, options=None, splits=SPLITS):
    """``{split: (num_images, num_boxes)}`` of a folder source; ``None`` for a split that is missing.

    Reads annotations only (``check_images=False``); ``options`` are `load`'s
    reader options (e.g. ``val_fraction``).
    """
    options = dict(options or {}, check_images=False)
    sizes = {}
    for name in splits:
        try:
            _, info = _read(source, name, "xyxy", options)
        except DataError:
            sizes[name] = None
        else:
            sizes[name] = (info.num_examples, info.num_boxes)
    return sizes


def _empty_split_message(source, split, info, options):
    what = "no images" if info.num_examples == 0 else f"{info.num_examples} images but no boxes"
    others = []
    for name, size in split_sizes(source, options, [s for s in SPLITS if s not in split_candidates(split)]).items():
        others.append(f"{name}: " + ("missing" if size is None else f"{size[0]} images, {size[1]} boxes"))
    hint = ""
    if info.name in ("labelimg", "yolo"):
        hint = (
            " A folder without split lists is divided by the val_fraction / test_fraction load "
            "options (keras-det: --val-fraction / --test-fraction)."
        )
    return f"{info.name} {source!r}: split {split!r} has {what} (other splits: {'; '.join(others)}).{hint}"


def _read(source, split, bounding_box_format, options):
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"`source` must be a string or path, got {type(source).__name__}.")
    source = os.fspath(source)
    if source == "shapes":
        ds, info = shapes.load_shapes(split, bounding_box_format, **options)
    elif os.path.exists(source) or source.startswith((".", "/", "~")) or source.endswith(".json"):
        path = os.path.expanduser(source)
        layout = detect_layout(path)
        if layout == "coco":
            json_path = path if os.path.isfile(path) else coco.find_coco(path, split)
            if json_path is None:
                ann_dir = os.path.join(path, "annotations")
                found = sorted(f for f in os.listdir(ann_dir) if f.startswith("instances_"))
                raise DataError(
                    f"COCO annotation file {os.path.join(ann_dir, f'instances_{split}.json')} "
                    f"does not exist (found: {', '.join(found)})."
                )
            ds, info = coco.read_coco(json_path, split, bounding_box_format, **options)
        elif layout == "voc":
            devkit = voc.find_devkit(path)
            ds, info = voc.read_voc_devkit(devkit, split, bounding_box_format, **options)
        elif layout == "labelimg":
            ds, info = voc.read_labelimg(path, split, bounding_box_format, **options)
        else:
            ds, info = yolo.read_yolo(path, split, bounding_box_format, **options)
    else:
        ds, info = tfds_adapter.read_tfds(source, split, bounding_box_format, **options)
    return ds, info
