"""Augmentation keeps boxes (and masks) consistent with the pixels.

A filled white rectangle on a black image is augmented; the transformed box
must enclose the white pixels and the white pixels must fill it (to ~1 px of
interpolation), and the instance mask must cover the same extent.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import data as kd
from keras_det.ops import boxes as B

H, W = 72, 112
BOX = np.array([30.0, 20.0, 70.0, 50.0], np.float32)  # xyxy
SMALL = np.array(
    [90.0, 60.0, 96.0, 66.0], np.float32
)  # a second box, only as a per-box field check


def _element(fmt):
    image = np.zeros((H, W, 3), np.float32)
    x1, y1, x2, y2 = BOX.astype(int)
    image[y1:y2, x1:x2] = 255.0
    masks = np.zeros((2, H, W), np.uint8)
    masks[0, y1:y2, x1:x2] = 1
    sx1, sy1, sx2, sy2 = SMALL.astype(int)
    masks[1, sy1:sy2, sx1:sx2] = 1
    boxes = B.convert_format(np.stack([BOX, SMALL]), "xyxy", fmt, image_shape=(H, W))
    return {
        "images": tf.constant(image),
        "bounding_boxes": {
            "boxes": boxes,
            "labels": tf.constant([3, 1], tf.int32),
            "difficult": tf.constant([True, False]),
        },
        "masks": tf.constant(masks),
        "image_id": tf.constant(7, tf.int64),
    }


def _extent(binary):
    ys, xs = np.nonzero(binary)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def _check(out, fmt, tol=1.5):
    """Returns True if the white box survived (and checks it), False if it was dropped."""
    image = out["images"].numpy()
    assert image.dtype == np.float32 and image.ndim == 3
    labels = out["bounding_boxes"]["labels"].numpy()
    assert labels.dtype == np.int32
    boxes = B.convert_format(
        out["bounding_boxes"]["boxes"], fmt, "xyxy", image_shape=image.shape[:2]
    ).numpy()
    masks = out["masks"].numpy()
    n = len(labels)
    assert boxes.shape == (n, 4) and masks.shape == (n,) + image.shape[:2]
    assert out["bounding_boxes"]["difficult"].numpy().tolist() == [bool(lab == 3) for lab in labels]
    assert int(out["image_id"]) == 7
    if 3 not in labels:
        return False
    k = int(np.where(labels == 3)[0][0])
    white = image.mean(-1) > 127
    np.testing.assert_allclose(boxes[k], _extent(white), atol=tol)
    np.testing.assert_allclose(boxes[k], _extent(masks[k] > 0), atol=tol)
    return True


def _run(step, fmt, seeds=range(6)):
    kept = 0
    for _ in seeds:
        out = step(_element(fmt))
        kept += _check(out, fmt)
    return kept


@pytest.mark.parametrize("fmt", ("xyxy", "rel_yxyx", "center_xywh"))
def test_keras_flip(fmt):
    flip = kd.KerasLayer(
        keras.layers.RandomFlip("horizontal_and_vertical", bounding_box_format=fmt, seed=1)
    )
    assert _run(flip, fmt) == 6


@pytest.mark.parametrize("fmt", ("xyxy", "rel_xyxy"))
def test_keras_translate_and_zoom(fmt):
    step = kd.Compose(
        [
            keras.layers.RandomTranslation(
                0.2, 0.2, fill_mode="constant", bounding_box_format=fmt, seed=2
            ),
            keras.layers.RandomZoom(
                (-0.3, 0.3), fill_mode="constant", bounding_box_format=fmt, seed=3
            ),
        ]
    )
    assert _run(step, fmt) >= 4


def test_keras_resizing_pad_to_aspect_ratio():
    step = kd.KerasLayer(
        keras.layers.Resizing(64, 64, pad_to_aspect_ratio=True, bounding_box_format="xyxy")
    )
    out = step(_element("xyxy"))
    assert out["images"].shape == (64, 64, 3)
    assert _check(out, "xyxy", tol=1.5)


def test_color_jitter_keeps_boxes():
    step = kd.KerasLayer(
        keras.layers.RandomColorJitter(
            value_range=(0, 255), brightness_factor=0.1, bounding_box_format="xyxy", seed=0
        )
    )
    out = step(_element("xyxy"))
    np.testing.assert_allclose(out["bounding_boxes"]["boxes"][0], BOX)


@pytest.mark.parametrize("fmt", ("xyxy", "rel_yxyx"))
def test_ssd_iou_crop(fmt):
    crop = kd.RandomIoUCrop(fmt, seed=4)
    kept = 0
    sizes = set()
    for _ in range(12):
        out = crop(_element(fmt))
        kept += _check(out, fmt)
        sizes.add(tuple(out["images"].shape[:2]))
        # Kept boxes have their centre in the crop; they are clipped to it.
        h, w = out["images"].shape[:2]
        boxes = B.convert_format(
            out["bounding_boxes"]["boxes"], fmt, "xyxy", image_shape=(h, w)
        ).numpy()
        assert (
            np.all(boxes >= -1e-4)
            and np.all(boxes[:, [0, 2]] <= w + 1e-4)
            and np.all(boxes[:, [1, 3]] <= h + 1e-4)
        )
    assert kept >= 6 and len(sizes) > 2  # some crops happened, the object usually survives


def test_ssd_iou_crop_min_iou_respected():
    crop = kd.RandomIoUCrop("xyxy", min_ious=(0.7,), seed=5)
    for _ in range(8):
        out = crop(_element("xyxy"))
        h, w = out["images"].shape[:2]
        if (h, w) == (H, W):
            continue
        # The big box has IoU >= 0.7 with the crop (in original coordinates the crop holds the box).
        assert 3 in out["bounding_boxes"]["labels"].numpy()
        box = out["bounding_boxes"]["boxes"].numpy()[0]
        assert (box[2] - box[0]) * (box[3] - box[1]) >= 0.7 * h * w - 1e-3


def test_ssd_iou_crop_no_boxes():
    e = _element("xyxy")
    e["bounding_boxes"] = {k: v[:0] for k, v in e["bounding_boxes"].items()}
    e["masks"] = e["masks"][:0]
    out = kd.RandomIoUCrop("xyxy", seed=0)(e)
    assert out["bounding_boxes"]["boxes"].shape == (0, 4)


@pytest.mark.parametrize("fmt", ("xyxy", "rel_xyxy"))
def test_ssd_expand(fmt):
    expand = kd.RandomExpand(fmt, max_ratio=3.0, fill_value=(0, 0, 0), probability=1.0, seed=6)
    for _ in range(4):
        out = expand(_element(fmt))
        h, w = out["images"].shape[:2]
        assert h >= H and w >= W
        assert _check(out, fmt, tol=1e-3)


@pytest.mark.parametrize("fmt", ("xyxy", "rel_yxyx", "xywh"))
def test_resize_pad(fmt):
    out = kd.ResizePad((96, 48), fmt)(_element(fmt))
    assert out["images"].shape == (96, 48, 3) and out["masks"].shape == (2, 96, 48)
    assert _check(out, fmt, tol=1.0)
    # Aspect ratio kept: 72 x 112 → scale 48 / 112; padding at the bottom is zero.
    assert np.all(out["images"].numpy()[32:] == 0)


@pytest.mark.parametrize("factory", (kd.default_augmentation, kd.ssd_augmentation))
def test_recipes_in_tf_data(factory):
    aug = factory(80, "xyxy", seed=1)
    ds = tf.data.Dataset.from_tensors(_element("xyxy")).repeat(6).map(aug)
    for out in ds:
        assert out["images"].shape == (80, 80, 3)
        # Colour jitter changes intensities; the box must still bound the bright pixels.
        image = out["images"].numpy()
        labels = out["bounding_boxes"]["labels"].numpy()
        if 3 in labels:
            k = int(np.where(labels == 3)[0][0])
            np.testing.assert_allclose(
                out["bounding_boxes"]["boxes"].numpy()[k],
                _extent(out["masks"].numpy()[k] > 0),
                atol=1.5,
            )
        assert image.shape == (80, 80, 3)


def test_keras_layer_needs_box_format():
    with pytest.raises(ValueError, match="bounding_box_format"):
        kd.KerasLayer(keras.layers.RandomFlip())


def _dynamic_dataset(fmt):
    e = {k: v for k, v in _element(fmt).items()}
    sig = tf.nest.map_structure(lambda t: tf.TensorSpec([None] * t.shape.rank, t.dtype), e)
    sig["image_id"] = tf.TensorSpec([], tf.int64)
    sig["images"] = tf.TensorSpec([None, None, 3], tf.float32)
    sig["bounding_boxes"]["boxes"] = tf.TensorSpec([None, 4], tf.float32)
    return tf.data.Dataset.from_generator(
        lambda: iter([tf.nest.map_structure(lambda t: t.numpy(), e)]), output_signature=sig
    )


@pytest.mark.parametrize("factory", (kd.default_augmentation, kd.ssd_augmentation))
def test_recipes_on_dynamic_image_sizes(factory):
    out = next(iter(_dynamic_dataset("xyxy").map(factory(64, "xyxy", seed=2))))
    assert out["images"].shape == (64, 64, 3)


def test_keras_zoom_on_dynamic_size_has_clear_error():
    zoom = keras.layers.RandomZoom(0.2, fill_mode="constant", bounding_box_format="xyxy")
    with pytest.raises(ValueError, match="RandomZoom needs a static image size"):
        _dynamic_dataset("xyxy").map(kd.KerasLayer(zoom))


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.layers.RandomFlip("horizontal", bounding_box_format="xyxy"),
        lambda: keras.layers.RandomTranslation(
            0.1, 0.1, fill_mode="constant", bounding_box_format="xyxy"
        ),
        lambda: keras.layers.RandomZoom(0.2, fill_mode="constant", bounding_box_format="xyxy"),
        lambda: keras.layers.Resizing(64, 64, pad_to_aspect_ratio=True, bounding_box_format="xyxy"),
        lambda: kd.RandomExpand("xyxy", probability=1.0),
        lambda: kd.RandomIoUCrop("xyxy"),
        lambda: kd.ResizePad(50, "xyxy"),
    ],
    ids=["flip", "translate", "zoom", "resizing", "expand", "iou_crop", "resize_pad"],
)
def test_steps_accept_images_without_boxes(make):
    e = _element("xyxy")
    e["bounding_boxes"] = {k: v[:0] for k, v in e["bounding_boxes"].items()}
    e["masks"] = e["masks"][:0]
    out = next(iter(tf.data.Dataset.from_tensors(e).map(kd.Compose([make()]))))
    assert out["bounding_boxes"]["boxes"].shape == (0, 4) and out["masks"].shape[0] == 0
    assert out["masks"].shape[1:] == out["images"].shape[:2]


def test_steps_refuse_batched_input():
    e = _element("xyxy")
    batched = {
        "images": e["images"][None],
        "bounding_boxes": {k: v[None] for k, v in e["bounding_boxes"].items()},
    }
    for step in (
        kd.RandomIoUCrop("xyxy"),
        kd.RandomExpand("xyxy"),
        kd.ResizePad(32, "xyxy"),
        kd.KerasLayer(keras.layers.RandomFlip(bounding_box_format="xyxy")),
    ):
        with pytest.raises(ValueError, match="before batching"):
            step(batched)
