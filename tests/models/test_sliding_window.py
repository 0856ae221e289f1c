import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import presets
from keras_det.models.sliding_window import SlidingWindowDetector, count_windows
from keras_det.ops import boxes as box_ops

from .synthetic import rectangles, dataset as _dataset, check_prediction_contract as _check_contract

SMALL = presets.arguments("sliding_window_test")  # the smallest configuration that exercises every path


def test_count_windows_hand_computed():
    # 4x4 window on a 10x10 image at stride 2: 4 positions per axis -> 16; a 12 px window does not fit.
    assert count_windows((10, 10), (4, 12), (1.0,), 2) == 16
    # ratio 4 (h/w): 8x2 windows: (10-8)//2+1 = 2 rows, (10-2)//2+1 = 5 columns.
    assert count_windows((10, 10), (4,), (4.0,), 2) == 10
    assert count_windows((600, 800), (64, 128, 256), (0.5, 1.0, 2.0), 8) == 41734
    with pytest.raises(ValueError, match="stride"):
        count_windows((10, 10), (4,), (1.0,), 0)


def test_window_targets_follow_iou():
    model = SlidingWindowDetector(3, **{**SMALL, "allow_low_quality_matches": False, "batch_size_per_image": 10000})
    windows = model.windows(tf.zeros((1, 8, 8, 1)))
    assert windows.shape == (8 * 8 * 6, 4)
    gt = tf.constant([[[40, 40, 88, 88], [0, 0, 20, 30]]], tf.float32)
    t = model.target_encoder(windows, gt, tf.constant([[1, 2]]))
    best = tf.reduce_max(box_ops.iou(windows, gt[0]), -1).numpy()
    labels = t["labels"][0].numpy()
    np.testing.assert_array_equal(labels > 0, best >= 0.5)
    assert (labels == 2).sum() >= 1  # the 48x48 window on cell (2, 2)..(3, 3) matches exactly


def test_overfit_loss_decreases_and_predict_contract():
    batch = rectangles(num_images=4, size=128, seed=2)
    model = SlidingWindowDetector(3, **SMALL)
    _check_contract(model.predict(batch["images"], verbose=0), 4, 20)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(_dataset(batch), steps_per_epoch=8, epochs=3, verbose=0).history
    print("epoch losses", {k: [round(x, 4) for x in v] for k, v in history.items()})
    assert set(history) >= {"loss", "cls_loss", "box_loss"}
    assert history["loss"][-1] < 0.5 * history["loss"][0], history["loss"]
    assert history["cls_loss"][-1] < history["cls_loss"][0]
    # Fully convolutional: another image size works.
    _check_contract(model.predict(rectangles(num_images=2, size=96)["images"], verbose=0), 2, 20)


def test_without_regression_boxes_are_windows_and_empty_images():
    batch = rectangles(num_images=2, size=64)
    batch["bounding_boxes"]["labels"][:] = -1
    model = SlidingWindowDetector(3, box_regression=False, bounding_box_format="yxyx", **{**SMALL, "max_detections": 10})
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    history = model.fit(_dataset(batch), steps_per_epoch=2, epochs=1, verbose=0).history
    assert all(np.isfinite(v[-1]) for v in history.values()) and history["box_loss"][-1] == 0
    out = model.predict_on_batch(batch["images"])
    windows = np.clip(model.windows(tf.zeros((1, 4, 4, 1))).numpy(), 0, 64)
    n = int(out["num_detections"][0])
    assert n > 0
    for box in out["boxes"][0, :n]:
        assert np.min(np.abs(windows - box).sum(-1)) < 1e-4


def test_config_round_trip_and_errors():
    model = SlidingWindowDetector(5, bounding_box_format="rel_xyxy", **SMALL)
    cfg = model.get_config()
    assert cfg["backbone"] == "tiny" and cfg["backbone_weights"] is None
    assert SlidingWindowDetector.from_config(cfg).get_config() == cfg
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert restored.get_config() == cfg
    with pytest.raises(ValueError, match="feature_tap"):
        SlidingWindowDetector(2, backbone="tiny", feature_tap="C7")
    with pytest.raises(ValueError):
        SlidingWindowDetector(2, backbone="tiny", window_sizes=(-3,))
