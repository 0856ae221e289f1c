"""What every keras_det detector shares: the data-contract boundary and the
``compile`` / ``fit`` / ``predict`` plumbing for models that know their losses.

A detector subclass implements

* ``compute_detection_losses(images, gt_boxes, gt_labels, training)`` → dict of
  scalar losses (ground truth already absolute ``yxyx``, labels ``-1`` padded),
* ``call(images, training=False)`` → the prediction dict of the data contract.

``train_step`` sums the losses (plus layer regularisation losses), applies
gradients and reports every loss as a metric, so ``fit()`` shows e.g.
``rpn_cls_loss rpn_box_loss roi_cls_loss roi_box_loss`` in its progress bar.

Every train / test step first checks its batch with
`keras_det.models.validation.check_targets` (ranks, matching sizes, finite
pixels and boxes, labels in ``[-1, num_classes)``): one boundary for every
detector, so a bad batch fails with a message naming the check and the model
(or, with ``invalid_boxes="drop"``, its bad rows become padding and are
counted in the ``dropped_boxes`` metric).
"""

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.models.config import ConfigFromArguments
from keras_det.models.validation import check_invalid_boxes, check_targets
from keras_det.ops import boxes as box_ops
from keras_det.optimizers import with_lr_multipliers


def unpack_batch(data):
    """``(images, boxes, labels, extras)`` from a batch of the data contract.

    Accepts ``{"images": ..., "bounding_boxes": {"boxes", "labels"}}`` or
    ``(images, {"boxes", "labels"})``. ``extras`` holds any other keys of the
    element (``masks``, ``keypoints``, ...).
    """
    if isinstance(data, (tuple, list)) and len(data) >= 1 and isinstance(data[0], dict) and all(d is None for d in data[1:]):
        data = data[0]  # train_on_batch(dict) arrives as (dict, None)
    if isinstance(data, (tuple, list)):
        if len(data) < 2:
            raise ValueError("A training batch must be a dict with `images` and `bounding_boxes`, or (images, bounding_boxes).")
        images, targets = data[0], data[1]
        extras = {k: v for k, v in targets.items() if k not in ("boxes", "labels")}
        return images, targets["boxes"], targets["labels"], extras
    if not isinstance(data, dict) or "images" not in data:
        raise ValueError(
            "A training batch must be a dict with `images` and `bounding_boxes` (keras_det data contract); "
            f"got {type(data).__name__} with keys {list(data) if isinstance(data, dict) else None}."
        )
    if "bounding_boxes" not in data:
        raise ValueError("The training batch has no `bounding_boxes`: it must carry ground truth to train on.")
    targets = data["bounding_boxes"]
    extras = {k: v for k, v in data.items() if k not in ("images", "bounding_boxes")}
    return data["images"], targets["boxes"], targets["labels"], extras


def unwrap(data):
    """Strips the 1-tuples Keras wraps ``predict_on_batch`` / ``predict`` inputs in."""
    while isinstance(data, (tuple, list)) and len(data) == 1:
        data = data[0]
    return data


def images_only(data):
    """The images of a prediction batch (a tensor, a data-contract dict or a tuple)."""
    data = unwrap(data)
    if isinstance(data, dict):
        return data["images"]
    if isinstance(data, (tuple, list)):
        return images_only(data[0])
    return data


