import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det.models.classify_localize import ClassifyLocalize

from .synthetic import rectangles


@pytest.mark.parametrize("class_agnostic", [True, False])
def test_classify_localize_overfits_and_predicts(class_agnostic):
    batch = rectangles(num_images=4, size=64, max_boxes=1)
    model = ClassifyLocalize(3, backbone="tiny", class_agnostic=class_agnostic, box_loss_weight=5.0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    ds = tf.data.Dataset.from_tensor_slices(batch).batch(4).repeat()
    history = model.fit(ds, steps_per_epoch=20, epochs=3, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0], history["loss"]
    out = model.predict_on_batch(batch["images"])
    assert out["boxes"].shape == (4, 1, 4) and out["labels"].shape == (4, 1)
    np.testing.assert_array_equal(out["num_detections"], [1, 1, 1, 1])
    assert np.all(out["boxes"] >= 0) and np.all(out["boxes"] <= 64)
    assert model.regressor.units == (4 if class_agnostic else 12)


def test_classify_localize_l2_loss_hand_value():
    model = ClassifyLocalize(2, backbone="tiny", box_loss="l2")
    images = tf.zeros([1, 32, 32, 3])
    gt = tf.constant([[[0.0, 0.0, 16.0, 32.0]]])  # yxyx -> rel (0, 0, 0.5, 1)
    losses = model.compute_detection_losses(images, gt, tf.constant([[1]]), training=False)
    _, boxes = model.heads(images, False)
    expected = np.sum((boxes.numpy()[0, 0] - [0, 0, 0.5, 1.0]) ** 2)
    np.testing.assert_allclose(losses["box_loss"], expected, rtol=1e-5)
    empty = model.compute_detection_losses(images, gt, tf.constant([[-1]]))
    assert float(empty["box_loss"]) == 0.0 and float(empty["cls_loss"]) == 0.0
    with pytest.raises(ValueError, match="box_loss"):
        ClassifyLocalize(2, backbone="tiny", box_loss="l1")
    clone = ClassifyLocalize.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
