import numpy as np
import keras
import tensorflow as tf

from keras_det.metrics import COCOEvaluator, EvaluationCallback, VOCEvaluator


GT_BOXES = np.array([[[10, 10, 60, 80], [100, 100, 150, 200]],
                     [[5, 5, 40, 40], [0, 0, 0, 0]]], np.float32)  # yxyx
GT_LABELS = np.array([[0, 1], [1, -1]], np.int32)


class FixedPredictor(keras.Model):
    """Returns the ground truth of the validation set as its predictions
    (plus one low-score false positive per image), whatever the input."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def call(self, images, training=False):
        b = tf.shape(images)[0]
        feat = self.dense(tf.reshape(images, (b, -1)))  # gives the model weights
        boxes = tf.concat([GT_BOXES, tf.constant([[[0, 0, 5, 5]]] * 2, tf.float32)], axis=1)
        labels = tf.concat([GT_LABELS, tf.zeros((2, 1), tf.int32)], axis=1)
        scores = tf.constant([[0.9, 0.8, 0.1], [0.7, 0.0, 0.1]], tf.float32)
        return {"boxes": boxes[:b] + 0.0 * feat[:, :, None],
                "scores": scores[:b],
                "labels": labels[:b],
                "num_detections": tf.constant([3, 3], tf.int32)[:b]}

    def train_step(self, data):
        return {"loss": tf.constant(0.0)}


def _dataset():
    images = np.zeros((2, 8, 8, 3), np.float32)
    return tf.data.Dataset.from_tensor_slices(
        {"images": images, "bounding_boxes": {"boxes": GT_BOXES, "labels": GT_LABELS}}
    ).batch(2)


def test_callback_writes_metrics_into_fit_history():
    model = FixedPredictor()
    model.compile(optimizer="sgd")
    ds = _dataset()
    cb = EvaluationCallback(ds, COCOEvaluator(bounding_box_format="yxyx"), every_n_epochs=2)
    hist = model.fit(ds, epochs=4, callbacks=[cb], verbose=0, shuffle=False)
    assert len(hist.history["val_AP"]) == 2  # epochs 2 and 4
    assert {"val_AP", "val_AP50", "val_ARl"} <= set(hist.history)
    # Reference: the evaluator on the same predictions directly.
    ev = COCOEvaluator(bounding_box_format="yxyx")
    pred = model.predict_on_batch(np.zeros((2, 8, 8, 3), np.float32))
    ev.update_state({"boxes": GT_BOXES, "labels": GT_LABELS}, pred)
    assert hist.history["val_AP"][-1] == ev.result()["AP"]
    assert cb.last_result["AP50"] == 1.0


def test_callback_with_voc_and_tuple_dataset_and_prefix():
    model = FixedPredictor()
    batches = [(np.zeros((2, 8, 8, 3), np.float32), {"boxes": GT_BOXES, "labels": GT_LABELS})]
    cb = EvaluationCallback(batches, VOCEvaluator(), prefix="voc_",
                            predict_fn=lambda m, x: m(x, training=False))
    cb.set_model(model)
    logs = {"loss": 1.0}
    cb.on_epoch_end(0, logs)
    assert abs(logs["voc_mAP"] - 1.0) < 1e-12 and logs["loss"] == 1.0
