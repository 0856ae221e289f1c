import keras
import numpy as np
import pytest

from keras_det.backbones import build_backbone
from keras_det.models import transfer


def _data(n=8, size=32, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32), rng.integers(0, classes, n)


def test_recommend_strategy_table():
    assert transfer.recommend_strategy(200, "similar")["strategy"] == "linear_classifier"
    low_diff = transfer.recommend_strategy(200, 0.1)
    assert low_diff["strategy"] == "linear_classifier_earlier_stage" and low_diff["tap"] == "C4"
    assert transfer.recommend_strategy(50_000, "similar")["strategy"] == "fine_tune_top"
    many_diff = transfer.recommend_strategy(50_000, "different")
    assert many_diff["strategy"] == "fine_tune_more" and many_diff["lr_multiplier"] == 0.1
    assert many_diff["fine_tune_layers"] > transfer.recommend_strategy(50_000, "similar")["fine_tune_layers"]
    with pytest.raises(ValueError, match="similarity"):
        transfer.recommend_strategy(10, "same")


def test_frozen_classifier_moves_only_the_head():
    x, y = _data()
    # ResNet50: its BatchNorm statistics would move if the backbone were not frozen.
    model = transfer.TransferClassifier(3, backbone="resnet50", input_shape=(32, 32, 3))
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model(x[:1])
    before = [w.numpy().copy() for w in model.backbone.weights]
    head_before = model.classifier.kernel.numpy().copy()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    for b, w in zip(before, model.backbone.weights):
        np.testing.assert_array_equal(b, w.numpy())  # incl. BatchNorm moving statistics
    assert not np.allclose(head_before, model.classifier.kernel.numpy())
    probs = model.predict(x, verbose=0)
    assert probs.shape == (8, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_fine_tune_unfreezes_top_layers_keeps_bn_frozen():
    backbone = build_backbone("resnet50", input_shape=(32, 32, 3), taps=("C5",))
    multipliers = transfer.fine_tune(backbone, num_layers=3, lr_multiplier=0.1)
    trainable = [layer for layer in transfer.iter_layers(backbone) if layer.trainable and layer.weights]
    assert [layer.name for layer in trainable] == ["conv5_block3_1_conv", "conv5_block3_2_conv", "conv5_block3_3_conv"]
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    assert len(multipliers) == 6 and set(multipliers.values()) == {0.1}  # 3 kernels + 3 biases
    assert transfer.fine_tune(backbone, 0) == {} and not backbone.trainable_weights


def test_lr_multiplier_scales_the_step_exactly():
    x, y = _data(n=4)
    model = transfer.TransferClassifier(3, backbone="vgg16", input_shape=(32, 32, 3))  # no BatchNorm: real gradients
    transfer.fine_tune(model.backbone, num_layers=1, lr_multiplier=0.1)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    import tensorflow as tf

    tuned = [v for v in model.backbone.trainable_weights if v.path in model.backbone.lr_multipliers]
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, tuned)
    # The variable with the largest gradient: the step must be measurable (a gradient of ~1e-13
    # passed any multiplier at atol 1e-6, and the multipliers were once silently 1).
    var, grad = max(zip(tuned, grads), key=lambda vg: float(tf.reduce_max(tf.abs(vg[1]))))
    grad = grad.numpy()
    assert np.abs(grad).max() > 1e-4
    before = var.numpy().copy()
    model.train_on_batch(x, y)
    # SGD: w <- w - lr * multiplier * g, with lr = 1 and multiplier = 0.1.
    np.testing.assert_allclose(before - var.numpy(), 0.1 * grad, rtol=1e-3, atol=1e-4 * np.abs(grad).max())


def test_transfer_classifier_config_and_earlier_tap():
    model = transfer.TransferClassifier(4, backbone="vgg16", input_shape=(32, 32, 3), tap="C4")
    assert model(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 4)
    clone = transfer.TransferClassifier.from_config(model.get_config())
    assert clone.tap == "C4" and clone.num_classes == 4
