"""Box-aware augmentation on unbatched data-contract elements.

Every step is a callable ``element -> element`` for ``dataset.map``, where an
element is ``{"images": float32 [H, W, 3], "bounding_boxes": {"boxes": [N, 4],
"labels": int32 [N], ...}, "masks": [N, H, W] (optional), ...}``. Steps keep
every per-box field consistent: ``labels`` and any other ``bounding_boxes``
entry (``difficult``, ``is_crowd``), ``masks`` and ``keypoints`` are gathered
with the boxes that survive; other keys (``image_id``) pass through.
Keypoints (``[N, K, 3]`` COCO ``x, y, v``, absolute pixels) move with the
pixels in `ResizePad`, `RandomExpand`, `RandomIoUCrop` and `RandomFlip`
(which also permutes the slots by the dataset's ``flip_indices``); a point
that leaves the image becomes ``(0, 0, 0)``. The Keras layers do not
transform keypoints, so `KerasLayer` refuses elements that carry them.

* `KerasLayer` wraps a Keras 3 box-aware preprocessing layer
  (``keras.layers.RandomFlip``, ``RandomTranslation``, ``RandomZoom``,
  ``RandomColorJitter``, ``RandomBrightness``, ``RandomContrast``,
  ``Resizing(pad_to_aspect_ratio=True)`` ... built with the same
  ``bounding_box_format``). Keras marks boxes that leave the image with label
  -1; the wrapper drops them. Instance masks ride along as Keras
  ``segmentation_masks`` (nearest interpolation). Use
  ``fill_mode="constant"`` for translation / zoom: Keras' default
  ``"reflect"`` mirrors objects into the border without boxes. Keras 3.15's
  ``RandomZoom`` needs a static image size (put `ResizePad` before it).
  `Compose` wraps Keras layers automatically.
* `RandomIoUCrop`: the SSD random crop (Liu et al., 2016).
* `RandomExpand`: the SSD "zoom out" onto a mean-filled canvas.
* `RandomFlip`: horizontal flip of images, boxes, masks and keypoints.
* `ResizePad`: aspect-preserving resize, padded at the bottom / right to a
  fixed size (boxes are only scaled, so predictions map back by dividing by
  the scale); the batcher uses it.
* `default_augmentation` and `ssd_augmentation` build typical pipelines.

Random draws come from a ``tf.random.Generator`` per step (seeded with
``seed``, else non-deterministic); with a parallel ``map`` the assignment of
draws to elements follows scheduling, so use ``num_parallel_calls=1`` for
bit-reproducible augmentation.
"""

import keras
import tensorflow as tf

from keras_det.ops import boxes as box_ops
from keras_det.ops import image as image_ops

IMAGENET_MEAN = (123.675, 116.28, 103.53)


def _hw(image):
    shape = tf.shape(image)
    return shape[0], shape[1]


def _to_yxyx(boxes, fmt, image):
    return box_ops.convert_format(boxes, fmt, "yxyx", image_shape=tf.shape(image)[:2])


def _from_yxyx(boxes, fmt, image):
    return box_ops.convert_format(boxes, "yxyx", fmt, image_shape=tf.shape(image)[:2])


def _check_unbatched(data, name):
    rank = data["images"].shape.rank
    if rank is not None and rank != 3:
        raise ValueError(
            f"{name} works on one element (images [H, W, 3]), got images of rank {rank}; "
            "map it over the dataset before batching."
        )


def _generator(seed):
    if seed is None:
        return tf.random.Generator.from_non_deterministic_state()
    return tf.random.Generator.from_seed(seed)


