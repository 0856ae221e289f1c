"""TensorFlow Datasets adapter: ``load("voc/2007", "train")``, ``load("coco/2017", "validation")``.

Any TFDS detection builder whose features have ``image`` and
``objects/{bbox, label}`` works (``bbox`` is TFDS' normalized
``[ymin, xmin, ymax, xmax]``). Class names come from the builder's
``objects/label`` ``ClassLabel`` (TFDS order: alphabetical VOC classes, the
80 COCO category names in category-id order). ``image_id`` is
``image/id`` when the builder has it (COCO), else the digits of
``image/filename``'s stem (VOC ``000005.jpg`` → 5, ``2008_000123.jpg`` →
2008000123), else -1.

COCO ``objects/is_crowd`` boxes are dropped unless ``include_crowd=True``
(then ``bounding_boxes["is_crowd"]``); VOC ``objects/is_difficult`` is carried
as ``bounding_boxes["difficult"]``. Boxes are clipped to the image and
zero-area boxes dropped in-graph (no count: TFDS data is already validated).
Options ``data_dir``, ``download`` (default ``False``: no network unless
asked) and ``read_config`` are passed to ``tfds.load``.
"""

import tensorflow as tf
import tensorflow_datasets as tfds

from keras_det.data.core import DataError, DatasetInfo
from keras_det.ops import boxes as box_ops


def read_tfds(
    name,
    split,
    bounding_box_format="xyxy",
    data_dir=None,
    download=False,
    include_crowd=False,
    skip_empty=False,
    shuffle_files=False,
    num_parallel_calls=None,
    read_config=None,
):
    """Loads a TFDS detection dataset as ``(dataset, DatasetInfo)``; see the module docstring."""
    fmt = box_ops.check_format(bounding_box_format)
    tfds_split = {"val": "validation"}.get(split, split)
    try:
        ds, tinfo = tfds.load(
            name,
            split=tfds_split,
            with_info=True,
            data_dir=data_dir,
            download=download,
            shuffle_files=shuffle_files,
            read_config=read_config,
        )
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataError(
            f"{name!r} is neither 'shapes', an existing folder, nor a TFDS dataset name ({e})."
        ) from None
    features = tinfo.features
    objects = features["objects"] if "objects" in features else {}
    if "bbox" not in objects or "label" not in objects:
        raise DataError(
            f"TFDS dataset {name!r} has no objects/bbox and objects/label features; "
            "not a detection set."
        )
    object_keys = set(features["objects"].keys())
    class_names = tuple(features["objects"]["label"].names)

    def to_contract(ex):
        image = tf.cast(ex["image"], tf.float32)
        if image.shape.rank == 3 and image.shape[-1] == 1:
            image = tf.image.grayscale_to_rgb(image)
        obj = ex["objects"]
        # Per-object features have one length in real data; take the shortest
        # so that mock / malformed examples stay consistent.
        n = tf.shape(obj["bbox"])[0]
        n = tf.minimum(n, tf.shape(obj["label"])[0])
        for key in ("is_crowd", "is_difficult"):
            if key in object_keys:
                n = tf.minimum(n, tf.shape(obj[key])[0])
        rel = tf.clip_by_value(tf.cast(obj["bbox"][:n], tf.float32), 0.0, 1.0)
        labels = tf.cast(obj["label"][:n], tf.int32)
        keep = tf.logical_and(rel[:, 2] > rel[:, 0], rel[:, 3] > rel[:, 1])
        extras = {}
        if "is_crowd" in object_keys:
            crowd = tf.cast(obj["is_crowd"][:n], tf.bool)
            if include_crowd:
                extras["is_crowd"] = crowd
            else:
                keep = tf.logical_and(keep, tf.logical_not(crowd))
        if "is_difficult" in object_keys:
            extras["difficult"] = tf.cast(obj["is_difficult"][:n], tf.bool)
        rel = tf.boolean_mask(rel, keep)
        boxes = box_ops.convert_format(rel, "rel_yxyx", fmt, image_shape=tf.shape(image)[:2])
        bbox = {"boxes": boxes, "labels": tf.boolean_mask(labels, keep)}
        for k, v in extras.items():
            bbox[k] = tf.boolean_mask(v, keep)
        if "image/id" in ex:
            image_id = tf.cast(ex["image/id"], tf.int64)
        elif "image/filename" in ex:
            stem = tf.strings.regex_replace(ex["image/filename"], r"\.[^.]*$", "")
            digits = tf.strings.regex_replace(stem, r"[^0-9]", "")
            # At most 18 digits (the last ones) so that the number fits int64.
            digits = tf.strings.substr(digits, tf.maximum(tf.strings.length(digits) - 18, 0), 18)
            image_id = tf.cond(
                tf.strings.length(digits) > 0,
                lambda: tf.strings.to_number(digits, tf.int64),
                lambda: tf.constant(-1, tf.int64),
            )
        else:
            image_id = tf.constant(-1, tf.int64)
        file_name = ex["image/filename"] if "image/filename" in ex else tf.constant("")
        return {"images": image, "bounding_boxes": bbox, "image_id": image_id, "file_name": file_name}

    ds = ds.map(
        to_contract, num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE, deterministic=True
    )
    if skip_empty:
        ds = ds.filter(lambda e: tf.shape(e["bounding_boxes"]["labels"])[0] > 0)
    try:
        num = int(tinfo.splits[tfds_split].num_examples)
    except Exception:  # mock data or a split expression
        num = None
    info = DatasetInfo(
        name=name,
        split=split,
        class_names=class_names,
        bounding_box_format=fmt,
        num_examples=num,
        source=name,
    )
    return ds, info
