import keras
import numpy as np

from keras_det.optimizers import with_lr_multipliers


def test_with_lr_multipliers_scales_only_the_listed_variables():
    slow = keras.Variable(np.zeros(2, np.float32), name="slow")
    fast = keras.Variable(np.zeros(2, np.float32), name="fast")
    optimizer = with_lr_multipliers(keras.optimizers.SGD(learning_rate=1.0), {slow.path: 0.1})
    assert optimizer.lr_multipliers == {slow.path: 0.1}
    optimizer.apply_gradients([(np.ones(2, np.float32), slow), (np.ones(2, np.float32), fast)])
    np.testing.assert_allclose(slow.numpy(), [-0.1, -0.1], rtol=1e-6)
    np.testing.assert_allclose(fast.numpy(), [-1.0, -1.0])
    # wrapping again replaces the multipliers instead of stacking them
    with_lr_multipliers(optimizer, {slow.path: 0.5})
    optimizer.apply_gradients([(np.ones(2, np.float32), slow), (np.ones(2, np.float32), fast)])
    np.testing.assert_allclose(slow.numpy(), [-0.6, -0.6], rtol=1e-6)


def test_with_lr_multipliers_applies_inside_fit():
    # train_on_batch runs update_step in a tf.function on the backing tf.Variables (no `path`)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    kernel = model.layers[0].kernel
    model.compile(with_lr_multipliers(keras.optimizers.SGD(learning_rate=1.0), {kernel.path: 0.1}), "mse")
    model.train_on_batch(np.ones((1, 2), np.float32), np.ones((1, 1), np.float32))
    # mse gradient 2 (0 - 1) = -2 per weight; SGD at lr 1 × 0.1
    np.testing.assert_allclose(kernel.numpy().ravel(), [0.2, 0.2], rtol=1e-6)
