"""``shapes``: the embedded synthetic detection set (no files, no network).

Every image is generated from ``(seed, split, index)`` with NumPy and OpenCV,
so a split is identical across runs and machines, and the first ``k``
images of a split do not depend on ``num_images``. The splits use different
random streams, so they do not overlap.

Content of one image (``image_size`` x ``image_size``, RGB):
  * a textured background: a smooth random colour field (a 4x4 grid of
    colours, bicubically upsampled), a few random lines of clutter and
    Gaussian pixel noise;
  * 1 to ``max_objects`` (default 8) objects of `CLASS_NAMES`
    (circle, square, triangle, star, cross), randomly rotated, with
    sizes from 8 px up to 60% of the image side (log-uniform, so small
    objects are common), each in a random colour with its own noise.

Occlusion policy: objects are painted in order, later ones over earlier
ones. An object whose placement would leave any earlier object with less
than half of its own area visible (or fewer than 16 visible pixels) is
rejected and re-sampled (up to 20 tries), so every painted object is
annotated and no annotated object is mostly hidden. Boxes are the extent
of the **visible** pixels (the tight box of the instance mask), in
continuous pixel coordinates (a box ``[x1, y1, x2, y2]`` covers pixel
columns ``x1 .. x2 - 1``). Instance masks are the visible pixels, so masks
of one image never overlap.

Elements follow the data contract, plus ``"masks"`` (uint8 ``[N, H, W]``,
0/1) when ``with_masks=True``, ``"keypoints"`` (float32 ``[N, K, 3]``) when
``with_keypoints=True`` and ``"image_id"`` (int64, the index in the split).

Keypoints (COCO layout ``(x, y, v)``, absolute continuous pixels like the
boxes, so a cv2 vertex at pixel ``(i, j)`` is ``(i + 0.5, j + 0.5)``): the
same `NUM_KEYPOINTS` = 6 slots for every class, one place defines them
(`KEYPOINT_NAMES`, `KEYPOINT_FLIP_INDICES`, `KEYPOINT_SIGMAS`,
`KEYPOINT_SKELETON`, `keypoint_metadata`). The points of an object are
  * triangle: its 3 vertices; square: its 4 corners; star: its 5 tips;
    cross: the centres of its 4 arm ends; circle: the 4 compass points
    (top, right, bottom, left of the circle, in the image frame);
placed in the slots by geometry, not by the random rotation: slot 0
(``top``) is the topmost point, slots 1, 2 (``cw1``, ``cw2``) the next
points clockwise on screen, slots 5, 4 (``ccw1``, ``ccw2``) the next ones
counter-clockwise, slot 3 (``opposite``) the point opposite ``top`` of a
4-point object. Unused slots are ``(0, 0, 0)``: triangles use 0, 1, 5;
squares, crosses and circles 0, 1, 3, 5; stars 0, 1, 2, 4, 5. A horizontal
flip keeps ``top`` and ``opposite`` and turns clockwise into
counter-clockwise, so it is the fixed slot permutation
`KEYPOINT_FLIP_INDICES` ``(0, 5, 4, 3, 2, 1)`` (COCO's left/right swap);
resizing, padding and translation keep the order. (The one discontinuity:
a rotation that makes two points equally high swaps which one is ``top``.)

Visibility: ``v = 0`` (and ``x = y = 0``) for a slot the class does not use
or a point outside the image (``x`` or ``y`` outside ``[0, S)``); ``v = 1``
(labelled, occluded) when the pixel under the point shows a later-painted
object; ``v = 2`` otherwise (the point's pixel shows the object itself, an
earlier object or the background: vertices sit on the outline). Boxes are
the visible extent, so an occluded (``v = 1``) point may lie outside its
object's box (137 of 177 in 200 training images; visible points at most
1 px outside, on the box's edge).
"""

import functools
import math
import zlib

import cv2
import numpy as np
import tensorflow as tf

from keras_det.data.core import DatasetInfo
from keras_det.ops import boxes as box_ops

CLASS_NAMES = ("circle", "square", "triangle", "star", "cross")
DEFAULT_NUM_IMAGES = {"train": 1000, "validation": 200, "test": 200}
_SPLIT_CODES = {"train": 0, "validation": 1, "val": 1, "test": 2}
_MIN_VISIBLE_FRACTION = 0.5
_MIN_PIXELS = 16
_MAX_TRIES = 20