class Detector(ConfigFromArguments, keras.Model):
    """Base class of the detection models (not used directly).

    Args:
        bounding_box_format: format of the boxes the model is given and
            returns (``"xyxy"``, ``"yxyx"``, ``"rel_yxyx"``, ...).
        loss_names: names of the losses ``compute_detection_losses`` returns.
        invalid_boxes: what a train / test step does with a ground-truth row
            whose box has a NaN / inf coordinate or whose label is outside
            ``[-1, num_classes)``: ``"raise"`` (default; an
            ``InvalidArgumentError`` naming the check) or ``"drop"`` (the row
            becomes padding; the ``dropped_boxes`` metric, summed over the
            epoch, counts them). Non-finite pixels always raise. Saved in
            ``get_config``; every subclass takes it as a keyword argument.
    """

    def __init__(self, bounding_box_format="xyxy", loss_names=(), invalid_boxes="raise", **kwargs):
        super().__init__(**kwargs)
        self.bounding_box_format = box_ops.check_format(bounding_box_format)
        self.invalid_boxes = check_invalid_boxes(invalid_boxes)
        self.loss_names = tuple(loss_names)
        self.loss_trackers = {name: keras.metrics.Mean(name=name) for name in self.loss_names}
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.dropped_boxes_tracker = keras.metrics.Sum(name="dropped_boxes") if invalid_boxes == "drop" else None

    def get_config(self):
        return {**super().get_config(), "invalid_boxes": self.invalid_boxes}

    def add_loss_name(self, name):
        """Registers one more loss of ``compute_detection_losses`` (a metric in ``fit``)."""
        self.loss_names = self.loss_names + (name,)
        self.loss_trackers[name] = keras.metrics.Mean(name=name)

    # -- boundary -----------------------------------------------------------
    def check_image_size(self, images):
        """``images`` if their size is ``self.image_size`` (models whose anchors /
        grid are fixed at construction: SSD, YOLO), else an error naming both sizes.

        Static sizes are checked while tracing (ValueError); unknown ones (a
        ``tf.function`` with ``None`` dimensions, a padded batch) at run time
        (``InvalidArgumentError``, before any layer runs: the returned tensor
        depends on the check). Use the returned tensor.
        """
        height, width = (int(s) for s in self.image_size)
        advice = "resize them (keras_det.data.batch(image_size=...))"
        shape = images.shape
        if shape.rank is not None and shape.rank != 4:
            raise ValueError(f"{type(self).__name__}: images must be [B, H, W, 3], got shape {tuple(shape)}.")
        if shape.rank == 4 and shape[1] is not None and shape[2] is not None:
            if (shape[1], shape[2]) != (height, width):
                raise ValueError(
                    f"{type(self).__name__} was built for {height}x{width} images, got {shape[1]}x{shape[2]}; {advice}."
                )
            return images
        size = tf.shape(images)[1:3]
        check = tf.debugging.Assert(
            tf.reduce_all(tf.equal(size, [height, width])),
            [f"{type(self).__name__} was built for {height}x{width} images ({advice}); got height, width:", size],
        )
        with tf.control_dependencies([check]):
            return tf.identity(images)

    def _ground_truth(self, images, boxes, labels):
        """Checks a batch (`check_targets`) and converts its boxes to absolute ``yxyx``.

        Returns:
            ``(images float32, boxes [B, M, 4] absolute yxyx, labels int32 [B, M])``
            with zero boxes in the padding rows (``label == -1``).
        """
        images, boxes, labels, dropped = check_targets(
            images, boxes, labels, getattr(self, "num_classes", None), type(self).__name__, self.invalid_boxes
        )
        if self.dropped_boxes_tracker is not None:
            self.dropped_boxes_tracker.update_state(tf.cast(dropped, tf.float32))
        image_shape = tf.shape(images)[1:3]
        boxes = box_ops.convert_format(boxes, self.bounding_box_format, "yxyx", image_shape=image_shape)
        boxes = tf.where(labels[..., None] >= 0, boxes, 0.0)
        return tf.cast(images, tf.float32), boxes, labels

    # -- keras plumbing ------------------------------------------------------
    def compile(self, optimizer="adam", **kwargs):
        """Compiles with the model's own losses; ``loss`` must not be given."""
        if kwargs.get("loss") is not None:
            raise ValueError(f"{type(self).__name__} computes its own losses; call compile() without `loss`.")
        kwargs.pop("loss", None)
        optimizer = keras.optimizers.get(optimizer)
        # Set by keras_det.models.transfer.fine_tune(model.backbone, n).
        multipliers = getattr(getattr(self, "backbone", None), "lr_multipliers", None)
        if multipliers:
            with_lr_multipliers(optimizer, multipliers)
        super().compile(optimizer=optimizer, **kwargs)

    @property
    def metrics(self):
        extra = [] if self.dropped_boxes_tracker is None else [self.dropped_boxes_tracker]
        return [self.total_loss_tracker, *self.loss_trackers.values(), *extra]

    def _step(self, data, training):
        images, boxes, labels, extras = unpack_batch(data)
        images, boxes, labels = self._ground_truth(images, boxes, labels)
        losses = self.compute_detection_losses(images, boxes, labels, training=training, **extras)
        total = tf.add_n([tf.cast(v, tf.float32) for v in losses.values()])
        return losses, total

    def train_step(self, data):
        """One optimizer step on ``data`` (a batch of the data contract).

        Under ``tf.distribute`` with ``R`` replicas the optimizer sums the
        replicas' gradients, so the loss is scaled by ``1 / R`` (as Keras'
        ``compute_loss`` path does; the losses normalise by global counts, see
        ``keras_det.losses.replica_normalizer``): one step on ``R`` replicas
        equals one step on one device with the same global batch. The loss is
        then scaled by the optimizer's loss scale (``LossScaleOptimizer`` under
        ``mixed_float16``; it unscales the gradients in ``apply_gradients``).
        A variable without gradient gets zeros when ``R > 1``, so that every
        replica all-reduces the same list of gradients.
        """
        with tf.GradientTape() as tape:
            losses, total = self._step(data, training=True)
            if self.losses:
                total = total + tf.add_n([tf.cast(v, tf.float32) for v in self.losses])
            scaled = self.optimizer.scale_loss(loss_ops.replica_mean_scale(total))
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            grads_and_vars = [(tf.zeros_like(v) if g is None else g, v) for g, v in zip(grads, variables)]
        else:
            grads_and_vars = [(g, v) for g, v in zip(grads, variables) if g is not None]
        self.optimizer.apply_gradients(grads_and_vars)
        return self._update_trackers(losses, total)

    def test_step(self, data):
        losses, total = self._step(data, training=False)
        return self._update_trackers(losses, total)

    def predict_step(self, data):
        return self(images_only(data), training=False)

    def _update_trackers(self, losses, total):
        self.total_loss_tracker.update_state(total)
        for name, value in losses.items():
            self.loss_trackers[name].update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, **extras):
        raise NotImplementedError
