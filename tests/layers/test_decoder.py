import keras
import numpy as np
import pytest

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


def _decode_all_then_top_k(dec, references, deltas, scores, image_shape):
    """The decoder's former formulation (every (reference, class) box decoded before the pre-NMS top-k)."""
    import tensorflow as tf

    from keras_det.ops import boxes as box_ops
    from keras_det.ops import nms as nms_ops

    scores, deltas, references = (tf.constant(a, tf.float32) for a in (scores, deltas, references))
    batch, num_classes = tf.shape(scores)[0], tf.shape(scores)[2]
    if references.shape.rank == 2:
        references = tf.broadcast_to(references[None], tf.concat([[batch], tf.shape(references)], 0))
    if deltas.shape.rank == 3:
        deltas = deltas[:, :, None, :]
    boxes = deltas if dec.box_coder is None else dec.box_coder.decode(deltas, references[:, :, None, :])
    boxes = box_ops.clip(boxes, image_shape)
    boxes = tf.reshape(tf.broadcast_to(boxes, tf.concat([tf.shape(scores), [4]], 0)), [batch, -1, 4])
    labels = tf.reshape(tf.broadcast_to(tf.range(num_classes), tf.shape(scores)), [batch, -1])
    flat = tf.reshape(scores, [batch, -1])
    top_scores, idx = tf.math.top_k(flat, k=tf.minimum(dec.pre_nms_topk, tf.shape(flat)[1]))
    top_boxes, top_labels = tf.gather(boxes, idx, batch_dims=1), tf.gather(labels, idx, batch_dims=1)
    keep, num = nms_ops.padded_nms(top_boxes, top_scores, dec.iou_threshold, dec.max_detections,
                                   score_threshold=dec.score_threshold, class_ids=top_labels)
    safe = tf.maximum(keep, 0)
    valid = keep >= 0
    return {"boxes": tf.where(valid[..., None], tf.gather(top_boxes, safe, batch_dims=1), 0.0).numpy(),
            "scores": tf.where(valid, tf.gather(top_scores, safe, batch_dims=1), 0.0).numpy(),
            "labels": tf.where(valid, tf.gather(top_labels, safe, batch_dims=1), -1).numpy(),
            "num_detections": num.numpy()}



@pytest.mark.parametrize("case", ["per_class", "agnostic", "agnostic_rank3", "shared_references", "absolute_boxes"])
def test_top_k_before_decoding_matches_decoding_every_box(case):
    # The decoder decodes only the pre-NMS top-k boxes; the former path decoded all N x C of them.
    rng = np.random.default_rng(7)
    b, n, c = 2, 300, 6
    yx = rng.uniform(0, 80, (b, n, 2))
    refs = np.concatenate([yx, yx + rng.uniform(4, 40, (b, n, 2))], -1).astype(np.float32)
    scores = rng.uniform(0, 1, (b, n, c)).astype(np.float32) ** 3
    scores[0, :5, 1] = scores[0, 5, 1]  # ties
    coder_weights = (10.0, 10.0, 5.0, 5.0)
    deltas = rng.normal(0, 1, (b, n, c, 4)).astype(np.float32)
    if case == "agnostic":
        deltas = deltas[:, :, :1]
    elif case == "agnostic_rank3":
        deltas = deltas[:, :, 0]
    elif case == "shared_references":
        refs = refs[0]
    elif case == "absolute_boxes":
        coder_weights, deltas = None, np.broadcast_to(refs[:, :, None], (b, n, c, 4)).copy()
    dec = DetectionDecoder(box_coder_weights=coder_weights, score_threshold=0.05, iou_threshold=0.5,
                           max_detections=40, pre_nms_topk=500, bounding_box_format="yxyx")
    got = {k: v.numpy() for k, v in dec(refs, deltas, scores, image_shape=(100, 120)).items()}
    want = _decode_all_then_top_k(dec, refs, deltas, scores, (100, 120))
    np.testing.assert_array_equal(got["num_detections"], want["num_detections"])
    np.testing.assert_array_equal(got["labels"], want["labels"])
    np.testing.assert_array_equal(got["scores"], want["scores"])
    np.testing.assert_allclose(got["boxes"], want["boxes"], rtol=1e-6, atol=1e-5)
    assert got["num_detections"].min() == 40  # enough candidates survive for the comparison to bite
