"""``keras.applications`` backbones with named multi-scale taps.

``build_backbone`` returns a functional ``keras.Model`` that takes images in
the data contract's range (float 0..255, RGB) — each application's own input
preprocessing is a layer inside — and returns a dict of feature maps named by
stride: ``C2`` (stride 4), ``C3`` (8), ``C4`` (16), ``C5`` (32).

A tap is the *last* layer of the network whose output has that stride — the
richest features at that resolution. For VGG16 (the seed's network) ``C4`` is
``block5_conv3`` (Faster R-CNN's conv5_3, stride 16); for ResNet50 ``C3/C4/C5``
are ``conv3_block4_out / conv4_block6_out / conv5_block3_out``. Taps are found
by probing output shapes rather than by layer names because some applications
(MobileNetV3) name layers with global counters (``activation_17``) that change
from one construction to the next.
"""

import os

import keras

from keras_det.layers.batch_norm import fuse_batch_norms
from keras_det.layers.preprocessing import ImagePreprocessing

TAP_STRIDES = {"C2": 4, "C3": 8, "C4": 16, "C5": 32}


def tiny_cnn(include_top=False, weights=None, input_shape=(None, None, 3), widths=(16, 32, 64, 128, 256)):
    """A small plain CNN (5 stride-2 stages of conv-BN-ReLU ×2) for CPU demos and tests.

    Not a ``keras.applications`` network and with no pretrained weights: it
    exists so that the demo and the tests train a detector from scratch in
    minutes on 2 CPU cores. Stage ``k`` (1-based) has stride ``2**k``.
    """
    if include_top:
        raise ValueError("The 'tiny' backbone has no classification top.")
    if weights == "imagenet":
        raise ValueError("The 'tiny' backbone has no ImageNet weights; use weights=None or a local file.")
    inputs = keras.Input(shape=tuple(input_shape))
    x = inputs
    for stage, width in enumerate(widths, start=1):
        for i, stride in enumerate((2, 1)):
            x = keras.layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"stage{stage}_conv{i + 1}")(x)
            x = keras.layers.BatchNormalization(name=f"stage{stage}_bn{i + 1}")(x)
            x = keras.layers.ReLU(name=f"stage{stage}_relu{i + 1}")(x)
    return keras.Model(inputs, x, name="tiny_cnn")


# name -> (constructor, preprocessing mode of keras.applications' preprocess_input)
_APPLICATIONS = {
    "tiny": (tiny_cnn, "tf"),
    "vgg16": (lambda **kw: keras.applications.VGG16(**kw), "caffe"),
    "resnet50": (lambda **kw: keras.applications.ResNet50(**kw), "caffe"),
    "mobilenet_v2": (lambda **kw: keras.applications.MobileNetV2(**kw), "tf"),
    # These three carry their own rescaling / normalization layers.
    "mobilenet_v3_small": (lambda **kw: keras.applications.MobileNetV3Small(**kw), "none"),
    "mobilenet_v3_large": (lambda **kw: keras.applications.MobileNetV3Large(**kw), "none"),
    "efficientnet_b0": (lambda **kw: keras.applications.EfficientNetB0(**kw), "none"),
}

BACKBONES = tuple(_APPLICATIONS)

_PROBE_SIZE = 224


def tap_stride(tap, allowed=("C3", "C4", "C5"), name="feature_tap"):
    """The stride of a detector's feature tap; a ValueError naming ``name`` otherwise."""
    if tap not in allowed:
        raise ValueError(f"`{name}` must be one of {tuple(allowed)}, got {tap!r}.")
    return TAP_STRIDES[tap]


def _check_taps(taps):
    taps = tuple(taps)
    unknown = [t for t in taps if t not in TAP_STRIDES]
    if not taps or unknown:
        raise ValueError(f"`taps` must be a non-empty subset of {tuple(TAP_STRIDES)}, got {taps!r}.")
    return taps