def move_keypoints(keypoints, scale_xy=(1.0, 1.0), offset_xy=(0.0, 0.0), image_hw=None):
    """Keypoints ``[N, K, 3]`` mapped by ``x' = x * sx + ox``, ``y' = y * sy + oy``.

    Unlabelled points (``v == 0``) stay ``(0, 0, 0)``; with ``image_hw``,
    points that land outside ``[0, W) x [0, H)`` become ``(0, 0, 0)`` too.
    """
    keypoints = tf.cast(keypoints, tf.float32)
    xy = keypoints[..., :2] * tf.cast(scale_xy, tf.float32) + tf.cast(offset_xy, tf.float32)
    v = keypoints[..., 2]
    labelled = v > 0
    if image_hw is not None:
        h, w = tf.cast(image_hw[0], tf.float32), tf.cast(image_hw[1], tf.float32)
        labelled &= (xy[..., 0] >= 0) & (xy[..., 0] < w) & (xy[..., 1] >= 0) & (xy[..., 1] < h)
    out = tf.concat([xy, v[..., None]], -1)
    return tf.where(labelled[..., None], out, tf.zeros_like(out))


def _with_boxes(data, image, boxes_yxyx, fmt, keep=None, masks=None, keypoints=None):
    """New element with ``image``, ``boxes`` and the per-box fields gathered by ``keep``."""
    out = dict(data)
    out["images"] = image
    bbox = dict(data["bounding_boxes"])
    for key, value in bbox.items():
        if key != "boxes" and keep is not None:
            bbox[key] = tf.gather(value, keep)
    bbox["boxes"] = _from_yxyx(boxes_yxyx, fmt, image)
    out["bounding_boxes"] = bbox
    if masks is not None:
        out["masks"] = masks
    elif "masks" in data and keep is not None:
        out["masks"] = tf.gather(data["masks"], keep)
    if keypoints is not None:
        out["keypoints"] = keypoints
    elif "keypoints" in data and keep is not None:
        out["keypoints"] = tf.gather(data["keypoints"], keep)
    return out


class KerasLayer:
    """Applies a Keras 3 box-aware preprocessing layer to one element.

    Args:
        layer: a ``keras.layers`` image preprocessing layer constructed with a
            ``bounding_box_format`` (the format of the elements' boxes).
        training: passed to the layer (``True`` applies the random transform).
    """

    def __init__(self, layer, training=True):
        if not getattr(layer, "bounding_box_format", None):
            raise ValueError(
                f"{type(layer).__name__} must be built with `bounding_box_format=` "
                "to transform boxes."
            )
        self.layer = layer
        self.training = training

    def __call__(self, data):
        _check_unbatched(data, type(self.layer).__name__)
        if "keypoints" in data:
            raise ValueError(
                f"keras.layers.{type(self.layer).__name__} does not transform keypoints; use the "
                "keypoint-aware steps of keras_det.data.augment (RandomFlip, ResizePad, RandomExpand, "
                "RandomIoUCrop) or drop the element's 'keypoints'."
            )
        if (
            isinstance(self.layer, keras.layers.RandomZoom)
            and not data["images"].shape[:2].is_fully_defined()
        ):
            # Keras 3.15's RandomZoom box transform mixes int32 / float32 when
            # the image size is dynamic; fail with a usable message instead.
            raise ValueError(
                "keras.layers.RandomZoom needs a static image size to transform boxes; "
                "put a `ResizePad` (or keras.layers.Resizing) step before it."
            )
        bbox = data["bounding_boxes"]
        n = tf.shape(bbox["labels"])[0]
        # Labels are replaced by the box index so that every per-box field can
        # be gathered afterwards; Keras sets -1 for boxes it pushes out.
        inputs = {
            "images": data["images"],
            "bounding_boxes": {
                "boxes": tf.cast(bbox["boxes"], tf.float32),
                "labels": tf.cast(tf.range(n), tf.float32),
            },
        }
        if "masks" in data:
            # [N, H, W] → [H, W, N + 1]: one spare channel so that N = 0 still
            # has a channel for the resize kernels.
            masks = tf.transpose(tf.cast(data["masks"], tf.float32), [1, 2, 0])
            inputs["segmentation_masks"] = tf.pad(masks, [[0, 0], [0, 0], [0, 1]])
        out = self.layer(inputs, training=self.training)
        index = tf.cast(tf.round(out["bounding_boxes"]["labels"]), tf.int32)
        keep = tf.where(index >= 0)[:, 0]
        result = dict(data)
        result["images"] = tf.cast(out["images"], tf.float32)
        new_bbox = {
            k: tf.gather(v, tf.gather(index, keep)) for k, v in bbox.items() if k != "boxes"
        }
        new_bbox["boxes"] = tf.gather(tf.cast(out["bounding_boxes"]["boxes"], tf.float32), keep)
        result["bounding_boxes"] = new_bbox
        if "masks" in data:
            masks = tf.transpose(out["segmentation_masks"], [2, 0, 1])[:-1]
            result["masks"] = tf.cast(
                tf.round(tf.gather(masks, tf.gather(index, keep))), data["masks"].dtype
            )
        return result


