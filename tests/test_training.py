import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import models
from keras_det.export import export_saved_model
from keras_det.training import set_mixed_precision

from .models.replica_step import MeanBoxDetector
from .models.synthetic import rectangles


@pytest.fixture
def policy():
    yield set_mixed_precision
    set_mixed_precision("float32")


def _one_step(model, batch, lr=0.1):
    model.compile(optimizer=keras.optimizers.SGD(lr))
    model(batch["images"])
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(len(batch["images"])), epochs=1, verbose=0).history
    return history, [v.numpy() - b for v, b in zip(model.trainable_variables, before)]


def test_mixed_bfloat16_trains_predicts_float32_and_serves(policy, tmp_path):
    assert policy("mixed_bfloat16") == "mixed_bfloat16"
    batch = rectangles(num_images=2, size=64, num_classes=2, seed=5)
    model = models.SSD(2, backbone="tiny", image_size=(64, 64), feature_taps=("C4", "C5"), extra_filters=16, max_detections=5)
    assert model.dtype_policy.compute_dtype == "bfloat16" and model.dtype_policy.variable_dtype == "float32"
    history, moved = _one_step(model, batch, lr=0.01)
    assert all(np.isfinite(v[0]) for v in history.values()), history
    assert max(float(np.abs(m).max()) for m in moved) > 0
    out = model.predict(batch["images"], verbose=0)
    assert out["boxes"].dtype == np.float32 and out["scores"].dtype == np.float32
    path = export_saved_model(model, str(tmp_path))
    served = tf.saved_model.load(path).signatures["serving_tensor"](images=tf.constant(batch["images"].astype(np.uint8)))
    assert served["detection_boxes"].dtype == tf.float32 and served["detection_scores"].dtype == tf.float32
    assert served["detection_boxes"].shape == (2, 5, 4)


def test_mixed_float16_loss_scaling_gives_the_float32_step(policy):
    batch = rectangles(num_images=2, size=64, num_classes=2, seed=5)
    keras.utils.set_random_seed(0)
    _, reference = _one_step(MeanBoxDetector(), batch)
    policy("mixed_float16")
    keras.utils.set_random_seed(0)
    model = MeanBoxDetector()
    _, moved = _one_step(model, batch)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert float(model.optimizer.dynamic_scale.numpy()) > 1  # the loss was scaled ...
    for m, r in zip(moved, reference):  # ... and the gradients unscaled: the float32 step, to float16 precision
        np.testing.assert_allclose(m, r, rtol=2e-2, atol=2e-4)


def test_set_mixed_precision_rejects_unknown_policies(policy):
    with pytest.raises(ValueError, match="`policy` must be one of"):
        policy("float8")
