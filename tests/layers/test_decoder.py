import keras
import numpy as np

from keras_det.layers.decoder import DetectionDecoder


def test_decoder_per_class_nms_threshold_and_padding():
    refs = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    deltas = np.zeros((1, 3, 2, 4), np.float32)  # decoded boxes == references
    scores = np.array([[[0.9, 0.0], [0.8, 0.7], [0.01, 0.3]]], np.float32)
    dec = DetectionDecoder(max_detections=5, iou_threshold=0.5, score_threshold=0.05)
    out = {k: v.numpy() for k, v in dec(refs, deltas, scores, image_shape=(100, 100)).items()}
    # class 0: box 0 (0.9) suppresses box 1 (0.8, IoU 81/119 > 0.5); box 2 (0.01) is below threshold.
    # class 1: box 1 (0.7) and box 2 (0.3) survive: other classes never suppress.
    assert out["num_detections"].tolist() == [3]
    np.testing.assert_allclose(out["scores"][0], [0.9, 0.7, 0.3, 0, 0])
    np.testing.assert_array_equal(out["labels"][0], [0, 1, 1, -1, -1])
    np.testing.assert_allclose(out["boxes"][0, :3], refs[[0, 1, 2]], atol=1e-5)
    np.testing.assert_array_equal(out["boxes"][0, 3:], 0)


def test_decoder_applies_deltas_clips_and_converts_format():
    refs = np.array([[[10, 20, 30, 60]]], np.float32)  # yxyx: centre (20, 40), h 20, w 40
    deltas = np.array([[[10 * 0.5, 0.0, 0.0, 5 * np.log(2.0)]]], np.float32)  # dy = 0.5 h, w doubled
    dec = DetectionDecoder(max_detections=2, bounding_box_format="xyxy")
    out = dec(refs, deltas, np.array([[[0.5]]], np.float32), image_shape=(100, 70))
    # yxyx (20, 0, 40, 80) clipped to width 70 -> xyxy (0, 20, 70, 40).
    np.testing.assert_allclose(out["boxes"][0, 0], [0, 20, 70, 40], atol=1e-4)
    rel = DetectionDecoder(max_detections=1, box_coder_weights=None, bounding_box_format="rel_yxyx")
    out = rel(refs, refs, np.array([[[0.5]]], np.float32), image_shape=(100, 100))
    np.testing.assert_allclose(out["boxes"][0, 0], [0.1, 0.2, 0.3, 0.6], atol=1e-6)


def test_decoder_config_round_trip():
    dec = DetectionDecoder(score_threshold=0.2, max_detections=7, bounding_box_format="xywh")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(dec))
    assert clone.get_config() == dec.get_config()