class RandomIoUCrop:
    """SSD random crop with a minimum-IoU constraint (Liu et al., 2016, sec. 2.2).

    Per element, one option is drawn uniformly from: keep the whole image,
    or crop with minimum IoU ``t`` for ``t`` in ``min_ious`` (``0.0`` meaning
    an unconstrained random crop). ``max_trials`` candidate crops are drawn
    with height and width each a uniform ``scale`` fraction of the image's,
    integer pixel offsets, and ``width / height`` in ``aspect_ratio``; the
    first candidate is taken in which some box has IoU >= ``t`` with the
    crop **and** its centre inside it (Caffe SSD's "any ground truth
    satisfies" rule). If no candidate qualifies, the image is kept whole.
    Boxes whose centre lies in the crop are kept and clipped to it; the
    others (with their labels and masks) are dropped.

    Args:
        bounding_box_format: format of the elements' boxes.
        min_ious: IoU thresholds to choose from (besides "whole image").
        scale: range of the crop side as a fraction of the image side.
        aspect_ratio: range of the crop's width / height.
        max_trials: candidate crops per element (drawn at once).
        seed: seed of the step's random generator.
    """

    def __init__(
        self,
        bounding_box_format,
        min_ious=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9),
        scale=(0.3, 1.0),
        aspect_ratio=(0.5, 2.0),
        max_trials=50,
        seed=None,
    ):
        self.fmt = box_ops.check_format(bounding_box_format)
        # -1 stands for "keep the whole image".
        self.options = tf.constant([-1.0] + [float(t) for t in min_ious], tf.float32)
        self.scale = scale
        self.aspect_ratio = aspect_ratio
        self.max_trials = int(max_trials)
        self.rng = _generator(seed)

    def __call__(self, data):
        _check_unbatched(data, "RandomIoUCrop")
        image = data["images"]
        height, width = _hw(image)
        hf, wf = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        boxes = _to_yxyx(data["bounding_boxes"]["boxes"], self.fmt, image)
        n = tf.shape(boxes)[0]
        t = self.max_trials
        min_iou = tf.gather(
            self.options, self.rng.uniform([], 0, tf.shape(self.options)[0], tf.int32)
        )
        ch = tf.maximum(tf.floor(self.rng.uniform([t], self.scale[0], self.scale[1]) * hf), 1.0)
        cw = tf.maximum(tf.floor(self.rng.uniform([t], self.scale[0], self.scale[1]) * wf), 1.0)
        y0 = tf.floor(self.rng.uniform([t]) * (hf - ch + 1.0))
        x0 = tf.floor(self.rng.uniform([t]) * (wf - cw + 1.0))
        y0 = tf.minimum(y0, hf - ch)
        x0 = tf.minimum(x0, wf - cw)
        crops = tf.stack([y0, x0, y0 + ch, x0 + cw], axis=-1)  # [T, 4]
        aspect = cw / ch
        ok = tf.logical_and(aspect >= self.aspect_ratio[0], aspect <= self.aspect_ratio[1])
        cy = (boxes[:, 0] + boxes[:, 2]) / 2.0
        cx = (boxes[:, 1] + boxes[:, 3]) / 2.0
        inside = (
            (cy[None] > crops[:, 0:1])
            & (cy[None] < crops[:, 2:3])
            & (cx[None] > crops[:, 1:2])
            & (cx[None] < crops[:, 3:4])
        )  # [T, N]
        overlaps = box_ops.iou(crops, boxes)  # [T, N]
        satisfied = tf.reduce_any(inside & (overlaps >= min_iou), axis=1) | tf.equal(n, 0)
        valid = ok & satisfied
        found = tf.reduce_any(valid) & (min_iou >= 0.0)
        first = tf.argmax(tf.cast(valid, tf.int32), output_type=tf.int32)
        crop = tf.where(found, crops[first], tf.stack([0.0, 0.0, hf, wf]))
        keep_mask = tf.where(found, inside[first], tf.ones([n], tf.bool))
        keep = tf.where(keep_mask)[:, 0]
        iy0, ix0, iy1, ix1 = tf.unstack(tf.cast(crop, tf.int32))
        new_image = image[iy0:iy1, ix0:ix1]
        kept = tf.gather(boxes, keep)
        offset = tf.stack([crop[0], crop[1], crop[0], crop[1]])
        kept = box_ops.clip(kept - offset, tf.stack([crop[2] - crop[0], crop[3] - crop[1]]))
        masks = tf.gather(data["masks"], keep)[:, iy0:iy1, ix0:ix1] if "masks" in data else None
        keypoints = None
        if "keypoints" in data:
            keypoints = move_keypoints(tf.gather(data["keypoints"], keep), offset_xy=tf.stack([-crop[1], -crop[0]]),
                                       image_hw=tf.stack([iy1 - iy0, ix1 - ix0]))
        return _with_boxes(data, new_image, kept, self.fmt, keep, masks, keypoints)