# -- keypoints: the one place that defines them (see the module docstring) ---
KEYPOINT_NAMES = ("top", "cw1", "cw2", "opposite", "ccw2", "ccw1")
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
# new[slot] = old[KEYPOINT_FLIP_INDICES[slot]] under a horizontal flip.
KEYPOINT_FLIP_INDICES = (0, 5, 4, 3, 2, 1)
# OKS sigma of every slot (uniform: the points are all sharp corners / tips).
# A prediction ``d`` px away scores exp(-d**2 / (8 sigma**2 area)): OKS 0.5 at
# d = 0.118 sqrt(area), i.e. 2.4 px on a 20 x 20 box, 7 px on a 60 x 60 one
# (COCO's person sigmas are 0.025 for eyes to 0.107 for hips).
KEYPOINT_SIGMAS = (0.05,) * NUM_KEYPOINTS
# Outline edges (1-based, COCO's `skeleton` convention): the slots in
# clockwise order, consecutive used slots joined.
KEYPOINT_SKELETON = ((1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 1))
# The slots of an object with n points, in clockwise order from `top`.
_SLOTS = {3: (0, 1, 5), 4: (0, 1, 3, 5), 5: (0, 1, 2, 4, 5)}


def keypoint_metadata():
    """The keypoint definition of ``shapes`` as a dict.

    Returns:
        ``{"names", "flip_indices", "sigmas", "skeleton", "slots"}``:
        `KEYPOINT_NAMES`, `KEYPOINT_FLIP_INDICES`, `KEYPOINT_SIGMAS`,
        `KEYPOINT_SKELETON` and per class name the slots it uses.
    """
    counts = {"circle": 4, "square": 4, "triangle": 3, "star": 5, "cross": 4}
    return {
        "names": KEYPOINT_NAMES,
        "flip_indices": KEYPOINT_FLIP_INDICES,
        "sigmas": KEYPOINT_SIGMAS,
        "skeleton": KEYPOINT_SKELETON,
        "slots": {name: _SLOTS[counts[name]] for name in CLASS_NAMES},
    }


def _split_code(split):
    if split in _SPLIT_CODES:
        return _SPLIT_CODES[split]
    return 1000 + zlib.crc32(split.encode()) % 1_000_000


def _polygon(class_name, cx, cy, radius, angle):
    """Vertices (int32 [K, 2]) of a shape of circumradius ``radius``."""
    if class_name == "square":
        t = angle + np.arange(4) * math.pi / 2 + math.pi / 4
        r = np.full(4, radius)
    elif class_name == "triangle":
        t = angle + np.arange(3) * 2 * math.pi / 3
        r = np.full(3, radius)
    elif class_name == "star":
        t = angle + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, radius, radius * 0.42)
    elif class_name == "cross":
        a = 0.33  # half arm width relative to radius
        xs = np.array([a, a, 1, 1, a, a, -a, -a, -1, -1, -a, -a]) * radius
        ys = np.array([1, a, a, -a, -a, -1, -1, -a, -a, a, a, 1]) * radius
        ca, sa = math.cos(angle), math.sin(angle)
        px, py = cx + xs * ca - ys * sa, cy + xs * sa + ys * ca
        return np.round(np.stack([px, py], -1) * 16).astype(np.int32)
    else:
        raise ValueError(class_name)
    px, py = cx + r * np.cos(t), cy + r * np.sin(t)
    return np.round(np.stack([px, py], -1) * 16).astype(np.int32)


def _shape_points(class_name, cx, cy, radius, angle):
    """The keypoints (float64 ``[n, 2]`` cv2 pixel coordinates) of a shape, in any order."""
    if class_name == "circle":
        return np.array([[cx, cy - radius], [cx + radius, cy], [cx, cy + radius], [cx - radius, cy]])
    if class_name == "cross":
        xs, ys = np.array([0.0, 1, 0, -1]) * radius, np.array([1.0, 0, -1, 0]) * radius
        ca, sa = math.cos(angle), math.sin(angle)
        return np.stack([cx + xs * ca - ys * sa, cy + xs * sa + ys * ca], -1)
    n, step = {"square": (4, 1), "triangle": (3, 1), "star": (5, 2)}[class_name]
    t = angle + np.arange(n * step)[::step] * {"square": math.pi / 2, "triangle": 2 * math.pi / 3,
                                              "star": math.pi / 5}[class_name]
    if class_name == "square":
        t = t + math.pi / 4
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], -1)


def _slot_points(points, cx, cy):
    """``[NUM_KEYPOINTS, 2]`` with ``points`` in their slots (topmost, then clockwise) and the used slots."""
    top = int(np.lexsort((points[:, 0], points[:, 1]))[0])  # smallest y, then smallest x
    theta = np.arctan2(points[:, 1] - cy, points[:, 0] - cx)  # y down: increasing = clockwise on screen
    order = np.argsort(np.mod(theta - theta[top], 2 * math.pi), kind="stable")
    order = np.concatenate([[top], order[order != top]])
    slots = _SLOTS[len(points)]
    out = np.zeros((NUM_KEYPOINTS, 2))
    out[list(slots)] = points[order]
    return out, slots


