import numpy as np
import pytest
import tensorflow as tf

from keras_det import data as kd


def _ragged():
    """Three elements of different sizes and box counts (0, 1 and 3 boxes)."""
    sizes = [(40, 60), (50, 30), (32, 32)]
    counts = [0, 1, 3]

    def gen():
        for k, ((h, w), n) in enumerate(zip(sizes, counts)):
            boxes = np.array(
                [[1 + i, 2 + i, 10 + i, 12 + i] for i in range(n)], np.float32
            ).reshape(-1, 4)
            yield {
                "images": np.full((h, w, 3), 100, np.float32),
                "bounding_boxes": {
                    "boxes": boxes,
                    "labels": np.arange(n, dtype=np.int32),
                    "difficult": np.ones(n, bool),
                },
                "image_id": np.int64(k),
            }

    sig = {
        "images": tf.TensorSpec([None, None, 3], tf.float32),
        "bounding_boxes": {
            "boxes": tf.TensorSpec([None, 4], tf.float32),
            "labels": tf.TensorSpec([None], tf.int32),
            "difficult": tf.TensorSpec([None], tf.bool),
        },
        "image_id": tf.TensorSpec([], tf.int64),
    }
    return tf.data.Dataset.from_generator(gen, output_signature=sig)


def test_batch_pads_with_minus_one():
    b = next(iter(kd.batch(_ragged(), 3)))
    assert b["images"].shape == (3, 50, 60, 3)  # zero-padded bottom / right to the largest
    np.testing.assert_array_equal(
        b["bounding_boxes"]["labels"], [[-1, -1, -1], [0, -1, -1], [0, 1, 2]]
    )
    assert b["bounding_boxes"]["boxes"].shape == (3, 3, 4)
    np.testing.assert_array_equal(b["bounding_boxes"]["boxes"][0], np.zeros((3, 4)))
    np.testing.assert_array_equal(
        b["bounding_boxes"]["difficult"], [[0, 0, 0], [1, 0, 0], [1, 1, 1]]
    )
    np.testing.assert_array_equal(b["image_id"], [0, 1, 2])
    assert b["bounding_boxes"]["labels"].dtype == tf.int32


def test_batch_max_boxes_and_image_size():
    ds = kd.batch(
        _ragged(),
        2,
        max_boxes=2,
        image_size=(64, 64),
        bounding_box_format="xyxy",
        drop_remainder=True,
    )
    spec = ds.element_spec
    assert spec["images"].shape == (2, 64, 64, 3)
    assert spec["bounding_boxes"]["boxes"].shape == (2, 2, 4) and spec["bounding_boxes"][
        "labels"
    ].shape == (2, 2)
    batches = list(ds)
    assert len(batches) == 1
    labels = batches[0]["bounding_boxes"]["labels"].numpy()
    np.testing.assert_array_equal(labels, [[-1, -1], [0, -1]])
    # Element 1 (50 x 30) scaled by 64 / 50 = 1.28.
    np.testing.assert_allclose(
        batches[0]["bounding_boxes"]["boxes"][1, 0],
        np.array([1, 2, 10, 12]) * [38 / 30, 1.28, 38 / 30, 1.28],
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="bounding_box_format"):
        kd.batch(_ragged(), 2, image_size=64)


def test_pipeline_on_shapes_with_masks_cache_and_augment():
    ds = kd.load("shapes", "train", "xyxy", num_images=8, image_size=64)
    p = kd.pipeline(
        ds,
        4,
        augment=kd.default_augmentation(64, "xyxy", seed=0),
        image_size=64,
        bounding_box_format="xyxy",
        max_boxes=10,
        shuffle=8,
        cache=True,
        seed=0,
    )
    batches = list(p)
    assert len(batches) == 2
    for b in batches:
        assert b["images"].shape == (4, 64, 64, 3) and b["masks"].shape == (4, 10, 64, 64)
        labels = b["bounding_boxes"]["labels"].numpy()
        assert labels.shape == (4, 10) and labels.min() >= -1
        # Padding rows have empty masks.
        assert b["masks"].numpy()[labels == -1].sum() == 0
