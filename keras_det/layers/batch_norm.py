"""BatchNormalization on TensorFlow's fused kernel.

Keras 3 computes BatchNormalization from primitives on every backend:
``tf.nn.moments`` (a Mean, a SquaredDifference, another Mean) and
``tf.nn.batch_normalization`` (Muls and Adds over the whole feature map),
and their gradients (Tile, Sum, more Muls). On CPU a training step of
SSDLite-MobileNetV2 (320 px, batch 8) spent about 40 % of its op time there
(`benchmarks/profile_ops.py`: Mul 19 %, Tile 10 %, SquaredDifference 5 %,
Sum 4 %, Mean 3 %). TensorFlow's ``FusedBatchNormV3`` (oneDNN on CPU) does
the statistics, the normalisation and its gradient in one op each.

`FusedBatchNormalization` is ``keras.layers.BatchNormalization`` with that
kernel where it applies -- TensorFlow backend, 4-D channels-last inputs,
no mask, no renorm, not synchronized -- and Keras' own path elsewhere. The
semantics are Keras 3's: the batch variance that updates ``moving_variance``
is the biased one (TensorFlow's op returns Bessel-corrected variance, which
is scaled back by ``(n - 1) / n``); outputs, gradients and moving statistics
equal Keras' up to float32 rounding (tests/layers/test_batch_norm.py). It adds
no state: `fuse_batch_norms` switches the class of a built model's
BatchNormalizations (e.g. a ``keras.applications`` backbone's) in place.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_det")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by ``FusedBatchNormV3`` where it applies.

    Same arguments, weights and config as the Keras layer.

    Call arguments:
        inputs: ``[B, H, W, C]`` (fused) or any shape Keras accepts.
        training: batch statistics (and moving-statistics update) or the moving ones.
        mask: as Keras (a mask takes Keras' path).
    """

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and inputs.shape.rank == 4
            and self.axis in (-1, 3)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, "float32")  # as Keras: statistics in float32 whatever the compute dtype
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels], "float32")
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels], "float32")
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            # The op returns the Bessel-corrected batch variance; Keras updates with the biased one.
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), "float32")
            variance = tf.where(n > 1.0, variance * (n - 1.0) / tf.maximum(n, 1.0), tf.zeros_like(variance))
            self.moving_mean.assign(self.moving_mean * self.momentum + tf.stop_gradient(mean) * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + tf.stop_gradient(variance) * (1.0 - self.momentum)
            )
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon, data_format="NHWC",
                is_training=False,
            )
        return tf.cast(y, self.compute_dtype)


def fuse_batch_norms(model):
    """Switches every plain ``keras.layers.BatchNormalization`` inside ``model`` to `FusedBatchNormalization`.

    In place, nested models included; the layers keep their variables and
    config (the subclass adds no state, only ``call`` changes). Returns the
    number of layers switched.
    """
    count = 0
    for layer in model._flatten_layers(include_self=False):
        if type(layer) is keras.layers.BatchNormalization:
            layer.__class__ = FusedBatchNormalization
            count += 1
    return count
