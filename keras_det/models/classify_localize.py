"""Classification + localization: one object per image, a class and a box.

The seed's step from classification to detection: a backbone's features
feed two heads — a class softmax and a box regressor (4 numbers,
class-agnostic, or 4 per class) — trained with a weighted multitask sum
``L = CE + λ · L_box`` where ``L_box`` is L2 (sum of squares, the seed's) or
smooth-L1. Box targets are the object's ``rel_yxyx`` coordinates (fractions of
the image), predicted through a sigmoid, so the loss does not depend on the
image size. Because of that scale (the L2 of predicting the mean box is
about 0.2 per object, against ``ln C`` for the cross-entropy) ``λ``
defaults to 30: on one-object ``shapes`` after 300 CPU-s, λ = 1 / 10 / 30
gave a held-out mean IoU of 0.06 / 0.21 / 0.29 (at λ = 1 the box loss
stays at the targets' variance: the shared features never learn *where*).

The classifier reads globally average-pooled features (what is in the
image); the regressor must know *where*, so it reads the map itself: a 1×1
conv to ``box_channels``, adaptive average pooling to a fixed
``box_grid × box_grid`` (any input size), flattened into a hidden FC layer —
the fully connected "regression head" on conv features of the seed (and of
OverFeat / VGG's localisation nets). Its output layer starts at zero (every
box starts as the centred half-size box, sigmoid(0) = 0.5): a random start
saturates the sigmoid and the box loss stalls. The box is a centre and a
size (valid by construction). On held-out one-rectangle images
(tests/models/test_classify_localize.py) this head reaches a mean IoU of
0.49 where a regressor on the global average reaches 0.40 (0.25 per
class).

On one-object ``shapes`` (128 px, tiny backbone from scratch, 300 CPU-s)
the pooled classifier never learns the classes: its cross-entropy stays at
ln 5 on the training data (a plain tiny-CNN + global pooling classifier on
320 of these images reaches train accuracy 1.0 with validation accuracy at
chance: it memorises backgrounds), so AP50 stays below 0.1 whatever the box
head (C5: 0.084, C4 8×8 grid: 0.091, global max pooling: 0.008). The
location-supervised class map (``classifier="dense"``: the class at the
object's centre cell, background elsewhere) learns them: AP50 0.30 with the
FC regressor on C4 — the benchmark's configuration (benchmarks/zoo.py).

The object is the first valid box of each image (``labels >= 0``); images
without one contribute nothing (zero weight on both terms).
"""

import keras
import tensorflow as tf

from keras_det import losses as loss_ops
from keras_det.backbones import build_backbone
from keras_det.models.base import Detector
from keras_det.ops import boxes as box_ops
from keras_det.ops.pooling import adaptive_average_pool


BOX_LOSSES = ("l2", "smooth_l1", "giou")