class RandomExpand:
    """SSD "expand" (zoom out): places the image on a larger mean-filled canvas.

    With probability ``probability`` a ratio ``r ~ U(1, max_ratio)`` is drawn;
    the canvas is ``floor(r H) x floor(r W)`` filled with ``fill_value``
    (per channel), the image is pasted at a random integer offset, boxes are
    shifted by it and masks padded with 0. Follow with a resize.

    Args:
        bounding_box_format: format of the elements' boxes.
        max_ratio: largest canvas / image side ratio.
        fill_value: canvas colour, default the ImageNet mean in 0..255.
        probability: chance of expanding an element.
        seed: seed of the step's random generator.
    """

    def __init__(
        self,
        bounding_box_format,
        max_ratio=4.0,
        fill_value=IMAGENET_MEAN,
        probability=0.5,
        seed=None,
    ):
        if max_ratio < 1:
            raise ValueError(f"`max_ratio` must be >= 1, got {max_ratio}.")
        self.fmt = box_ops.check_format(bounding_box_format)
        self.max_ratio = float(max_ratio)
        self.fill_value = tf.constant(fill_value, tf.float32)
        self.probability = float(probability)
        self.rng = _generator(seed)

    def __call__(self, data):
        _check_unbatched(data, "RandomExpand")
        image = data["images"]
        height, width = _hw(image)
        hf, wf = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        apply = self.rng.uniform([]) < self.probability
        ratio = tf.where(apply, self.rng.uniform([], 1.0, self.max_ratio), 1.0)
        new_h = tf.maximum(tf.cast(tf.floor(hf * ratio), tf.int32), height)
        new_w = tf.maximum(tf.cast(tf.floor(wf * ratio), tf.int32), width)
        top = tf.cast(
            tf.floor(self.rng.uniform([]) * tf.cast(new_h - height + 1, tf.float32)), tf.int32
        )
        left = tf.cast(
            tf.floor(self.rng.uniform([]) * tf.cast(new_w - width + 1, tf.float32)), tf.int32
        )
        top = tf.minimum(top, new_h - height)
        left = tf.minimum(left, new_w - width)
        paddings = [[top, new_h - height - top], [left, new_w - width - left]]
        canvas = tf.pad(image - self.fill_value, paddings + [[0, 0]]) + self.fill_value
        boxes = _to_yxyx(data["bounding_boxes"]["boxes"], self.fmt, image)
        shift = tf.cast(tf.stack([top, left, top, left]), tf.float32)
        masks = tf.pad(data["masks"], [[0, 0]] + paddings) if "masks" in data else None
        keypoints = None
        if "keypoints" in data:
            keypoints = move_keypoints(data["keypoints"], offset_xy=tf.cast(tf.stack([left, top]), tf.float32))
        return _with_boxes(data, canvas, boxes + shift, self.fmt, None, masks, keypoints)


