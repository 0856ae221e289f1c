"""Tiny synthetic detection batches for model tests (filled rectangles on noise)."""

import numpy as np
import tensorflow as tf


def rectangles(num_images=4, size=96, max_boxes=3, num_classes=3, seed=0, fmt="xyxy"):
    """Images with 1..max_boxes coloured rectangles; class = colour channel.

    Returns a dict of the batched data contract (boxes in ``fmt``: "xyxy" or "yxyx").
    """
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 60, (num_images, size, size, 3)).astype(np.float32)
    boxes = np.zeros((num_images, max_boxes, 4), np.float32)
    labels = np.full((num_images, max_boxes), -1, np.int32)
    for i in range(num_images):
        for j in range(rng.integers(1, max_boxes + 1)):
            h, w = rng.integers(size // 6, size // 2, 2)
            y, x = rng.integers(0, size - h), rng.integers(0, size - w)
            c = int(rng.integers(0, num_classes))
            images[i, y : y + h, x : x + w, :] = 30.0
            images[i, y : y + h, x : x + w, c % 3] = 250.0
            boxes[i, j] = [x, y, x + w, y + h] if fmt == "xyxy" else [y, x, y + h, x + w]
            labels[i, j] = c
    return {"images": images, "bounding_boxes": {"boxes": boxes, "labels": labels}}


def dataset(batch, repeat=True):
    """The batch as one-element ``tf.data`` batches (repeated for ``fit``)."""
    ds = tf.data.Dataset.from_tensor_slices(batch).batch(len(batch["images"]))
    return ds.repeat() if repeat else ds


def check_prediction_contract(out, batch_size, k):
    """Shapes, dtypes and padding of a prediction dict (the data contract)."""
    assert out["boxes"].shape == (batch_size, k, 4) and out["boxes"].dtype == np.float32
    assert out["scores"].shape == (batch_size, k) and out["scores"].dtype == np.float32
    assert out["labels"].shape == (batch_size, k) and out["labels"].dtype == np.int32
    assert out["num_detections"].shape == (batch_size,)
    for b in range(batch_size):
        n = int(out["num_detections"][b])
        assert np.all(out["labels"][b, n:] == -1) and np.all(out["scores"][b, n:] == 0)
