import time

import numpy as np
import pytest
import tensorflow as tf

from keras_det import data as kd
from keras_det.data import shapes
from keras_det.ops import boxes as B


def _arrays(ds):
    return [
        (
            e["images"].numpy(),
            e["bounding_boxes"]["boxes"].numpy(),
            e["bounding_boxes"]["labels"].numpy(),
            e["masks"].numpy(),
            int(e["image_id"]),
        )
        for e in ds
    ]


def test_contract_and_masks():
    ds, info = kd.load(
        "shapes", "train", "xyxy", with_info=True, num_images=24, image_size=96, seed=3
    )
    assert (
        info.class_names == kd.SHAPES_CLASS_NAMES
        and info.num_classes == 5
        and info.num_examples == 24
    )
    spec = ds.element_spec
    assert spec["images"].shape == (96, 96, 3) and spec["images"].dtype == tf.float32
    assert spec["bounding_boxes"]["boxes"].shape.as_list() == [None, 4]
    assert spec["bounding_boxes"]["labels"].dtype == tf.int32
    assert spec["masks"].dtype == tf.uint8 and spec["image_id"].dtype == tf.int64
    items = _arrays(ds)
    assert [i[4] for i in items] == list(range(24))
    all_labels = np.concatenate([i[2] for i in items])
    assert set(all_labels) <= set(range(5)) and len(set(all_labels)) >= 4
    for image, boxes, labels, masks, _ in items:
        assert 0 <= image.min() and image.max() <= 255
        assert 1 <= len(labels) <= 8 and masks.shape == (len(labels), 96, 96)
        # Visible-extent boxes: each box is the tight box of its mask; masks never overlap.
        for box, mask in zip(boxes, masks):
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert masks.sum(0).max() <= 1
        # Varied sizes (from ~8 px) with the box inside the image.
        assert np.all(boxes >= 0) and np.all(boxes <= 96)
    widths = np.concatenate([b[:, 2] - b[:, 0] for _, b, _, _, _ in items])
    assert widths.min() < 15 and widths.max() > 35


def test_deterministic_and_splits_differ():
    a = _arrays(kd.load("shapes", "train", num_images=6, image_size=64, seed=11))
    shapes.generate.cache_clear()
    b = _arrays(kd.load("shapes", "train", num_images=6, image_size=64, seed=11))
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    # Prefix property: the first images do not depend on num_images.
    c = _arrays(kd.load("shapes", "train", num_images=3, image_size=64, seed=11))
    np.testing.assert_array_equal(c[2][0], a[2][0])
    val = _arrays(kd.load("shapes", "validation", num_images=6, image_size=64, seed=11))
    other_seed = _arrays(kd.load("shapes", "train", num_images=6, image_size=64, seed=12))
    train_images = {x[0].tobytes() for x in a}
    assert not train_images & {x[0].tobytes() for x in val}
    assert not train_images & {x[0].tobytes() for x in other_seed}


@pytest.mark.parametrize("fmt", ("yxyx", "rel_xyxy", "center_xywh"))
def test_formats(fmt):
    ref = next(iter(kd.load("shapes", "test", "xyxy", num_images=2, image_size=64)))
    got = next(iter(kd.load("shapes", "test", fmt, num_images=2, image_size=64)))
    np.testing.assert_allclose(
        got["bounding_boxes"]["boxes"],
        B.convert_format(ref["bounding_boxes"]["boxes"], "xyxy", fmt, image_shape=(64, 64)),
        rtol=1e-6,
    )


def test_without_masks_and_options():
    ds = kd.load("shapes", "train", num_images=4, image_size=64, with_masks=False, max_objects=2)
    for e in ds:
        assert "masks" not in e and 1 <= len(e["bounding_boxes"]["labels"]) <= 2
    with pytest.raises(ValueError, match="min_objects"):
        kd.load("shapes", "train", num_images=2, min_objects=3, max_objects=2)


def test_generation_is_fast():
    start = time.perf_counter()
    shapes.generate(300, 128, seed=99, split="speed")
    assert time.perf_counter() - start < 6.0  # ~2 ms per 128 px image