def resize_pad(data, height, width, bounding_box_format, pad_value=0.0, interpolation="bilinear"):
    """Aspect-preserving resize into ``height x width``, padded at the bottom / right.

    The image is scaled by ``s = min(height / H, width / W)`` to
    ``round(s H) x round(s W)`` and padded with ``pad_value``; boxes are
    scaled by the exact per-axis factors (``new_h / H``, ``new_w / W``), so no
    offset is added. Masks are resized with nearest neighbour and padded
    with 0.

    Returns:
        the element with images float32 ``[height, width, 3]``.
    """
    fmt = box_ops.check_format(bounding_box_format)
    _check_unbatched(data, "resize_pad")
    image = data["images"]
    # The serving graph resizes with the same op (keras_det.ops.image).
    out_image, factors = image_ops.resize_pad(image, (height, width), pad_value, method=interpolation)
    out_image.set_shape([height, width, 3])
    boxes = _to_yxyx(data["bounding_boxes"]["boxes"], fmt, image) * tf.tile(factors, [2])
    masks = None
    if "masks" in data:
        new_hw = image_ops.fit_size(tf.shape(image)[:2], (height, width))
        m = tf.image.resize(tf.cast(data["masks"], tf.float32)[..., None], new_hw, method="nearest")
        m = tf.pad(m[..., 0], [[0, 0], [0, height - new_hw[0]], [0, width - new_hw[1]]])
        masks = tf.cast(m, data["masks"].dtype)
        masks.set_shape([None, height, width])
    keypoints = None
    if "keypoints" in data:
        keypoints = move_keypoints(data["keypoints"], scale_xy=tf.reverse(factors, [0]))
    return _with_boxes(data, out_image, boxes, fmt, None, masks, keypoints)


class RandomFlip:
    """Horizontal flip with probability ``probability``, keypoint-aware.

    Flips the image, the boxes (``x -> W - x``), the masks and the keypoints
    (``x -> W - x`` on labelled points, then the slots permuted:
    ``new[:, i] = old[:, flip_indices[i]]``, COCO's left/right swap).

    Args:
        bounding_box_format: format of the elements' boxes.
        flip_indices: ``[K]`` slot permutation of the keypoints (the
            dataset's ``DatasetInfo.keypoints["flip_indices"]``); ``None``:
            keypoints keep their slots.
        probability: chance of flipping an element.
        seed: seed of the step's random generator.
    """

    def __init__(self, bounding_box_format, flip_indices=None, probability=0.5, seed=None):
        self.fmt = box_ops.check_format(bounding_box_format)
        self.flip_indices = None if flip_indices is None else [int(i) for i in flip_indices]
        self.probability = float(probability)
        self.rng = _generator(seed)

    def __call__(self, data):
        _check_unbatched(data, "RandomFlip")
        flip = self.rng.uniform([]) < self.probability
        image = data["images"]
        width = tf.cast(_hw(image)[1], tf.float32)
        boxes = _to_yxyx(data["bounding_boxes"]["boxes"], self.fmt, image)
        y1, x1, y2, x2 = tf.unstack(boxes, axis=-1)
        flipped = tf.stack([y1, width - x2, y2, width - x1], axis=-1)
        boxes = tf.where(flip, flipped, boxes)
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        masks = keypoints = None
        if "masks" in data:
            m = data["masks"]
            masks = tf.cond(flip, lambda: tf.reverse(m, [2]), lambda: m)
        if "keypoints" in data:
            k = tf.cast(data["keypoints"], tf.float32)
            mirrored = move_keypoints(k, scale_xy=(-1.0, 1.0), offset_xy=tf.stack([width, 0.0]))
            if self.flip_indices is not None:
                mirrored = tf.gather(mirrored, self.flip_indices, axis=1)
            keypoints = tf.where(flip, mirrored, k)
        return _with_boxes(data, image, boxes, self.fmt, None, masks, keypoints)


