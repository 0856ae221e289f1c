"""Precomputed region proposals ↔ data-contract datasets.

The Beam pipeline ``python -m keras_det.beam.proposals`` writes one ``tf.Example``
per image (``image/source_id``, ``image/height``, ``image/width``,
``proposals/boxes`` = ``count * 4`` floats, absolute ``yxyx``,
``proposals/count``). This module

* `write_images` — writes a data-contract dataset's images as TFRecords of
  ``tf.Example`` (``image/encoded`` PNG, ``image/source_id`` = the element's
  ``image_id``) so the pipeline can run on any ``keras_det.data.load`` source;
* `read_proposals` — reads the pipeline's TFRecords into a dict keyed by
  image id;
* `join_proposals` — adds ``"proposals"`` ``[P, 4]`` (fixed ``P``, in the
  dataset's ``bounding_box_format``, zero rows as padding) to every element,
  matched on ``image_id``, which is what `FastRCNN` / `RCNN` take.

Geometry: the stored boxes are in pixels of the image the pipeline saw
(``image/height`` x ``image/width``). `join_proposals` maps them into the
element's *current* image, assuming it is either that image or a
`keras_det.data.augment.resize_pad` of it (aspect-preserving scale, padding
at the bottom / right). So join **after** any resizing (e.g.
``ds.map(ResizePad(size, fmt))`` then ``join_proposals`` then ``batch``
without ``image_size``): the augmentation functions do not move the
``"proposals"`` key, and neither do flips or crops.
"""

import numpy as np
import tensorflow as tf

from keras_det.ops import boxes as box_ops