@keras.saving.register_keras_serializable(package="keras_det")
class ClassifyLocalize(Detector):
    """Single-object classifier + box regressor.

    Args:
        num_classes: object classes.
        backbone, backbone_weights: as for every keras_det model.
        bounding_box_format: format of the given and returned boxes.
        class_agnostic: one box (4 outputs) or one per class (4·C outputs,
            the GT class's box is trained and the predicted class's returned).
        box_loss: ``"l2"`` or ``"smooth_l1"`` on the relative corners, or
            ``"giou"``: ``1 - GIoU`` of the box with the GT (scale-free: a
            corner error costs the same fraction of a small box as of a large
            one, where the corner losses, in fractions of the image, hardly
            weigh small objects; `shapes` objects are 8 px to 60 % of the image).
        box_loss_weight: λ of the multitask sum (30 for the corner losses, see
            above; ~2 suits ``"giou"``, whose term is at most 2).
        tap: backbone stage both heads read.
        box_grid: side of the adaptive-average-pooled grid the regressor reads (7).
        box_channels: 1×1-conv channels before that pooling (64).
        box_hidden: units of the regressor's hidden FC layer (256).
        class_pool: the pooled classifier's global pooling, ``"avg"`` or ``"max"``.
        classifier: ``"pooled"`` (a softmax on the globally pooled map) or
            ``"dense"``: a 1×1-conv softmax over ``C + 1`` classes (0 =
            background) at every cell of the map, trained with the object's
            class at the cell holding its centre and background elsewhere
            (the mean over background cells plus the object cell's term);
            the prediction is the most probable (cell, class) pair. The
            supervision says *where* the object is, so the features learn
            its shape rather than the image's background.
        box_head: ``"fc"`` (the regressor above) or ``"dense"`` (needs
            ``classifier="dense"``): a 1×1 conv predicts a box at every cell
            of the map in YOLO v1's grid parameterisation (the centre inside
            the cell, σ outputs; the square roots of the size relative to the
            image), trained at the object's centre cell with the same loss on
            the relative corners; the box returned is that of the cell the
            class map picks.

    Call: images ``[B, H, W, 3]`` → prediction dict with ``K = 1``.
    """

    loss_keys = ("cls_loss", "box_loss")

    def __init__(self, num_classes, backbone="mobilenet_v2", backbone_weights=None, bounding_box_format="xyxy", class_agnostic=True, box_loss="l2", box_loss_weight=30.0, tap="C5", box_grid=7, box_channels=64, box_hidden=256, class_pool="avg", classifier="pooled", box_head="fc", **kwargs):
        super().__init__(bounding_box_format=bounding_box_format, loss_names=self.loss_keys, **kwargs)
        if box_loss not in BOX_LOSSES:
            raise ValueError(f"`box_loss` must be one of {BOX_LOSSES}, got {box_loss!r}.")
        self.num_classes = int(num_classes)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.class_agnostic = bool(class_agnostic)
        self.box_loss = box_loss
        self.box_loss_weight = float(box_loss_weight)
        self.tap = tap
        if int(box_grid) < 1 or int(box_channels) < 1 or int(box_hidden) < 1:
            raise ValueError(
                f"`box_grid`, `box_channels` and `box_hidden` must be >= 1, got {box_grid}, {box_channels}, {box_hidden}."
            )
        self.box_grid, self.box_channels, self.box_hidden = int(box_grid), int(box_channels), int(box_hidden)
        self.backbone = build_backbone(backbone, backbone_weights, (None, None, 3), taps=(tap,))
        if class_pool not in ("avg", "max"):
            raise ValueError(f"`class_pool` must be 'avg' or 'max', got {class_pool!r}.")
        self.class_pool = class_pool
        self.pool = keras.layers.GlobalAveragePooling2D() if class_pool == "avg" else keras.layers.GlobalMaxPooling2D()
        if classifier not in ("pooled", "dense"):
            raise ValueError(f"`classifier` must be 'pooled' or 'dense', got {classifier!r}.")
        self.classifier_kind = classifier
        if classifier == "pooled":
            self.classifier = keras.layers.Dense(self.num_classes, name="classifier")
        else:
            self.classifier = keras.layers.Conv2D(self.num_classes + 1, 1, name="class_map")
        if box_head not in ("fc", "dense"):
            raise ValueError(f"`box_head` must be 'fc' or 'dense', got {box_head!r}.")
        if box_head == "dense" and classifier != "dense":
            raise ValueError("`box_head='dense'` picks the box of the class map's cell: it needs `classifier='dense'`.")
        self.box_head = box_head
        k = 1 if self.class_agnostic else self.num_classes
        if box_head == "dense":
            self.box_map = keras.layers.Conv2D(4 * k, 1, name="box_map")
        else:
            self.box_reduce = keras.layers.Conv2D(self.box_channels, 1, activation="relu", name="box_reduce")
            self.box_fc = keras.layers.Dense(self.box_hidden, activation="relu", name="box_fc")
            self.regressor = keras.layers.Dense(4 * k, kernel_initializer="zeros", name="box_regressor")

    def box_features(self, feature_map):
        """``[B, h, w, C]`` → ``[B, box_grid² · box_channels]``: 1×1 conv, adaptive average pool, flatten."""
        reduced = self.box_reduce(feature_map)
        grid = adaptive_average_pool(reduced, self.box_grid)
        return tf.reshape(grid, [tf.shape(grid)[0], self.box_grid * self.box_grid * self.box_channels])

    def heads(self, images, training):
        feature_map = self.backbone(images, training=training)[self.tap]
        if self.classifier_kind == "pooled":
            logits = tf.cast(self.classifier(self.pool(feature_map)), tf.float32)  # [B, C]
        else:
            logits = tf.cast(self.classifier(feature_map), tf.float32)  # [B, h, w, C + 1]
        if self.box_head == "dense":
            return logits, self._dense_boxes(feature_map)
        raw = tf.sigmoid(tf.cast(self.regressor(self.box_fc(self.box_features(feature_map))), tf.float32))
        raw = tf.reshape(raw, [tf.shape(raw)[0], -1, 4])  # [B, K, (cy, cx, h, w)] fractions of the image
        # Centre + size is a valid box whatever the regressor emits, and the zero
        # start is the centred half-size box (sorting two corner outputs
        # instead starts every box at zero size, both corners tied at 0.5).
        # Corners may leave the image; predictions are clipped to it.
        centre, half = raw[..., :2], raw[..., 2:] / 2
        return logits, tf.concat([centre - half, centre + half], -1)  # rel_yxyx

    def _dense_boxes(self, feature_map):
        """``[B, h, w, C_in]`` → ``[B, h·w, k, 4]`` ``rel_yxyx``: per cell (row-major)
        ``cy = (i + σ(ty)) / h``, ``cx = (j + σ(tx)) / w``, height ``σ(th)²``, width ``σ(tw)²``."""
        t = tf.sigmoid(tf.cast(self.box_map(feature_map), tf.float32))
        shape = tf.shape(t)
        b, h, w = shape[0], shape[1], shape[2]
        t = tf.reshape(t, [b, h, w, -1, 4])
        i = tf.cast(tf.range(h), tf.float32)[None, :, None, None]
        j = tf.cast(tf.range(w), tf.float32)[None, None, :, None]
        cy = (i + t[..., 0]) / tf.cast(h, tf.float32)
        cx = (j + t[..., 1]) / tf.cast(w, tf.float32)
        hh, hw = tf.square(t[..., 2]) / 2, tf.square(t[..., 3]) / 2
        boxes = tf.stack([cy - hh, cx - hw, cy + hh, cx + hw], axis=-1)
        return tf.reshape(boxes, [b, h * w, -1, 4])

    @staticmethod
    def _centre_cell(box, h, w):
        """Row-major index of the cell of an ``h × w`` map holding the centre of ``box [B, 4]`` ``rel_yxyx``."""
        cy, cx = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
        i = tf.clip_by_value(tf.cast(tf.floor(cy * tf.cast(h, tf.float32)), tf.int32), 0, h - 1)
        j = tf.clip_by_value(tf.cast(tf.floor(cx * tf.cast(w, tf.float32)), tf.int32), 0, w - 1)
        return i * w + j

    def call(self, images, training=False):
        images = tf.cast(images, tf.float32)
        logits, boxes = self.heads(images, training)
        if self.classifier_kind == "pooled":
            probs = tf.nn.softmax(logits)
        else:  # the best (cell, object class) pair
            cells = tf.nn.softmax(logits)[..., 1:]
            cells = tf.reshape(cells, [tf.shape(cells)[0], -1, self.num_classes])
            probs = tf.reduce_max(cells, axis=1)
            if self.box_head == "dense":  # that cell's boxes
                best = tf.argmax(tf.reduce_max(cells, axis=-1), axis=-1, output_type=tf.int32)
                boxes = tf.gather(boxes, best, batch_dims=1)  # [B, k, 4]
        label = tf.argmax(probs, axis=-1, output_type=tf.int32)
        box = boxes[:, 0] if self.class_agnostic else tf.gather(boxes, label, batch_dims=1)
        box = tf.clip_by_value(box, 0.0, 1.0)  # the part of the box inside the image
        out = box_ops.convert_format(box[:, None], "rel_yxyx", self.bounding_box_format, image_shape=tf.shape(images)[1:3])
        batch = tf.shape(images)[0]
        return {
            "boxes": out,
            "scores": tf.reduce_max(probs, axis=-1)[:, None],
            "labels": label[:, None],
            "num_detections": tf.ones([batch], tf.int32),
        }

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, **extras):
        valid = gt_labels >= 0
        has_object = tf.reduce_any(valid, axis=-1)
        first = tf.argmax(tf.cast(valid, tf.int32), axis=-1, output_type=tf.int32)
        label = tf.gather(gt_labels, first, batch_dims=1)
        box = box_ops.convert_format(tf.gather(gt_boxes, first, batch_dims=1), "yxyx", "rel_yxyx", image_shape=tf.shape(images)[1:3])
        logits, boxes = self.heads(images, training)
        if self.box_head == "dense":  # the boxes of the object's centre cell
            boxes = tf.gather(boxes, self._centre_cell(box, tf.shape(logits)[1], tf.shape(logits)[2]), batch_dims=1)
        weight = tf.cast(has_object, tf.float32)
        pred = boxes[:, 0] if self.class_agnostic else tf.gather(boxes, tf.maximum(label, 0), batch_dims=1)
        if self.box_loss == "giou":
            terms = 1.0 - loss_ops.giou(pred, box)  # rel_yxyx both: IoUs do not depend on the scale
            box_loss = tf.reduce_sum(terms * weight) / loss_ops.replica_normalizer(tf.reduce_sum(weight))
        else:
            box_loss = loss_ops.box_regression_loss(
                pred[:, None], box[:, None], weight[:, None], tf.reduce_sum(weight), kind=self.box_loss, beta=1.0 / 9.0
            )
        if self.classifier_kind == "pooled":
            cls_loss = loss_ops.softmax_cross_entropy(logits[:, None], label[:, None], weight[:, None])
        else:
            cls_loss = self._dense_class_loss(logits, box, label, weight)
        return {"cls_loss": cls_loss, "box_loss": self.box_loss_weight * box_loss}

    @staticmethod
    def _dense_class_loss(logits, box, label, weight):
        """Softmax CE of the class map: the object's class at its centre cell, background elsewhere.

        ``logits [B, h, w, C + 1]``, ``box [B, 4]`` ``rel_yxyx``, ``label [B]``,
        ``weight [B]`` (1 with an object) → object-cell mean + background-cell mean.
        """
        shape = tf.shape(logits)
        h, w = shape[1], shape[2]
        obj = tf.one_hot(ClassifyLocalize._centre_cell(box, h, w), h * w) * weight[:, None]  # [B, h·w]
        targets = tf.cast(obj, tf.int32) * (tf.maximum(label, 0)[:, None] + 1)
        flat = tf.reshape(logits, [shape[0], h * w, shape[3]])
        return loss_ops.softmax_cross_entropy(flat, targets, obj) + loss_ops.softmax_cross_entropy(flat, targets, 1.0 - obj)

