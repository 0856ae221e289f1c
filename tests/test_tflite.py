"""TFLite conversion: builtins-only single-stage detectors match Keras; Faster R-CNN needs select TF ops."""

import numpy as np
import pytest
import tensorflow as tf

from keras_det.export import export_saved_model
from keras_det.models.faster_rcnn import FasterRCNN
from keras_det.tflite import convert_tflite, run_tflite

from .models.test_faster_rcnn import SMALL


def _assert_same_detections(boxes, scores, labels, ref_boxes, ref_scores, ref_labels, box_atol):
    """Same detections up to (near-)tied scores: the score lists agree, and detections match one to one
    on label, score and box — except at most 10% of them: with untrained weights many candidates tie
    to ~1e-5, and a float difference between TFLite and TF can make NMS keep the other box of a tie."""
    np.testing.assert_allclose(np.sort(scores), np.sort(ref_scores), rtol=1e-4, atol=1e-5)
    used = np.zeros(len(ref_scores), bool)
    unmatched = []
    for box, score, label in zip(boxes, scores, labels):
        ok = (~used & (ref_labels == label) & (np.abs(ref_scores - score) <= 1e-4)
              & np.all(np.abs(ref_boxes - box) <= box_atol + 1e-4 * np.abs(ref_boxes), axis=-1))
        if ok.any():
            used[np.flatnonzero(ok)[0]] = True
        else:
            unmatched.append((box, score, label))
    assert len(unmatched) <= 0.1 * max(len(scores), 1), unmatched


def _images(size, n=1, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def _single_stage_models():
    from keras_det import presets

    return [
        ("ssd", lambda: presets.build("ssd_test", 3)),
        ("yolo_v1", lambda: presets.build("yolo_v1_test", 3)),
        ("yolo_multiscale", lambda: presets.build("yolo_test", 3)),
    ]


@pytest.mark.parametrize("name,factory", _single_stage_models())
def test_single_stage_builtins_only_matches_keras(name, factory, tmp_path):
    import keras

    keras.utils.set_random_seed(0)  # the same untrained weights every run
    model = factory()
    x = _images(128)
    ref = model.predict(x, verbose=0)
    info = convert_tflite(model, str(tmp_path / f"{name}.tflite"), (128, 128), select_tf_ops=False)
    assert info["select_tf_ops"] == [] and info["input_shape"] == [1, 128, 128, 3]
    out = run_tflite(info["path"], x, info["outputs"])
    n = int(ref["num_detections"][0])
    assert int(out["num_detections"][0]) == n > 0
    _assert_same_detections(out["boxes"][0, :n], out["scores"][0, :n], out["labels"][0, :n],
                            ref["boxes"][0, :n], ref["scores"][0, :n], ref["labels"][0, :n], box_atol=1e-2)


def test_faster_rcnn_needs_select_tf_ops(tmp_path):
    model = FasterRCNN(3, **SMALL)
    model(np.zeros((1, 96, 96, 3), np.float32))
    with pytest.raises(Exception, match="CropAndResize"):
        convert_tflite(model, str(tmp_path / "builtins.tflite"), (96, 96), select_tf_ops=False)
    info = convert_tflite(model, str(tmp_path / "frcnn.tflite"), (96, 96))
    assert "CropAndResize" in info["select_tf_ops"]
    try:
        out = run_tflite(info["path"], _images(96), info["outputs"])
    except RuntimeError as error:
        if "Select TensorFlow op" in str(error):
            pytest.skip("this TensorFlow build's tf.lite.Interpreter has no Flex delegate linked")
        raise
    ref = model.predict(_images(96), verbose=0)
    np.testing.assert_allclose(out["scores"], ref["scores"], rtol=1e-4, atol=1e-5)


def test_from_saved_model_serving_tensor(tmp_path):
    from keras_det.models.ssd import SSD

    from .models.test_ssd import SMALL as SSD_SMALL

    model = SSD(3, **SSD_SMALL)
    model(np.zeros((1, 128, 128, 3), np.float32))
    path = export_saved_model(model, str(tmp_path / "ssd"), image_size=(128, 128))
    info = convert_tflite(path, str(tmp_path / "ssd.tflite"), (160, 120), select_tf_ops=False)
    assert info["input_dtype"] == "uint8" and info["input_shape"] == [1, 160, 120, 3]
    images = np.random.default_rng(1).integers(0, 256, (1, 160, 120, 3), dtype=np.uint8)
    out = run_tflite(info["path"], images, info["outputs"])
    ref = tf.saved_model.load(path).signatures["serving_tensor"](images=tf.constant(images))
    n = int(ref["num_detections"][0])
    assert int(out["num_detections"][0]) == n > 0
    _assert_same_detections(out["detection_boxes"][0, :n], out["detection_scores"][0, :n], out["detection_classes"][0, :n],
                            ref["detection_boxes"][0, :n].numpy(), ref["detection_scores"][0, :n].numpy(),
                            ref["detection_classes"][0, :n].numpy(), box_atol=1e-4)