def write_images(dataset, path, image_format="png"):
    """Writes the images of an unbatched data-contract dataset as a TFRecord file.

    Args:
        dataset: unbatched elements with ``"images"`` (float 0..255) and
            ``"image_id"``.
        path: output ``.tfrecord`` file.
        image_format: ``"png"`` (lossless, default) or ``"jpeg"``.

    Returns:
        number of images written.
    """
    if image_format not in ("png", "jpeg"):
        raise ValueError(f"`image_format` must be 'png' or 'jpeg', got {image_format!r}.")
    encode = tf.io.encode_png if image_format == "png" else tf.io.encode_jpeg
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for element in dataset:
            image = tf.cast(tf.clip_by_value(tf.round(element["images"]), 0, 255), tf.uint8)
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encode(image).numpy()])),
                "image/source_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(int(element["image_id"])).encode()])),
                "image/height": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(image.shape[0])])),
                "image/width": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(image.shape[1])])),
            }
            if "file_name" in element:
                name = element["file_name"].numpy()
                feature["image/filename"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[name]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            count += 1
    return count


_FEATURES = {
    "image/source_id": tf.io.FixedLenFeature([], tf.string),
    "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "proposals/boxes": tf.io.VarLenFeature(tf.float32),
    "proposals/count": tf.io.FixedLenFeature([], tf.int64),
    "proposals/features": tf.io.VarLenFeature(tf.float32),
    "proposals/feature_dim": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}


def read_proposals(pattern):
    """Reads proposal TFRecords written by ``keras_det.beam.proposals``.

    Args:
        pattern: a file, a glob, or a directory (its ``proposals-*.tfrecord``).

    Returns:
        dict ``{image_id (str): {"boxes": float32 [P, 4] absolute yxyx,
        "image_shape": (height, width), "file_name": str}}``, plus ``"features"`` float32
        ``[P, D]`` when the pipeline ran with ``--features``.

    Raises:
        ValueError: no file matches, a record is malformed, or an id repeats.
    """
    if tf.io.gfile.isdir(pattern):
        pattern = pattern.rstrip("/") + "/proposals-*.tfrecord"
    files = sorted(tf.io.gfile.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
    files = [f for f in files if tf.io.gfile.exists(f)]
    if not files:
        raise ValueError(f"No proposal TFRecord files match {pattern!r}.")
    out = {}
    for serialized in tf.data.TFRecordDataset(files):
        ex = tf.io.parse_single_example(serialized, _FEATURES)
        image_id = ex["image/source_id"].numpy().decode("utf-8")
        flat = tf.sparse.to_dense(ex["proposals/boxes"]).numpy()
        count = int(ex["proposals/count"])
        if flat.size != 4 * count:
            raise ValueError(f"Proposal record {image_id!r}: {flat.size} floats for count {count} (expected {4 * count}).")
        if image_id in out:
            raise ValueError(f"Image id {image_id!r} appears twice in {pattern!r}.")
        out[image_id] = {
            "boxes": flat.reshape(count, 4).astype(np.float32),
            "image_shape": (int(ex["image/height"]), int(ex["image/width"])),
            "file_name": ex["image/filename"].numpy().decode("utf-8", "surrogateescape"),
        }
        dim = int(ex["proposals/feature_dim"])
        if dim:
            out[image_id]["features"] = tf.sparse.to_dense(ex["proposals/features"]).numpy().reshape(count, dim)
    return out


def proposal_table(proposals, num_proposals):
    """Dense arrays of a `read_proposals` dict: ``(ids [K] str, boxes [K, P, 4], shapes [K, 2])``.

    Each image's boxes are truncated (best first) or zero-padded to ``P``.
    """
    ids = sorted(proposals)
    boxes = np.zeros((len(ids), int(num_proposals), 4), np.float32)
    shapes = np.zeros((len(ids), 2), np.float32)
    for i, key in enumerate(ids):
        b = np.asarray(proposals[key]["boxes"], np.float32).reshape(-1, 4)[:num_proposals]
        boxes[i, : len(b)] = b
        shapes[i] = proposals[key]["image_shape"]
    return ids, boxes, shapes


def _image_id_key(image_id):
    image_id = tf.convert_to_tensor(image_id)
    if image_id.dtype == tf.string:
        return image_id
    return tf.strings.as_string(tf.cast(image_id, tf.int64))


def join_proposals(dataset, proposals, bounding_box_format, num_proposals=2000, missing="error"):
    """Adds ``"proposals"`` to every element of an unbatched data-contract dataset.

    Args:
        dataset: unbatched elements with ``"images"`` and ``"image_id"``
            (int64, matched against the proposal ids as decimal strings, or
            a string).
        proposals: dict from `read_proposals`, or a path / glob for it.
        bounding_box_format: the dataset's box format; the proposals are
            returned in it.
        num_proposals: fixed ``P``: boxes beyond it are cut (the best are
            kept), missing rows are zeros (padding; zero area in ``yxyx``).
        missing: ``"error"`` (an element without proposals raises
            ``InvalidArgumentError`` when iterated) or ``"empty"`` (it gets
            only padding rows).

    Returns:
        the dataset with ``"proposals"`` float32 ``[P, 4]``.
    """
    fmt = box_ops.check_format(bounding_box_format)
    if missing not in ("error", "empty"):
        raise ValueError(f"`missing` must be 'error' or 'empty', got {missing!r}.")
    if not isinstance(proposals, dict):
        proposals = read_proposals(proposals)
    ids, boxes, shapes = proposal_table(proposals, num_proposals)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(ids or [""], tf.string), tf.range(max(len(ids), 1), dtype=tf.int64)),
        default_value=-1,
    )
    if not ids:
        boxes = np.zeros((1, int(num_proposals), 4), np.float32)
        shapes = np.ones((1, 2), np.float32)
    boxes_t = tf.constant(boxes)
    shapes_t = tf.constant(shapes)

    def add(element):
        key = _image_id_key(element["image_id"])
        row = table.lookup(key)
        if not ids:
            row = tf.constant(-1, tf.int64)
        if missing == "error":
            tf.debugging.assert_greater_equal(row, tf.constant(0, tf.int64), message=tf.strings.join(["no proposals for image_id ", key]))
        found = row >= 0
        safe = tf.maximum(row, 0)
        props = tf.gather(boxes_t, safe)
        stored_hw = tf.gather(shapes_t, safe)
        hw = tf.cast(tf.shape(element["images"])[:2], tf.float32)
        # resize_pad's mapping (identity when the image is unchanged).
        scale = tf.minimum(hw[0] / stored_hw[0], hw[1] / stored_hw[1])
        new_h = tf.clip_by_value(tf.round(stored_hw[0] * scale), 1.0, hw[0])
        new_w = tf.clip_by_value(tf.round(stored_hw[1] * scale), 1.0, hw[1])
        sy, sx = new_h / stored_hw[0], new_w / stored_hw[1]
        props = props * tf.stack([sy, sx, sy, sx])
        valid = (box_ops.area(props) > 0) & found
        if fmt != "yxyx":
            props = box_ops.convert_format(props, "yxyx", fmt, image_shape=tf.shape(element["images"]))
        out = dict(element)
        out["proposals"] = tf.where(valid[:, None], props, 0.0)
        return out

    return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