def _keypoints(objects, idmap):
    """COCO keypoints float32 ``[N, NUM_KEYPOINTS, 3]`` of the painted ``objects`` (see the module docstring)."""
    size = idmap.shape[0]
    out = np.zeros((len(objects), NUM_KEYPOINTS, 3), np.float32)
    for k, (class_name, cx, cy, radius, angle) in enumerate(objects):
        xy, slots = _slot_points(_shape_points(class_name, cx, cy, radius, angle), cx, cy)
        for slot in slots:
            x, y = xy[slot] + 0.5  # cv2 pixel centres are integers; boxes' pixel i covers [i, i + 1)
            if not (0 <= x < size and 0 <= y < size):
                continue
            occluded = idmap[int(y), int(x)] > k + 1
            out[k, slot] = (x, y, 1 if occluded else 2)
    return out


def _shape_mask(class_name, size, cx, cy, radius, angle):
    mask = np.zeros((size, size), np.uint8)
    if class_name == "circle":
        cv2.circle(
            mask,
            (int(round(cx * 16)), int(round(cy * 16))),
            int(round(radius * 16)),
            1,
            -1,
            lineType=cv2.LINE_8,
            shift=4,
        )
    else:
        cv2.fillPoly(
            mask, [_polygon(class_name, cx, cy, radius, angle)], 1, lineType=cv2.LINE_8, shift=4
        )
    return mask.astype(bool)


def _background(rng, size):
    grid = rng.uniform(0, 255, (4, 4, 3)).astype(np.float32)
    image = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    for _ in range(rng.integers(0, 6)):
        p1 = tuple(int(v) for v in rng.integers(0, size, 2))
        p2 = tuple(int(v) for v in rng.integers(0, size, 2))
        color = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.line(image, p1, p2, color, int(rng.integers(1, 3)))
    image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(3, 15))
    return image


def _generate_one(rng, size, min_objects, max_objects):
    image = _background(rng, size)
    idmap = np.zeros((size, size), np.uint8)
    full_areas = []
    visible = np.zeros(0, np.int64)  # visible pixels of each object so far
    labels, objects = [], []
    target = int(rng.integers(min_objects, max_objects + 1))
    min_r, max_r = 4.0, 0.3 * size
    for _ in range(target):
        for _try in range(_MAX_TRIES):
            label = int(rng.integers(len(CLASS_NAMES)))
            radius = float(math.exp(rng.uniform(math.log(min_r), math.log(max_r))))
            cx = float(rng.uniform(radius, size - radius))
            cy = float(rng.uniform(radius, size - radius))
            angle = float(rng.uniform(0, 2 * math.pi))
            mask = _shape_mask(CLASS_NAMES[label], size, cx, cy, radius, angle)
            area = int(mask.sum())
            if area < _MIN_PIXELS:
                continue
            left = visible
            if labels:
                hidden = np.bincount(idmap[mask], minlength=len(labels) + 1)[1:]
                left = visible - hidden
                if np.any(
                    left < np.maximum(_MIN_VISIBLE_FRACTION * np.array(full_areas), _MIN_PIXELS)
                ):
                    continue
            color = rng.uniform(0, 255, 3).astype(np.float32)
            # Keep some contrast with the background under the object.
            if np.abs(image[mask].mean(0) - color).max() < 60:
                color = (color + 128) % 256
            noise = rng.standard_normal((area, 3), dtype=np.float32) * np.float32(
                rng.uniform(2, 10)
            )
            image[mask] = color + noise
            idmap[mask] = len(labels) + 1
            visible = np.append(left, area)
            full_areas.append(area)
            labels.append(label)
            objects.append((CLASS_NAMES[label], cx, cy, radius, angle))
            break
    boxes = np.zeros((len(labels), 4), np.float32)
    for k in range(len(labels)):
        ys, xs = np.nonzero(idmap == k + 1)
        boxes[k] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image, idmap, boxes, np.asarray(labels, np.int32), _keypoints(objects, idmap)