def tap_layer_indices(model, taps, probe_size=None):
    """Index in ``model.layers`` of the last layer at each tap's stride.

    Args:
        model: a functional ``keras.Model`` with a 4-D image input.
        taps: tap names (``"C3"``, …).
        probe_size: the model's input side, when its input shape is static.

    Returns:
        dict tap name -> layer index.
    """
    size = probe_size
    if size is None:
        shape = model.input_shape
        size = shape[1] if shape[1] is not None and shape[1] == shape[2] else None
    if size is None:
        raise ValueError(
            "Cannot find feature taps of a backbone with a dynamic or non-square input shape; "
            "build it with a static square `input_shape` (e.g. (224, 224, 3))."
        )
    found = {}
    for index, layer in enumerate(model.layers):
        out = getattr(layer, "output", None)
        shape = getattr(out, "shape", None)
        if shape is None or len(shape) != 4 or shape[1] is None:
            continue
        for tap in taps:
            stride = TAP_STRIDES[tap]
            if shape[1] in (size // stride, -(-size // stride)):
                found[tap] = index
    missing = [t for t in taps if t not in found]
    if missing:
        raise ValueError(f"The backbone has no layer at the stride of {missing} for input size {size}.")
    return found


def _probe_indices(constructor, taps):
    probe = constructor(include_top=False, weights=None, input_shape=(_PROBE_SIZE, _PROBE_SIZE, 3))
    return tap_layer_indices(probe, taps, _PROBE_SIZE)


def _resolve_weights(weights, name):
    if weights is None or weights == "imagenet":
        return weights
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"backbone weights file {path!r} for {name!r} does not exist.")
        if not path.endswith(".h5"):
            raise ValueError(
                f"backbone weights file {path!r} must be a Keras `.h5` or `.weights.h5` file."
            )
        return path
    raise ValueError(f"`weights` must be 'imagenet', None or a file path, got {weights!r}.")


def build_backbone(name="mobilenet_v2", weights=None, input_shape=(None, None, 3), taps=("C3", "C4", "C5")):
    """Builds a feature-extractor backbone.

    Args:
        name: one of ``BACKBONES`` (``"vgg16"``, ``"resnet50"``,
            ``"mobilenet_v2"``, ``"mobilenet_v3_small"``,
            ``"mobilenet_v3_large"``, ``"efficientnet_b0"``, and ``"tiny"``,
            a small CNN without pretrained weights for CPU demos), or a functional
            ``keras.Model`` whose input is already preprocessed as it expects
            (its taps are found by probing its static input shape).
        weights: ``"imagenet"`` (downloaded by Keras on first use; needs
            internet), ``None`` (random init) or a path to a Keras ``.h5`` /
            ``.weights.h5`` file of the same application without its top.
        input_shape: ``(H, W, 3)``; ``None`` sides give a size-agnostic model.
        taps: which of ``C2``…``C5`` to return.

    Returns:
        ``keras.Model`` mapping float32 images ``[B, H, W, 3]`` in 0..255 (RGB)
        to a dict ``{tap: [B, ceil(H / stride), ceil(W / stride), C_tap]}``
        (VGG16 floors odd sizes: its max-pools are 'valid').

    Raises:
        ValueError: unknown name or taps, or a weights file that does not fit.
        FileNotFoundError: a weights path that does not exist.
    """
    taps = _check_taps(taps)
    if isinstance(name, keras.Model):
        indices = tap_layer_indices(name, taps)
        outputs = {tap: name.layers[i].output for tap, i in indices.items()}
        return keras.Model(name.inputs, outputs, name=f"{name.name}_backbone")
    key = str(name).lower()
    if key not in _APPLICATIONS:
        raise ValueError(f"Unknown backbone {name!r}; expected one of {', '.join(BACKBONES)} or a keras.Model.")
    constructor, mode = _APPLICATIONS[key]
    weights = _resolve_weights(weights, key)
    indices = _probe_indices(constructor, taps)

    base = constructor(
        include_top=False,
        weights="imagenet" if weights == "imagenet" else None,
        input_shape=tuple(input_shape),
    )
    if weights not in (None, "imagenet"):
        try:
            base.load_weights(weights)
        except Exception as error:  # Keras raises several types for a mismatched file.
            raise ValueError(
                f"backbone weights file {weights!r} does not fit {key!r} (include_top=False): {error}"
            ) from error
    # TensorFlow's fused kernel for the BatchNormalizations (training steps: keras_det.layers.batch_norm).
    fuse_batch_norms(base)
    # Same constructor, same layer order: the probe's indices hold in `base`.
    features = keras.Model(
        base.inputs, {tap: base.layers[i].output for tap, i in indices.items()}, name=key
    )
    images = keras.Input(shape=tuple(input_shape), name="images")
    x = ImagePreprocessing(mode=mode, name="preprocess")(images)
    return keras.Model(images, features(x), name=f"{key}_backbone")
