import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import presets
from keras_det.models.fast_rcnn import FastRCNN

from .synthetic import rectangles

SMALL = presets.arguments("fast_rcnn_test")  # the smallest configuration that exercises every path


def _with_proposals(batch, per_image=40, seed=0):
    """Jittered GT boxes and random boxes as proposals (xyxy), zero rows as padding."""
    rng = np.random.default_rng(seed)
    n, size = len(batch["images"]), batch["images"].shape[1]
    props = np.zeros((n, per_image, 4), np.float32)
    for i in range(n):
        gt = batch["bounding_boxes"]["boxes"][i][batch["bounding_boxes"]["labels"][i] >= 0]
        rows = [g + rng.normal(0, 3, 4) for g in gt for _ in range(5)]
        for _ in range(per_image - 5 - len(rows)):
            x, y = rng.uniform(0, size - 20, 2)
            rows.append([x, y, x + rng.uniform(8, 40), y + rng.uniform(8, 40)])
        props[i, : len(rows)] = np.clip(rows, 0, size)
    return {**batch, "proposals": props}


def test_fast_rcnn_trains_on_given_proposals():
    batch = _with_proposals(rectangles(num_images=4, size=96))
    model = FastRCNN(3, **SMALL)
    out = model.predict({"images": batch["images"], "proposals": batch["proposals"]}, verbose=0)
    assert out["boxes"].shape == (4, 10, 4) and out["labels"].shape == (4, 10)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    ds = tf.data.Dataset.from_tensor_slices(batch).batch(4).repeat()
    history = model.fit(ds, steps_per_epoch=15, epochs=3, verbose=0).history
    assert set(history) >= {"roi_cls_loss", "roi_box_loss", "loss"}
    assert history["loss"][-1] < 0.7 * history["loss"][0], history["loss"]
    on_batch = model.predict_on_batch({"images": batch["images"], "proposals": batch["proposals"]})
    from_dataset = model.predict(ds.take(1), verbose=0)
    np.testing.assert_allclose(on_batch["scores"], from_dataset["scores"], rtol=1e-5, atol=1e-6)


def test_fast_rcnn_needs_proposals():
    model = FastRCNN(2, **SMALL)
    with pytest.raises(ValueError, match="needs `proposals`"):
        model(np.zeros((1, 64, 64, 3), np.float32))
    clone = FastRCNN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
