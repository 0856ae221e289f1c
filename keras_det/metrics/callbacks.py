"""Keras callback running a detection evaluator during ``fit``."""

import numpy as np
import keras


def _split_batch(batch):
    """(images, y_true) from a dataset element of the data contract.

    Accepts ``{"images": ..., "bounding_boxes": {...}}`` and the tuple form
    ``(images, bounding_boxes)`` (a third sample-weight item is ignored).
    """
    if isinstance(batch, dict):
        if "images" not in batch or "bounding_boxes" not in batch:
            raise ValueError(
                "EvaluationCallback expects dataset elements "
                "{'images': ..., 'bounding_boxes': {...}} or (images, bounding_boxes); "
                f"got a dict with keys {sorted(batch)}."
            )
        return batch["images"], batch["bounding_boxes"]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError(
        "EvaluationCallback expects dataset elements {'images', 'bounding_boxes'} "
        f"or (images, bounding_boxes); got {type(batch).__name__}."
    )


def _to_numpy_tree(x):
    if isinstance(x, dict):
        return {k: _to_numpy_tree(v) for k, v in x.items()}
    if hasattr(x, "numpy"):
        return x.numpy()
    return np.asarray(x)


def _replicas(model):
    strategy = getattr(model, "distribute_strategy", None)
    return int(getattr(strategy, "num_replicas_in_sync", 1) or 1)


class EvaluationCallback(keras.callbacks.Callback):
    """Evaluates detections on a validation set every N epochs.

    At the end of every ``every_n_epochs``-th epoch the model predicts each
    batch of ``dataset`` (``model.predict_on_batch(images)`` by default,
    which must return the prediction dict ``boxes / scores / labels /
    num_detections``), the evaluator accumulates them, and its ``result()``
    numbers are written into the epoch ``logs`` as ``prefix + name`` (e.g.
    ``val_AP``, ``val_AP50``). Keras' ``History`` (``fit``'s return value)
    then records them; a ``TensorBoard`` or ``ModelCheckpoint(monitor=
    "val_AP")`` callback sees them if it comes *after* this callback in the
    ``callbacks`` list.

    Args:
        dataset: iterable of batches (``tf.data.Dataset`` or a list) in the
            data contract: ``{"images": [B, H, W, 3], "bounding_boxes":
            {"boxes", "labels", ...}}`` or ``(images, bounding_boxes)``.
            Boxes in the evaluator's ``bounding_box_format``.
        evaluator: a ``COCOEvaluator`` or ``VOCEvaluator`` (anything with
            ``reset_state / update_state(y_true, y_pred) / result()``).
        every_n_epochs: evaluate after epochs ``n, 2n, ...`` (1-based).
        prefix: prepended to the evaluator's keys in ``logs``.
        predict_fn: optional ``callable(model, images) -> prediction dict``;
            default ``model.predict_on_batch`` (under a strategy with
            several replicas, one ``model(images, training=False)`` call).
        verbose: print the numbers after each evaluation if > 0.
    """

    def __init__(
        self, dataset, evaluator, every_n_epochs=1, prefix="val_", predict_fn=None, verbose=0
    ):
        super().__init__()
        if int(every_n_epochs) < 1:
            raise ValueError(f"`every_n_epochs` must be >= 1, got {every_n_epochs}.")
        self.dataset = dataset
        self.evaluator = evaluator
        self.every_n_epochs = int(every_n_epochs)
        self.prefix = prefix
        self.predict_fn = predict_fn
        self.verbose = verbose
        self.last_result = None

    def evaluate(self):
        """Runs the evaluation now; returns the evaluator's ``result()``."""
        self.evaluator.reset_state()
        for batch in self.dataset:
            images, y_true = _split_batch(batch)
            if self.predict_fn is not None:
                y_pred = self.predict_fn(self.model, images)
            elif _replicas(self.model) > 1:
                y_pred = self._replicated_predict(images)
            else:
                y_pred = self.model.predict_on_batch(images)
            if not isinstance(y_pred, dict):
                raise ValueError(
                    "The model's prediction must be a dict with boxes/scores/labels/"
                    f"num_detections, got {type(y_pred).__name__}."
                )
            self.evaluator.update_state(_to_numpy_tree(y_true), _to_numpy_tree(y_pred))
        self.last_result = dict(self.evaluator.result())
        return self.last_result

    def _replicated_predict(self, images):
        # Under a strategy with several replicas (MirroredStrategy), Keras 3.15's
        # predict_on_batch gives the whole batch to every replica and concatenates
        # the copies (R x the images); one call of the model in cross-replica
        # context predicts each image once.
        if getattr(self, "_predict_call", None) is None or self._predict_model is not self.model:
            import tensorflow as tf

            self._predict_model = self.model
            self._predict_call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return self._predict_call(images)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs != 0:
            return
        result = self.evaluate()
        if logs is not None:
            for name, value in result.items():
                logs[self.prefix + name] = float(value)
        if self.verbose:
            text = ", ".join(f"{self.prefix}{k}={v:.4f}" for k, v in result.items())
            print(f"\nEpoch {epoch + 1}: {text}")