@functools.lru_cache(maxsize=8)
def generate(num_images, image_size=128, seed=0, split="train", min_objects=1, max_objects=8):
    """Generates a split as NumPy arrays (cached for repeated calls).

    Returns:
        dict with ``images`` uint8 ``[num, S, S, 3]``, ``idmaps`` uint8
        ``[num, S, S]`` (0 background, ``k + 1`` visible pixels of object
        ``k``), ``boxes`` float32 ``[total, 4]`` absolute ``xyxy``, ``labels``
        int32 ``[total]``, ``keypoints`` float32 ``[total, NUM_KEYPOINTS, 3]``
        (COCO ``x, y, v``, see the module docstring), ``row_splits`` int64
        ``[num + 1]``.
    """
    if not 1 <= min_objects <= max_objects <= 254:
        raise ValueError(
            f"Need 1 <= min_objects <= max_objects <= 254, got {min_objects}, {max_objects}."
        )
    if image_size < 32:
        raise ValueError(f"`image_size` must be at least 32, got {image_size}.")
    code = _split_code(split)
    images = np.zeros((num_images, image_size, image_size, 3), np.uint8)
    idmaps = np.zeros((num_images, image_size, image_size), np.uint8)
    all_boxes, all_labels, all_keypoints, counts = [], [], [], []
    for i in range(num_images):
        rng = np.random.default_rng([seed, code, i])
        images[i], idmaps[i], b, l, k = _generate_one(rng, image_size, min_objects, max_objects)
        all_boxes.append(b)
        all_labels.append(l)
        all_keypoints.append(k)
        counts.append(len(l))
    for arr in (images, idmaps):
        arr.setflags(write=False)
    return {
        "images": images,
        "idmaps": idmaps,
        "boxes": np.concatenate(all_boxes).reshape(-1, 4),
        "labels": np.concatenate(all_labels),
        "keypoints": np.concatenate(all_keypoints).reshape(-1, NUM_KEYPOINTS, 3),
        "row_splits": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    }


def load_shapes(
    split="train",
    bounding_box_format="xyxy",
    num_images=None,
    image_size=128,
    seed=0,
    with_masks=True,
    min_objects=1,
    max_objects=8,
    with_keypoints=False,
):
    """The ``shapes`` split as an unbatched data-contract dataset.

    Args:
        split: ``"train"``, ``"validation"`` (alias ``"val"``), ``"test"`` or
            any other name (its own random stream).
        bounding_box_format: format of the output boxes.
        num_images: images in the split (default 1000 for train, 200 otherwise).
        image_size: side of the square images in pixels (>= 32).
        seed: base seed; splits derive their streams from it.
        with_masks: add ``"masks"`` uint8 ``[N, S, S]``.
        min_objects, max_objects: objects per image (fewer when an image is
            too crowded to place them under the occlusion policy).
        with_keypoints: add ``"keypoints"`` float32 ``[N, NUM_KEYPOINTS, 3]``
            (COCO ``x, y, v``, absolute pixels whatever the box format; see
            the module docstring), and the keypoint definition to the info.

    Returns:
        ``(dataset, DatasetInfo)``.
    """
    fmt = box_ops.check_format(bounding_box_format)
    if num_images is None:
        num_images = DEFAULT_NUM_IMAGES.get(split, 200)
    data = generate(
        int(num_images), int(image_size), int(seed), split, int(min_objects), int(max_objects)
    )
    boxes_t = tf.constant(data["boxes"])
    labels_t = tf.constant(data["labels"])
    keypoints_t = tf.constant(data["keypoints"])
    splits = data["row_splits"]
    image_shape = (image_size, image_size)
    slices = {
        "images": data["images"],
        "idmap": data["idmaps"],
        "start": splits[:-1],
        "end": splits[1:],
        "image_id": np.arange(num_images, dtype=np.int64),
        "file_name": np.array([f"{split}/{i:06d}.png" for i in range(num_images)], dtype=str),
    }

    def to_contract(item):
        boxes = boxes_t[item["start"] : item["end"]]
        if fmt != "xyxy":
            boxes = box_ops.convert_format(boxes, "xyxy", fmt, image_shape=image_shape)
        out = {
            "images": tf.cast(item["images"], tf.float32),
            "bounding_boxes": {"boxes": boxes, "labels": labels_t[item["start"] : item["end"]]},
            "image_id": item["image_id"],
            "file_name": item["file_name"],
        }
        if with_masks:
            n = tf.cast(item["end"] - item["start"], tf.int32)
            ids = tf.range(1, n + 1, dtype=tf.int32)[:, None, None]
            out["masks"] = tf.cast(tf.equal(tf.cast(item["idmap"], tf.int32)[None], ids), tf.uint8)
        if with_keypoints:
            out["keypoints"] = keypoints_t[item["start"] : item["end"]]
        return out

    ds = tf.data.Dataset.from_tensor_slices(slices).map(
        to_contract, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    info = DatasetInfo(
        name="shapes",
        split=split,
        class_names=CLASS_NAMES,
        bounding_box_format=fmt,
        num_examples=int(num_images),
        source="shapes",
        keypoints=keypoint_metadata() if with_keypoints else None,
    )
    return ds, info
