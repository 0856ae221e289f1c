import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import presets
from keras_det.models.rcnn import RCNN

from .synthetic import rectangles
from .test_fast_rcnn import _with_proposals

SMALL = presets.arguments("rcnn_test")  # the smallest configuration that exercises every path


def test_rcnn_stages_train_and_predict():
    batch = _with_proposals(rectangles(num_images=3, size=64, num_classes=2), per_image=24)
    ds = tf.data.Dataset.from_tensor_slices(batch).batch(3).repeat()
    model = RCNN(2, stage="finetune", **SMALL)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    hist = model.fit(ds, steps_per_epoch=6, epochs=2, verbose=0).history
    assert hist["finetune_loss"][-1] < hist["finetune_loss"][0], hist
    backbone_before = [v.numpy().copy() for v in model.backbone.trainable_variables]

    model.stage = "svm"
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    hist = model.fit(ds, steps_per_epoch=6, epochs=2, verbose=0).history
    assert hist["svm_loss"][-1] < hist["svm_loss"][0] and hist["bbox_loss"][-1] < hist["bbox_loss"][0], hist
    # SVM and regressor train on fixed features: the backbone did not move.
    for before, v in zip(backbone_before, model.backbone.trainable_variables):
        np.testing.assert_array_equal(before, v.numpy())

    out = model.predict({"images": batch["images"], "proposals": batch["proposals"]}, verbose=0)
    assert out["boxes"].shape == (3, 10, 4) and out["scores"].shape == (3, 10)
    assert out["labels"].dtype == np.int32 and out["num_detections"].shape == (3,)
    assert set(np.unique(out["labels"])) <= {-1, 0, 1}
    n = out["num_detections"]
    assert np.all(out["labels"][0, n[0]:] == -1)


def test_rcnn_all_stage_and_config():
    batch = _with_proposals(rectangles(num_images=2, size=64, num_classes=2), per_image=16)
    model = RCNN(2, stage="all", score_source="softmax", **SMALL)
    model.compile(optimizer="adam")
    logs = model.fit(tf.data.Dataset.from_tensors(batch), verbose=0).history
    assert {"finetune_loss", "svm_loss", "bbox_loss"} <= set(logs) and np.isfinite(logs["loss"][0])
    clone = RCNN.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    with pytest.raises(ValueError, match="stage"):
        model.stage = "everything"
    with pytest.raises(ValueError, match="needs `proposals`"):
        model(np.zeros((1, 32, 32, 3), np.float32))


def test_rcnn_save_and_load(tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    props = np.array([[[0, 0, 30, 30], [10, 10, 50, 60], [0, 0, 0, 0]]], "float32")
    model = RCNN(2, backbone="tiny", warp_size=32, context_padding=4, score_threshold=0.0, max_detections=5)
    out = model({"images": images, "proposals": props})
    assert int(out["num_detections"][0]) <= 4  # 2 valid proposals x 2 classes; the padding row is ignored
    model.save(tmp_path / "rcnn.keras")
    loaded = keras.saving.load_model(tmp_path / "rcnn.keras")
    again = loaded({"images": images, "proposals": props})
    np.testing.assert_allclose(out["scores"], again["scores"], atol=1e-6)
    np.testing.assert_allclose(out["boxes"], again["boxes"], atol=1e-4)


def test_inference_runs_the_valid_proposals_only():
    """Chunked inference features equal `window_features` on the valid windows; padded slots get zeros."""
    model = RCNN(2, **{**SMALL, "inference_chunk": 3})
    images = tf.constant(rectangles(num_images=2, size=64)["images"], tf.float32)
    boxes = tf.constant([[[0, 0, 32, 32], [8, 8, 40, 60], [0, 0, 0, 0], [10, 4, 30, 20], [0, 0, 0, 0]],
                         [[0, 0, 0, 0], [4, 4, 60, 60], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], tf.float32)
    valid = tf.constant([[True, True, False, True, False], [False, True, False, False, False]])
    got = model._chunked_features(images, boxes, valid).numpy()
    want = model.window_features(images, boxes, False).numpy()
    np.testing.assert_allclose(got[valid.numpy()], want[valid.numpy()], rtol=1e-5, atol=1e-5)
    assert not np.any(got[~valid.numpy()]) and np.any(got[valid.numpy()])
    none = model._chunked_features(images, boxes, tf.zeros_like(valid)).numpy()
    assert none.shape == got.shape and not np.any(none)
    # End to end: padded proposal slots change nothing in the detections.
    props = tf.constant([[[0, 0, 32, 32], [8, 8, 60, 40]]], tf.float32)  # xyxy, the model's format
    padded = tf.concat([props, tf.zeros([1, 3, 4])], axis=1)
    a = model.predict_on_batch({"images": images[:1], "proposals": props})
    b = model.predict_on_batch({"images": images[:1], "proposals": padded})
    np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-6)