class ResizePad:
    """`resize_pad` as a step: aspect-preserving resize, bottom / right padding.

    Args:
        image_size: ``size`` or ``(height, width)``.
        bounding_box_format: format of the elements' boxes.
        pad_value: value of the padded pixels.
    """

    def __init__(self, image_size, bounding_box_format, pad_value=0.0):
        self.height, self.width = image_ops.image_hw(image_size)
        self.fmt = box_ops.check_format(bounding_box_format)
        self.pad_value = float(pad_value)

    def __call__(self, data):
        return resize_pad(data, self.height, self.width, self.fmt, self.pad_value)


class Compose:
    """Applies steps in order; Keras layers are wrapped in `KerasLayer`.

    Args:
        steps: callables ``element -> element`` or Keras preprocessing layers.
    """

    def __init__(self, steps):
        self.steps = [KerasLayer(s) if isinstance(s, keras.layers.Layer) else s for s in steps]

    def __call__(self, data):
        for step in self.steps:
            data = step(data)
        return data


def default_augmentation(image_size, bounding_box_format="xyxy", seed=None):
    """`ResizePad`, then flip, translate, zoom, brightness/contrast (Keras layers).

    Resizing first gives the Keras layers a static image size (which
    ``RandomZoom`` needs) and makes them cheaper.

    Args:
        image_size: output ``size`` or ``(height, width)``.
        bounding_box_format: format of the elements' boxes.
        seed: base seed for the random layers.

    Returns:
        a `Compose` for ``dataset.map``.
    """
    fmt = box_ops.check_format(bounding_box_format)
    s = (lambda k: None) if seed is None else (lambda k: seed + k)
    return Compose(
        [
            ResizePad(image_size, fmt),
            keras.layers.RandomFlip("horizontal", bounding_box_format=fmt, seed=s(1)),
            keras.layers.RandomTranslation(
                0.1, 0.1, fill_mode="constant", bounding_box_format=fmt, seed=s(2)
            ),
            keras.layers.RandomZoom(
                (-0.2, 0.2), fill_mode="constant", bounding_box_format=fmt, seed=s(3)
            ),
            keras.layers.RandomColorJitter(
                value_range=(0, 255),
                brightness_factor=0.2,
                contrast_factor=0.2,
                bounding_box_format=fmt,
                seed=s(4),
            ),
        ]
    )


def ssd_augmentation(image_size, bounding_box_format="xyxy", seed=None):
    """The SSD recipe: photometric jitter, expand, min-IoU crop, flip, then `ResizePad`.

    Args:
        image_size: output ``size`` or ``(height, width)``.
        bounding_box_format: format of the elements' boxes.
        seed: base seed.

    Returns:
        a `Compose` for ``dataset.map``.
    """
    fmt = box_ops.check_format(bounding_box_format)
    s = (lambda k: None) if seed is None else (lambda k: seed + k)
    return Compose(
        [
            keras.layers.RandomColorJitter(
                value_range=(0, 255),
                brightness_factor=0.125,
                contrast_factor=0.5,
                bounding_box_format=fmt,
                seed=s(1),
            ),
            RandomExpand(fmt, seed=s(2)),
            RandomIoUCrop(fmt, seed=s(3)),
            keras.layers.RandomFlip("horizontal", bounding_box_format=fmt, seed=s(4)),
            ResizePad(image_size, fmt),
        ]
    )
