"""FusedBatchNormalization equals keras.layers.BatchNormalization (outputs, gradients, moving statistics)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det.layers.batch_norm import FusedBatchNormalization, fuse_batch_norms


def _pair(**kwargs):
    keras.utils.set_random_seed(0)
    plain = keras.layers.BatchNormalization(**kwargs)
    fused = FusedBatchNormalization(**kwargs)
    x = tf.random.normal((3, 5, 4, 6), mean=2.0, stddev=3.0, seed=1)
    plain.build(x.shape)
    fused.build(x.shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") if i < 2 else rng.uniform(0.5, 2, w.shape).astype("float32")
               for i, w in enumerate(plain.get_weights())]
    plain.set_weights(weights)
    fused.set_weights(weights)
    return plain, fused, x


@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9, "epsilon": 1e-5}, {"scale": False}, {"center": False}])
def test_training_step_matches_keras(kwargs):
    plain, fused, x = _pair(**kwargs)
    out = {}
    for name, layer in (("plain", plain), ("fused", fused)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.range(1.0, 7.0))  # a non-uniform upstream gradient
        grads = tape.gradient(loss, [x] + layer.trainable_weights)
        out[name] = (y, grads, [w.numpy() for w in layer.non_trainable_weights])
    np.testing.assert_allclose(out["fused"][0], out["plain"][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(out["fused"][1], out["plain"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # Moving mean and (biased) variance updated as Keras does.
    for a, b in zip(out["fused"][2], out["plain"][2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(out["fused"][2][1], fused.moving_variance_initializer((6,)))


def test_inference_and_frozen_use_the_moving_statistics():
    plain, fused, x = _pair()
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), rtol=1e-5, atol=1e-5)
    plain.trainable = fused.trainable = False
    before = fused.moving_mean.numpy()
    np.testing.assert_allclose(fused(x, training=True), plain(x, training=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fused.moving_mean.numpy(), before)


def test_other_shapes_take_keras_path_and_one_element_batches_give_zero_variance():
    keras.utils.set_random_seed(0)
    fused, plain = FusedBatchNormalization(), keras.layers.BatchNormalization()
    x2 = tf.random.normal((4, 3))  # rank 2: Keras' own path
    np.testing.assert_allclose(fused(x2, training=True), plain(x2, training=True), rtol=1e-6)
    one = FusedBatchNormalization(momentum=0.0)
    one(tf.ones((1, 1, 1, 2)), training=True)  # n = 1: biased variance 0 (TF's corrected one would be inf / nan)
    np.testing.assert_array_equal(one.moving_variance.numpy(), [0.0, 0.0])


def test_fuse_batch_norms_switches_a_built_model_in_place_and_it_serializes(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    y = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.BatchNormalization(axis=-1)(y))
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    before = model(x, training=False).numpy()
    assert fuse_batch_norms(model) == 2 and fuse_batch_norms(model) == 0
    assert all(type(layer) is FusedBatchNormalization for layer in model.layers[2:])
    np.testing.assert_allclose(model(x, training=False), before, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[2]) is FusedBatchNormalization
    np.testing.assert_allclose(loaded(x, training=False), before, rtol=1e-5, atol=1e-6)
