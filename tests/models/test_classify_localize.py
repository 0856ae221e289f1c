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


def test_dense_classifier_loss_hand_values_and_prediction():
    """classifier="dense": CE of the object's class at its centre cell + the mean background CE elsewhere."""
    # A 2x2 class map over C = 2 classes (+ background); the box centre (0.75, 0.25) is in cell (1, 0).
    box = tf.constant([[0.5, 0.0, 1.0, 0.5]])
    zeros = tf.zeros([1, 2, 2, 3])
    loss = ClassifyLocalize._dense_class_loss(zeros, box, tf.constant([1]), tf.constant([1.0]))
    np.testing.assert_allclose(loss, 2 * np.log(3), rtol=1e-6)  # uniform logits: ln 3 for both terms
    logits = np.zeros((1, 2, 2, 3), np.float32)
    logits[0, 1, 0, 2] = 50.0  # class 1 (index 2) at the object's cell: its term vanishes
    loss = ClassifyLocalize._dense_class_loss(tf.constant(logits), box, tf.constant([1]), tf.constant([1.0]))
    np.testing.assert_allclose(loss, np.log(3), rtol=1e-5)
    logits[0, 0, 0, 0] = 50.0  # a confident background cell: the background mean drops to 2/3 ln 3
    loss = ClassifyLocalize._dense_class_loss(tf.constant(logits), box, tf.constant([1]), tf.constant([1.0]))
    np.testing.assert_allclose(loss, 2 / 3 * np.log(3), rtol=1e-5)
    # No object: every cell is background.
    empty = ClassifyLocalize._dense_class_loss(zeros, box, tf.constant([-1]), tf.constant([0.0]))
    np.testing.assert_allclose(empty, np.log(3), rtol=1e-6)
    model = ClassifyLocalize(3, backbone="tiny", tap="C4", box_grid=4, classifier="dense", class_pool="max")
    out = model.predict_on_batch(np.zeros((2, 64, 64, 3), np.float32))
    assert out["labels"].shape == (2, 1) and np.all((out["scores"] > 0) & (out["scores"] <= 1))
    assert ClassifyLocalize.from_config(model.get_config()).get_config() == model.get_config()
    with pytest.raises(ValueError, match="classifier"):
        ClassifyLocalize(3, backbone="tiny", classifier="global")
    with pytest.raises(ValueError, match="class_pool"):
        ClassifyLocalize(3, backbone="tiny", class_pool="sum")


def test_classify_localize_giou_loss_hand_value():
    model = ClassifyLocalize(2, backbone="tiny", box_loss="giou", box_loss_weight=2.0)
    images = tf.zeros([1, 32, 32, 3])
    gt = tf.constant([[[0.0, 0.0, 16.0, 32.0]]])  # yxyx -> rel (0, 0, 0.5, 1)
    losses = model.compute_detection_losses(images, gt, tf.constant([[1]]), training=False)
    # The start box (0.25, 0.25, 0.75, 0.75) against (0, 0, 0.5, 1): intersection 0.25 x 0.5 = 0.125,
    # union 0.25 + 0.5 - 0.125 = 0.625, IoU 0.2; enclosing box 0.75 x 1: GIoU = 0.2 - 0.125 / 0.75.
    np.testing.assert_allclose(losses["box_loss"], 2.0 * (1 - (0.2 - 0.125 / 0.75)), rtol=1e-5)
    empty = model.compute_detection_losses(images, gt, tf.constant([[-1]]))
    assert float(empty["box_loss"]) == 0.0
    assert ClassifyLocalize.from_config(model.get_config()).get_config()["box_loss"] == "giou"


def test_dense_box_head_hand_values():
    """box_head="dense": per-cell boxes (centre (i + σ) / h, size σ²), the object's centre cell trained and returned."""
    model = ClassifyLocalize(3, backbone="tiny", tap="C4", classifier="dense", box_head="dense")
    features = tf.zeros([1, 2, 2, 8])
    model.box_map.build((None, 2, 2, 8))
    model.box_map.kernel.assign(np.zeros((1, 1, 8, 4), np.float32))
    model.box_map.bias.assign(np.array([0.0, 0.0, 0.0, 100.0], np.float32))  # σ = 0.5, 0.5, 0.5, 1
    boxes = model._dense_boxes(features).numpy()
    assert boxes.shape == (1, 4, 1, 4)
    # Cell (1, 0): centre (1.5 / 2, 0.5 / 2) = (0.75, 0.25), height 0.25, width 1.
    np.testing.assert_allclose(boxes[0, 2, 0], [0.625, -0.25, 0.875, 0.75], atol=1e-6)
    np.testing.assert_allclose(boxes[0, 1, 0], [0.125, 0.25, 0.375, 1.25], atol=1e-6)  # cell (0, 1)
    np.testing.assert_array_equal(ClassifyLocalize._centre_cell(tf.constant([[0.5, 0.0, 1.0, 0.5], [0.0, 0.6, 0.2, 1.0]]), 2, 2), [2, 1])
    model = ClassifyLocalize(3, backbone="tiny", tap="C4", classifier="dense", box_head="dense", class_agnostic=False)
    out = model.predict_on_batch(np.zeros((2, 64, 64, 3), np.float32))
    assert out["boxes"].shape == (2, 1, 4) and np.all(out["boxes"] >= 0) and np.all(out["boxes"] <= 64)
    assert ClassifyLocalize.from_config(model.get_config()).get_config() == model.get_config()
    with pytest.raises(ValueError, match="classifier='dense'"):
        ClassifyLocalize(3, backbone="tiny", box_head="dense")
    with pytest.raises(ValueError, match="box_head"):
        ClassifyLocalize(3, backbone="tiny", box_head="conv")
