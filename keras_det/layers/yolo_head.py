"""YOLO heads and neck: ``YOLOv1Head`` (S×S grid from fully connected layers),
``YOLONeck`` (small FPN + PAN over C3/C4/C5) and ``YOLOHead`` (per-scale
prior predictors).

(The design lists the single-shot heads in ``heads.py``; this module keeps
them apart until the lead merges them.)
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_det.layers.batch_norm import FusedBatchNormalization
from keras_det.ops.pooling import adaptive_average_pool


@keras.saving.register_keras_serializable(package="keras_det")
class ConvBNAct(keras.layers.Layer):
    """Conv2D (no bias) → BatchNorm → LeakyReLU(0.1), "same" padding.

    Call: ``[B, H, W, C]`` → ``[B, ceil(H / strides), ceil(W / strides), filters]``.
    """

    def __init__(self, filters, kernel_size=3, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.conv = keras.layers.Conv2D(self.filters, self.kernel_size, self.strides, padding="same", use_bias=False, name="conv")
        self.bn = FusedBatchNormalization(name="bn")
        self.act = keras.layers.LeakyReLU(0.1, name="leaky")

    def build(self, input_shape):
        self.conv.build(tuple(input_shape))
        if self.bn is not None:
            self.bn.build(tuple(input_shape[:-1]) + (self.filters,))

    def drop_batch_norm(self):
        """Inference form (`keras_det.models.folding.inference_copy`, before the layer is built): a biased
        convolution, no BatchNorm; the folded kernel and bias are assigned after building."""
        if self.built:
            raise ValueError(f"{self.name}: drop_batch_norm() must be called before the layer is built.")
        self._tracker.untrack(self.bn)
        self._tracker.untrack(self.conv)
        self.bn = None
        self.conv = keras.layers.Conv2D(self.filters, self.kernel_size, self.strides, padding="same", use_bias=True,
                                        name="conv")

    def call(self, x, training=False):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x, training=training)
        return self.act(x)

    def compute_output_shape(self, input_shape):
        def side(n):
            return None if n is None else -(-n // self.strides)

        return (input_shape[0], side(input_shape[1]), side(input_shape[2]), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides})
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class YOLOv1Head(keras.layers.Layer):
    """YOLO v1's detection head (Redmon et al., 2016).

    Two 3×3 convolutions (the second with stride 2 when ``downsample``, as
    the paper's 14 → 7 reduction), flatten, a fully connected layer with LeakyReLU(0.1) and
    dropout, and a linear layer with ``S * S * (5 B + C)`` outputs reshaped to
    the grid. The paper uses 1024-channel convs and a 4096-wide FC layer; the
    defaults here are smaller.

    Args:
        grid_size: ``S`` (7).
        boxes_per_cell: ``B`` (2).
        num_classes: ``C``.
        filters: channels of the two convolutions.
        fc_dim: width of the hidden FC layer.
        dropout: dropout rate after it (0.5 in the paper).
        downsample: stride 2 in the second convolution (the paper's; turn it
            off for maps that are already about ``S × S``, e.g. small inputs).
        local: add a per-cell path to the FC output: the conv map
            adaptive-average-pooled to ``S × S`` and a 1×1 conv to the
            ``5 B + C`` values of each cell (weights shared by the cells, so
            every object trains them; the FC path keeps the paper's global
            view). Off by default (the paper's head).

    Call arguments:
        features: ``[B, h, w, C_in]`` with static ``h, w`` (the FC layer fixes
            the input size).

    Returns:
        float32 ``[batch, S, S, 5 B + C]`` raw outputs: for each predictor
        ``b`` the 5 values ``[5b : 5b + 5]`` = ``(ty, tx, th, tw, confidence)``,
        then ``C`` class logits (one distribution per cell).
    """

    def __init__(self, grid_size=7, boxes_per_cell=2, num_classes=20, filters=256, fc_dim=512, dropout=0.5,
                 downsample=True, local=False, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = int(grid_size)
        self.boxes_per_cell = int(boxes_per_cell)
        self.num_classes = int(num_classes)
        self.filters = int(filters)
        self.fc_dim = int(fc_dim)
        self.dropout_rate = float(dropout)
        self.downsample = bool(downsample)
        self.local = bool(local)
        self.depth = 5 * self.boxes_per_cell + self.num_classes
        self.conv1 = ConvBNAct(self.filters, 3, 1, name="conv1")
        self.conv2 = ConvBNAct(self.filters, 3, 2 if self.downsample else 1, name="conv2")
        self.fc = keras.layers.Dense(self.fc_dim, name="fc")
        self.act = keras.layers.LeakyReLU(0.1)
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.out = keras.layers.Dense(
            self.grid_size * self.grid_size * self.depth,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="detections",
        )
        self.local_out = (
            keras.layers.Conv2D(self.depth, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01), name="local_detections")
            if self.local else None
        )

    def build(self, input_shape):
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError("YOLOv1Head needs a static feature-map size (build the model with a fixed image_size).")
        self.conv1.build(input_shape)
        shape = self.conv1.compute_output_shape(input_shape)
        self.conv2.build(shape)
        shape = self.conv2.compute_output_shape(shape)
        self.fc.build((None, shape[1] * shape[2] * shape[3]))
        self.out.build((None, self.fc_dim))
        if self.local_out is not None:
            self.local_out.build((None, self.grid_size, self.grid_size, shape[3]))

    def call(self, features, training=False):
        fmap = self.conv2(self.conv1(features, training=training), training=training)
        x = tf.reshape(fmap, [tf.shape(fmap)[0], -1])
        x = self.dropout(self.act(self.fc(x)), training=training)
        x = tf.reshape(self.out(x), [-1, self.grid_size, self.grid_size, self.depth])
        if self.local_out is not None:
            x = x + self.local_out(adaptive_average_pool(fmap, self.grid_size))
        return tf.cast(x, tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "grid_size": self.grid_size,
                "boxes_per_cell": self.boxes_per_cell,
                "num_classes": self.num_classes,
                "filters": self.filters,
                "fc_dim": self.fc_dim,
                "dropout": self.dropout_rate,
                "downsample": self.downsample,
                "local": self.local,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class YOLONeck(keras.layers.Layer):
    """A small FPN (top-down) + PAN (bottom-up) neck over three maps.

    ``C3, C4, C5`` are projected to ``filters`` channels by 1×1 convs; the
    top-down path upsamples (nearest) and fuses by concatenation + 3×3 conv
    into ``P4, P3``; the bottom-up path (PANet) goes back with stride-2 3×3
    convs into ``N4, N5``.

    Call arguments:
        features: list ``[C3, C4, C5]`` (strides 8, 16, 32).

    Returns:
        list ``[P3, N4, N5]`` with ``filters`` channels at the input sizes.
    """

    def __init__(self, filters=128, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        f = self.filters
        self.lateral = [ConvBNAct(f, 1, name=f"lateral{i}") for i in range(3)]
        self.top_down = [ConvBNAct(f, 3, name=f"top_down{i}") for i in range(2)]
        self.down = [ConvBNAct(f, 3, 2, name=f"down{i}") for i in range(2)]
        self.bottom_up = [ConvBNAct(f, 3, name=f"bottom_up{i}") for i in range(2)]

    def build(self, input_shape):
        for layer, shape in zip(self.lateral, input_shape):
            layer.build(tuple(shape))
        for shape, layer in zip(input_shape[:2][::-1], self.top_down):
            layer.build(tuple(shape[:-1]) + (2 * self.filters,))
        for shape, down, fuse in zip(input_shape[:2], self.down, self.bottom_up):
            down.build(tuple(shape[:-1]) + (self.filters,))
            fuse.build(tuple(shape[:-1]) + (2 * self.filters,))

    @staticmethod
    def _upsample_to(x, target):
        return tf.image.resize(x, tf.shape(target)[1:3], method="nearest")

    @staticmethod
    def _crop_to(x, target):
        # A stride-2 'same' conv ceils; backbones with 'valid' pools (VGG16) floor.
        shape = tf.shape(target)
        return x[:, : shape[1], : shape[2], :]

    def call(self, features, training=False):
        c3, c4, c5 = [lat(x, training=training) for lat, x in zip(self.lateral, features)]
        p5 = c5
        p4 = self.top_down[0](tf.concat([self._upsample_to(p5, c4), c4], -1), training=training)
        p3 = self.top_down[1](tf.concat([self._upsample_to(p4, c3), c3], -1), training=training)
        d4 = self._crop_to(self.down[0](p3, training=training), p4)
        n4 = self.bottom_up[0](tf.concat([d4, p4], -1), training=training)
        d5 = self._crop_to(self.down[1](n4, training=training), p5)
        n5 = self.bottom_up[1](tf.concat([d5, p5], -1), training=training)
        return [p3, n4, n5]

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters})
        return config


@keras.saving.register_keras_serializable(package="keras_det")
class YOLOHead(keras.layers.Layer):
    """Per-scale YOLO predictors (YOLOv3 style, sigmoid classes).

    On each level a 3×3 conv (BN, LeakyReLU) then a 1×1 conv predicts, for
    each of the level's ``A_l`` priors, ``(ty, tx, th, tw, objectness)`` and
    ``num_classes`` class logits. The objectness bias starts at
    ``log(p / (1 - p))`` with ``p = prior_probability`` so the untrained
    head does not flood the loss with confident negatives.

    Args:
        num_classes: object classes (no background: objectness plays its role).
        num_priors: priors per cell for each level (``(3, 3, 3)``).
        filters: channels of the 3×3 conv.
        prior_probability: initial objectness (0.01).

    Call arguments:
        features: list of ``[B, h_l, w_l, C]``, finest first.

    Returns:
        float32 ``[B, N, 5 + num_classes]``, ``N = sum_l h_l w_l A_l``, level
        by level, row-major over cells, then the priors of a cell.
    """

    def __init__(self, num_classes, num_priors=(3, 3, 3), filters=128, prior_probability=0.01, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.num_priors = tuple(int(a) for a in num_priors)
        self.filters = int(filters)
        self.prior_probability = float(prior_probability)
        self.depth = 5 + self.num_classes
        self.convs = [ConvBNAct(self.filters, 3, name=f"conv{i}") for i in range(len(self.num_priors))]
        self.preds = []
        for i, a in enumerate(self.num_priors):
            self.preds.append(
                keras.layers.Conv2D(a * self.depth, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01), name=f"pred{i}")
            )

    def build(self, input_shape):
        if len(input_shape) != len(self.num_priors):
            raise ValueError(f"YOLOHead has {len(self.num_priors)} levels but got {len(input_shape)} feature maps.")
        bias = np.zeros([self.depth], np.float32)
        bias[4] = math.log(self.prior_probability / (1.0 - self.prior_probability))
        for shape, conv, pred, a in zip(input_shape, self.convs, self.preds, self.num_priors):
            conv.build(tuple(shape))
            pred.build(tuple(shape[:-1]) + (self.filters,))
            pred.bias.assign(np.tile(bias, a))

    def call(self, features, training=False):
        batch = tf.shape(features[0])[0]
        outputs = []
        for x, conv, pred in zip(features, self.convs, self.preds):
            outputs.append(tf.reshape(pred(conv(x, training=training)), [batch, -1, self.depth]))
        return tf.cast(tf.concat(outputs, axis=1), tf.float32)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_classes": self.num_classes,
                "num_priors": self.num_priors,
                "filters": self.filters,
                "prior_probability": self.prior_probability,
            }
        )
        return config
