"""ConfigFromArguments: a model's config is its constructor arguments, recorded once at construction."""

import inspect

import keras
import numpy as np
import pytest

from keras_det import presets
from keras_det.backbones import tiny_cnn
from keras_det.models import FasterRCNN, MaskRCNN, TransferClassifier
from keras_det.models.faster_rcnn import _ROI_DEFAULTS

MICRO = [n for n in presets.names() if n.endswith("_micro")]


def _parameters(cls):
    """The named constructor parameters of ``cls`` and of every ``__init__`` its ``**kwargs`` reach, but the Keras ones."""
    extra = set(_ROI_DEFAULTS) if issubclass(cls, FasterRCNN) else set()  # FastRCNN arguments FasterRCNN takes
    return extra | {
        name
        for klass in cls.__mro__
        if "__init__" in vars(klass) and klass.__module__.startswith("keras_det")
        for name, p in inspect.signature(klass.__init__).parameters.items()
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and name not in ("self", "loss_names")
    }


@pytest.mark.parametrize("name", MICRO)
def test_config_holds_every_argument_and_rebuilds_the_same_model(name):
    model = presets.build(name, 3, bounding_box_format="yxyx")
    config = model.get_config()
    cls = presets.model_class(name)
    own = {k for k, p in inspect.signature(cls.__init__).parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD} - {"self"}
    assert own <= set(config)  # defaults included, not only the preset's settings
    assert set(config) <= _parameters(cls) | {"name", "image_size", "class_names"}
    for key, value in presets.arguments(name).items():
        assert config[key] == value, key
    assert config["bounding_box_format"] == "yxyx" and config["num_classes"] == 3 and config.get("backbone_weights") is None
    rebuilt = cls.from_config(config)
    assert rebuilt.get_config() == config
    assert [w.shape for w in rebuilt.weights] == [w.shape for w in model.weights]


def test_kwargs_of_the_parent_class_are_recorded_and_numpy_numbers_become_python():
    model = MaskRCNN(np.int64(2), backbone="tiny", num_keypoints=0, fc_dims=(16, 16), rpn_filters=np.int32(8),
                     anchor_sizes=(np.float32(8.0), 16), mask_conv_dims=8, mask_num_convs=1, name="m")
    config = model.get_config()
    assert config["num_classes"] == 2 and type(config["num_classes"]) is int
    assert config["rpn_filters"] == 8 and type(config["rpn_filters"]) is int
    assert config["anchor_sizes"] == (8.0, 16) and type(config["anchor_sizes"][0]) is float
    assert config["fc_dims"] == (16, 16) and config["name"] == "m"
    assert "kwargs" not in config and "fpn" not in config  # only the FasterRCNN kwargs that were passed
    assert MaskRCNN.from_config(config).get_config() == config


def test_saved_weights_argument_is_never_a_download_and_remembered_attributes_are_saved(tmp_path):
    weights = tmp_path / "w.weights.h5"
    tiny_cnn(input_shape=(None, None, 3)).save_weights(str(weights))
    model = TransferClassifier(2, backbone="tiny", backbone_weights=str(weights), input_shape=(32, 32, 3))
    model.image_size, model.class_names = (32, 32), ("a", "b")
    config = model.get_config()
    assert config["backbone_weights"] is None and config["image_size"] == [32, 32] and config["class_names"] == ["a", "b"]
    again = TransferClassifier.from_config(config)
    assert again.class_names == ("a", "b") and tuple(again.image_size) == (32, 32)


def test_custom_backbone_is_not_serializable_by_config():
    inputs = keras.Input((64, 64, 3))
    net = keras.Model(inputs, {"C4": keras.layers.Conv2D(8, 3, strides=16, padding="same")(inputs)})
    model = FasterRCNN(2, backbone=net, fc_dims=(8, 8), rpn_filters=8)
    with pytest.raises(NotImplementedError, match="custom keras.Model backbone"):
        model.get_config()


def test_wrong_arguments_raise_python_s_own_error():
    with pytest.raises(TypeError, match="num_classes"):
        FasterRCNN(backbone="tiny")
    with pytest.raises(ValueError, match="no_such_argument"):  # Keras names unknown keyword arguments
        TransferClassifier(2, backbone="tiny", no_such_argument=1)


@pytest.mark.parametrize("name", ["ssd_micro", "yolo_micro", "yolo_v1_micro"])
def test_fixed_size_models_parse_image_size_as_everything_else_does(name):
    # One parser (ops.image.image_hw) for the models, the data pipeline, the export and the CLI.
    assert presets.build(name, 2, image_size=64).image_size == (64, 64)
    assert presets.build(name, 2, image_size=(64, 96)).image_size == (64, 96)
    for bad in (0, (64,), (64, 0), (64.0, 64), "64"):
        with pytest.raises(ValueError, match=r"^`image_size` must be one positive integer S \(square\) or two"):
            presets.build(name, 2, image_size=bad)
