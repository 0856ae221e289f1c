import keras
import numpy as np

from keras_det.layers.window_classifier import WindowClassifier
from keras_det.models.sliding_window import window_shapes


def test_window_kernels_cover_the_footprint():
    layer = WindowClassifier(2, window_shapes((16, 64, 100), (1.0, 4.0)), stride=16)
    # (h, w) = (16, 16) (64, 64) (100, 100) (32, 8) (128, 32) (200, 50) -> odd cell counts
    assert layer.kernel_sizes == [(1, 1), (5, 5), (7, 7), (3, 1), (9, 3), (13, 3)]
    logits, deltas = layer(np.zeros((2, 5, 6, 8), np.float32))
    assert logits.shape == (2, 5 * 6 * 6, 3) and deltas.shape == (2, 5 * 6 * 6, 4)
    assert WindowClassifier.from_config(layer.get_config()).kernel_sizes == layer.kernel_sizes


def test_window_classifier_serializes_under_its_registered_name():
    layer = WindowClassifier(2, ((16.0, 16.0), (32.0, 8.0)), stride=16, hidden_dim=4, box_regression=False)
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "keras_det>WindowClassifier"
    # files saved before the move name the old module; the registered name still finds the class
    config["module"] = "keras_det.models.sliding_window"
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, WindowClassifier) and clone.get_config() == layer.get_config()
