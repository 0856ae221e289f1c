"""keras_det.presets: the one place detector settings are spelled."""

import inspect

import pytest

from keras_det import presets
from keras_det.models.faster_rcnn import _ROI_DEFAULTS, FasterRCNN

SQUARE = ("ssd", "ssdlite", "yolo")  # built for one image size


def _options(name, size):
    return {"image_size": (size, size)} if name.startswith(SQUARE) else {}


def test_names_arguments_and_errors():
    assert presets.names() == sorted(presets.PRESETS)
    for family in ("cpu", "320"):
        for model in ("faster_rcnn", "mask_rcnn", "fast_rcnn", "rcnn", "ssd", "ssdlite", "yolo_v1", "yolo",
                      "sliding_window", "classify_localize"):
            assert f"{model}_{family}" in presets.PRESETS
    args = presets.arguments("faster_rcnn_cpu")
    args["anchor_sizes"] = (1,)
    assert presets.arguments("faster_rcnn_cpu")["anchor_sizes"] == (12, 24, 48, 96)  # a fresh copy
    assert presets.arguments("faster_rcnn_cpu", rpn_filters=8)["rpn_filters"] == 8
    with pytest.raises(ValueError, match=r"unknown preset 'faster_rcnn'; expected one of \["):
        presets.build("faster_rcnn", 3)


@pytest.mark.parametrize("name", [n for n in presets.names() if not n.endswith("_320")])
def test_tiny_presets_construct(name):
    # The tiny-backbone presets build (construction checks every argument the
    # constructor validates); tests/models run them forward and train them.
    model = presets.build(name, 3, bounding_box_format="xyxy", **_options(name, 128))
    assert type(model) is presets.model_class(name)


@pytest.mark.parametrize("name", [n for n in presets.names() if n.endswith("_320")])
def test_speed_presets_name_real_arguments(name):
    # Building the ImageNet-class backbones costs seconds each (the speed
    # benchmark does it); here each argument must be one the class takes.
    import keras

    accepted = set()
    for cls in presets.model_class(name).__mro__:  # **kwargs pass up to the base classes
        if cls is keras.Model:
            break
        if "__init__" in vars(cls):
            accepted |= set(inspect.signature(cls.__init__).parameters)
    if issubclass(presets.model_class(name), FasterRCNN):
        accepted |= set(_ROI_DEFAULTS)  # the FastRCNN arguments FasterRCNN takes through **kwargs
    assert set(presets.arguments(name)) <= accepted - {"self", "args", "kwargs"}


def test_keypoint_presets_match_the_shapes_keypoints():
    from keras_det.data import shapes

    for name in ("mask_rcnn_keypoints_cpu", "mask_rcnn_keypoints_test"):
        assert presets.arguments(name)["num_keypoints"] == shapes.NUM_KEYPOINTS
    # The keypoint preset is Mask R-CNN's plus the keypoint head, nothing else.
    assert {k: v for k, v in presets.arguments("mask_rcnn_keypoints_cpu").items() if k != "num_keypoints"} == \
        presets.arguments("mask_rcnn_cpu")
