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
    model = ClassifyLocalize(2, backbone="tiny", box_loss="l2", box_loss_weight=1.0)
    images = tf.zeros([1, 32, 32, 3])
    gt = tf.constant([[[0.0, 0.0, 16.0, 32.0]]])  # yxyx -> rel (0, 0, 0.5, 1)
    losses = model.compute_detection_losses(images, gt, tf.constant([[1]]), training=False)
    _, boxes = model.heads(images, False)
    # The zero-initialised regressor starts at the centred half-size box (centre 0.5, size 0.5).
    np.testing.assert_allclose(boxes.numpy()[0, 0], [0.25, 0.25, 0.75, 0.75], atol=1e-6)
    # (0.25 - 0)^2 + (0.25 - 0)^2 + (0.75 - 0.5)^2 + (0.75 - 1)^2 = 0.25
    np.testing.assert_allclose(losses["box_loss"], 0.25, rtol=1e-5)
    default = ClassifyLocalize(2, backbone="tiny", box_loss="l2")
    np.testing.assert_allclose(default.compute_detection_losses(images, gt, tf.constant([[1]]), training=False)["box_loss"],
                               30 * 0.25, rtol=1e-5)
    empty = model.compute_detection_losses(images, gt, tf.constant([[-1]]))
    assert float(empty["box_loss"]) == 0.0 and float(empty["cls_loss"]) == 0.0
    with pytest.raises(ValueError, match="box_loss"):
        ClassifyLocalize(2, backbone="tiny", box_loss="l1")
    clone = ClassifyLocalize.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_classify_localize_localizes_held_out_objects():
    """The regressor reads where the object is: boxes on unseen images overlap the object."""
    from keras_det.ops import boxes as box_ops

    keras.utils.set_random_seed(0)
    train = rectangles(num_images=96, size=64, max_boxes=1, seed=0)
    test = rectangles(num_images=32, size=64, max_boxes=1, seed=1)
    model = ClassifyLocalize(3, backbone="tiny", box_loss_weight=5.0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    ds = tf.data.Dataset.from_tensor_slices(train).shuffle(96, seed=0).batch(16).repeat()
    model.fit(ds, steps_per_epoch=60, epochs=3, verbose=0)
    out = model.predict_on_batch(test["images"])
    iou = np.diag(box_ops.iou(out["boxes"][:, 0], test["bounding_boxes"]["boxes"][:, 0], "xyxy").numpy())
    # Always predicting the mean training box gives a mean IoU of about 0.1 on these.
    mean_box = np.mean(train["bounding_boxes"]["boxes"][:, 0], axis=0, keepdims=True)
    baseline = np.mean(box_ops.iou(mean_box, test["bounding_boxes"]["boxes"][:, 0], "xyxy").numpy())
    assert iou.mean() > max(0.4, 3 * baseline), (iou.mean(), baseline)
    with pytest.raises(ValueError, match="box_grid"):
        ClassifyLocalize(3, backbone="tiny", box_grid=0)
