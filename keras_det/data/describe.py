"""`describe`: what a dataset holds, per split and class, at the size a model trains at.

``keras-det data SOURCE`` prints `format_description(describe(SOURCE, ...))`.
"""

import numpy as np
import tensorflow as tf

from keras_det.data.augment import resize_pad
from keras_det.data.core import DataError
from keras_det.data.loader import SPLITS, load
from keras_det.ops.anchors import kmeans_anchor_sizes
from keras_det.ops.image import image_hw

PERCENTILES = (5, 25, 50, 75, 95)


def split_boxes(source, split, image_size=None, **options):
    """Boxes of one split as a model trained at ``image_size`` sees them.

    Each image goes through `augment.resize_pad` (the resize of
    `data.batch(image_size=...)` / ``keras-det train``): scaled by
    ``min(S / H, S / W)``, padded at the bottom / right.

    Args:
        source, split, **options: as for `load`.
        image_size: ``S`` or ``(height, width)``; ``None`` keeps the original
            pixels.

    Returns:
        ``(boxes, labels, image_index, image_shapes, info)``: float64
        ``[N, 4]`` ``xyxy`` in the (resized) image's pixels, int32 ``[N]``,
        int ``[N]`` the element each box belongs to, int ``[I, 2]`` original
        ``(height, width)`` of each image, and the `DatasetInfo`.
    """
    ds, info = load(source, split, "xyxy", with_info=True, **options)
    if image_size is not None:
        height, width = image_hw(image_size)

        def resized(d):
            shape = tf.shape(d["images"])[:2]
            out = resize_pad(d, int(height), int(width), "xyxy")
            return out["bounding_boxes"], shape
    else:

        def resized(d):
            return d["bounding_boxes"], tf.shape(d["images"])[:2]

    boxes, labels, index, shapes = [np.zeros((0, 4))], [np.zeros(0, np.int32)], [np.zeros(0, int)], []
    for i, (bbox, shape) in enumerate(ds.map(resized, num_parallel_calls=tf.data.AUTOTUNE).as_numpy_iterator()):
        boxes.append(bbox["boxes"].astype(np.float64))
        labels.append(bbox["labels"].astype(np.int32))
        index.append(np.full(len(bbox["labels"]), i, int))
        shapes.append(shape)
    shapes = np.asarray(shapes, int).reshape(-1, 2)
    return np.concatenate(boxes), np.concatenate(labels), np.concatenate(index), shapes, info


def _percentiles(values):
    if len(values) == 0:
        return None
    return [float(v) for v in np.percentile(values, PERCENTILES)]


def describe(source, image_size=None, num_anchors=4, splits=SPLITS, seed=0, **options):
    """Images and boxes per split and class, box sizes at ``image_size``, suggested anchor sizes.

    Args:
        source: a `load` source (folder, COCO json, ``"shapes"``, TFDS name).
        image_size: the training size ``S`` (or ``(height, width)``): box
            sizes are measured after `augment.resize_pad` to it, as training
            resizes; ``None``: original pixels.
        num_anchors: ``k`` of the k-means anchor sizes (`kmeans_anchor_sizes`
            on the ``train`` split's box widths and heights); 0 skips it.
        splits: splits to read; a split the source lacks is reported as missing.
        seed: k-means seed.
        **options: `load` options (``val_fraction``, ``class_names``, ...).

    Returns:
        dict ``{"source", "image_size", "class_names", "splits": {split:
        None (missing) or {"images", "boxes", "image_sizes" ({"HxW": count}),
        "per_class": {name: {"images", "boxes"}}, "sqrt_wh", "w", "h" (the
        5/25/50/75/95th percentiles of the boxes' sqrt(w h), w and h in
        pixels, ``None`` without boxes)}}, "anchor_sizes" (ascending, or
        ``None``), "anchor_split"}``.

    Raises:
        DataError: no split of ``splits`` could be read (the first error).
    """
    result = {"source": str(source), "image_size": image_size, "class_names": None, "splits": {}}
    wh_of = {}
    first_error = None
    for split in splits:
        try:
            boxes, labels, index, shapes, info = split_boxes(source, split, image_size, **options)
        except DataError as error:
            first_error = first_error or error
            result["splits"][split] = None
            continue
        names = tuple(info.class_names)
        result["class_names"] = list(names)
        w = boxes[:, 2] - boxes[:, 0]
        h = boxes[:, 3] - boxes[:, 1]
        wh_of[split] = np.stack([w, h], axis=1)
        sizes, counts = np.unique(shapes, axis=0, return_counts=True) if len(shapes) else ([], [])
        per_class = {}
        for i, name in enumerate(names):
            per_class[name] = {"images": len(np.unique(index[labels == i])), "boxes": int(np.sum(labels == i))}
        result["splits"][split] = {
            "images": int(len(shapes)),
            "boxes": int(len(labels)),
            "image_sizes": {f"{a}x{b}": int(c) for (a, b), c in zip(sizes, counts)},
            "per_class": per_class,
            "sqrt_wh": _percentiles(np.sqrt(w * h)),
            "w": _percentiles(w),
            "h": _percentiles(h),
        }
    if all(v is None for v in result["splits"].values()):
        raise first_error
    anchor_split = "train" if wh_of.get("train") is not None else next(iter(wh_of))
    result["anchor_split"] = anchor_split
    result["anchor_sizes"] = None
    wh = wh_of[anchor_split]
    wh = wh[(wh[:, 0] > 0) & (wh[:, 1] > 0)]
    if num_anchors and len(wh) >= num_anchors:
        result["anchor_sizes"] = [round(float(s), 1) for s in kmeans_anchor_sizes(wh, num_anchors, seed=seed)]
    return result


def format_description(description):
    """The text ``keras-det data`` prints for a `describe` result."""
    d = description
    size = d["image_size"]
    at = f" at {size}x{size} (resize_pad, as training resizes)" if isinstance(size, int) else (
        f" at {size[0]}x{size[1]} (resize_pad)" if size else " (original pixels)")
    lines = [f"{d['source']}: {len(d['class_names'] or [])} classes ({', '.join(d['class_names'] or [])})"]
    names = d["class_names"] or []
    width = max([len(n) for n in names] + [9])
    for split, s in d["splits"].items():
        if s is None:
            lines.append(f"\n{split}: missing")
            continue
        shapes = ", ".join(f"{k} ({v})" for k, v in sorted(s["image_sizes"].items(), key=lambda kv: -kv[1])[:3])
        lines.append(f"\n{split}: {s['images']} images, {s['boxes']} boxes; image sizes HxW: {shapes}")
        lines.append(f"  {'class':<{width}}  images  boxes")
        for name in names:
            c = s["per_class"][name]
            lines.append(f"  {name:<{width}}  {c['images']:>6}  {c['boxes']:>5}")
        if s["sqrt_wh"] is not None:
            lines.append(f"  box size{at}, percentiles {'/'.join(map(str, PERCENTILES))}:")
            for key, label in (("sqrt_wh", "sqrt(w*h)"), ("w", "w"), ("h", "h")):
                lines.append(f"    {label:<9} " + " ".join(f"{v:7.1f}" for v in s[key]))
    if d.get("anchor_sizes"):
        sizes = ", ".join(f"{v:g}" for v in d["anchor_sizes"])
        lines.append(
            f"\nsuggested anchor sizes (k-means, 1 - IoU, on {d['anchor_split']} boxes{at}): {sizes}"
            f"\n  keras-det train ... --image-size {size if isinstance(size, int) else 'S'} --anchor-sizes "
            + " ".join(f"{v:g}" for v in d["anchor_sizes"])
        )
    return "\n".join(lines)
