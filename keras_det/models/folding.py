"""Inference copies with each BatchNormalization folded into the convolution before it.

At inference a BatchNormalization is a fixed per-channel affine map,
``y = gamma * (x - mean) / sqrt(var + eps) + beta``. After a convolution
``x = W * u + b`` it folds into the convolution itself:

    W' = W * s,   b' = (b - mean) * s + beta,   s = gamma / sqrt(var + eps)

(``s`` per output channel; a depthwise kernel ``[kh, kw, C_in, m]`` has output
channel ``c * m + j``). Keras 3 runs BatchNormalization unfused on TensorFlow
(``tf.nn.batch_normalization``: a Mul and an AddV2 over the whole feature map)
and Grappler cannot fold variables, so on CPU the MobileNet backbones spent
9-12 % of their op time in these two ops (tf.profiler, 320 px). A folded
convolution with a bias and ReLU/ReLU6 becomes one oneDNN ``_FusedConv2D``.

`fold_batch_norms` rewrites a functional model (nested functional models
included; `keras.models.clone_model` rebuilds the graph) into a new one with
new variables; the original is untouched, so the training model keeps its
BatchNormalization. `inference_copy` does it for a detector: a new instance
from the detector's config, its weights, its ``backbone`` folded. The export
(`keras_det.export`) and `keras_det.inference.load_predictor` serve that copy
— it is made when they are called, so it always holds the current weights.

Each ``ReLU(6.0)`` that no depthwise convolution feeds becomes a
`keras_det.layers.relu6.ServingReLU6` (the same function, in the graph form
oneDNN runs fastest on the machine for the batch size).

The same copy merges each ``ZeroPadding2D`` that only feeds a ``"valid"``
convolution into that convolution (`keras_det.layers.padded_conv.PaddedConv`:
one ``"same"`` convolution where the padding is ``"SAME"``'s for the input
size; MobileNetV2 / V3's stride-2 depthwise convolutions).
"""

import keras
import numpy as np

from keras_det.layers.padded_conv import CONVS as _CONVS
from keras_det.layers.padded_conv import PaddedConv
from keras_det.layers.relu6 import ServingReLU6, is_relu6


def _single_producer(layer):
    """The layer whose single output feeds ``layer``'s single call, or None."""
    if len(layer._inbound_nodes) != 1:
        return None
    tensors = layer._inbound_nodes[0].input_tensors
    if len(tensors) != 1:
        return None
    return tensors[0]._keras_history.operation


def _foldable(bn):
    """The convolution ``bn`` folds into, or None (Keras' node API: which layer feeds which)."""
    if not isinstance(bn, keras.layers.BatchNormalization) or bn.axis not in (-1, 3):
        return None
    conv = _single_producer(bn)
    if not isinstance(conv, _CONVS) or conv.data_format != "channels_last":
        return None
    if conv.activation is not keras.activations.linear and getattr(conv.activation, "__name__", "") != "linear":
        return None
    # The convolution's output must feed the BatchNormalization only (its other readers would change).
    if len(conv._inbound_nodes) != 1 or len(conv._outbound_nodes) != 1:
        return None
    return conv


def _mergeable_padding(conv):
    """The ``ZeroPadding2D`` that only feeds ``conv``, a channels-last 'valid' convolution, or None.

    Keras' own two classes only: `PaddedConv` computes their call from their
    weights, which a subclass's own ``call`` could change."""
    if type(conv) not in _CONVS or conv.padding != "valid" or conv.data_format != "channels_last":
        return None
    pad = _single_producer(conv)
    if not isinstance(pad, keras.layers.ZeroPadding2D) or pad.data_format != "channels_last":
        return None
    if len(pad._inbound_nodes) != 1 or len(pad._outbound_nodes) != 1 or len(conv._inbound_nodes) != 1:
        return None
    return pad


def folded_weights(conv, bn):
    """``(kernel, bias)`` of ``conv`` followed by ``bn`` in inference mode, as float32 NumPy arrays.

    Args:
        conv: a built ``Conv2D`` (kernel ``[kh, kw, C_in / groups, C_out]``) or
            ``DepthwiseConv2D`` (kernel ``[kh, kw, C_in, m]``, ``C_out = C_in * m``).
        bn: the built ``BatchNormalization`` over its ``C_out`` channels (last axis).

    Returns:
        The folded kernel (``conv``'s kernel shape) and bias ``[C_out]``,
        computed in float64.
    """
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), np.float64)
    channels = kernel.shape[-1] * (kernel.shape[-2] if isinstance(conv, keras.layers.DepthwiseConv2D) else 1)
    bias = np.asarray(keras.ops.convert_to_numpy(conv.bias), np.float64) if conv.use_bias else np.zeros(channels)
    mean = np.asarray(keras.ops.convert_to_numpy(bn.moving_mean), np.float64)
    var = np.asarray(keras.ops.convert_to_numpy(bn.moving_variance), np.float64)
    gamma = np.asarray(keras.ops.convert_to_numpy(bn.gamma), np.float64) if bn.scale else np.ones(channels)
    beta = np.asarray(keras.ops.convert_to_numpy(bn.beta), np.float64) if bn.center else np.zeros(channels)
    scale = gamma / np.sqrt(var + bn.epsilon)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        folded = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    else:
        folded = kernel * scale
    return folded.astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)


def fold_batch_norms(model):
    """A copy of a functional model with each foldable BatchNormalization folded into its convolution.

    A BatchNormalization folds when its only input is the only output of a
    ``Conv2D`` / ``DepthwiseConv2D`` without activation, channels last, that
    nothing else reads. It leaves the graph (its input passes through), and
    the convolution gains a bias. A ``ZeroPadding2D`` whose only reader is a
    channels-last ``"valid"`` convolution leaves the graph too: the
    convolution becomes a `PaddedConv` (the same computation, one ``"same"``
    convolution where that is equal). Other layers are cloned with their
    weights; nested functional models are folded the same way.

    Args:
        model: a built functional ``keras.Model`` (e.g. `keras_det.backbones.build_backbone`'s).

    Returns:
        ``(folded_model, count)``: the new model (same inputs and outputs as
        ``model`` in inference mode, up to float32 rounding) and the number of
        BatchNormalizations folded (nested models included).
    """
    pairs = {}  # BatchNormalization -> its convolution
    for layer in model.layers:
        conv = _foldable(layer)
        if conv is not None:
            pairs[layer] = conv
    convs = {id(conv): bn for bn, conv in pairs.items()}
    pads = {}  # convolution -> the ZeroPadding2D it absorbs
    for layer in model.layers:
        pad = _mergeable_padding(layer)
        if pad is not None:
            pads[layer] = pad
    merged = set(pads.values())
    copies, count = [], [len(pairs)]

    def clone(layer):
        if isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", hasattr(layer, "_run_through_graph")):
            inner, n = fold_batch_norms(layer)
            count[0] += n
            return inner
        if layer in pairs or layer in merged or not isinstance(layer, keras.layers.Layer):
            return layer  # a folded BatchNormalization / merged padding is not called (see `call`); an op has no state
        config = layer.get_config()
        if id(layer) in convs:
            config["use_bias"] = True
        # A ReLU6 takes the served graph form (keras_det.layers.relu6) unless a depthwise convolution feeds it:
        # oneDNN's depthwise kernel runs the fused ReLU6 well (the split form took 1.01-1.04x the time there).
        source = _single_producer(layer) if type(layer) is keras.layers.ReLU else None
        source = pairs.get(source, source)  # through a folded BatchNormalization to its convolution
        serving_relu6 = (type(layer) is keras.layers.ReLU and is_relu6(layer)
                         and not isinstance(source, keras.layers.DepthwiseConv2D))
        cls = ServingReLU6 if serving_relu6 else layer.__class__
        new = cls.from_config(config)
        copies.append((layer, new))
        if layer in pads:
            return PaddedConv(new, pads[layer].padding, name=layer.name)
        return new

    def call(layer, *args, **kwargs):
        return args[0] if layer in pairs or layer in merged else layer(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for old, new in copies:
        if id(old) in convs:
            kernel, bias = folded_weights(old, convs[id(old)])
            new.kernel.assign(kernel)
            new.bias.assign(bias)
        else:
            new.set_weights(old.get_weights())
    return folded, count[0]


def _is_functional(layer):
    return isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph")


def _conv_bn_blocks(model):
    """Every `ConvBNAct` inside ``model`` (Keras' own recursive layer walk), in tracking order."""
    from keras_det.layers.yolo_head import ConvBNAct

    return [layer for layer in model._flatten_layers(include_self=False) if isinstance(layer, ConvBNAct)]


def inference_copy(model, inputs):
    """A detector for serving: same class, config and weights, with its BatchNorms folded into its convolutions.

    Folded: every functional sub-model the detector holds as an attribute
    (``backbone``; SSD's ``extras``) by `fold_batch_norms` (which also merges
    each ZeroPadding2D into the 'valid' convolution it feeds), and every
    `keras_det.layers.yolo_head.ConvBNAct` (YOLO's neck and heads, YOLO v1's
    head), whose BatchNorm is dropped and whose convolution gains the folded
    bias. Not folded: BatchNorms that follow no convolution, or one with
    other readers, and SSDLite's head predictors (small).

    The copy runs the same computation as ``model(inputs, training=False)`` up
    to float32 rounding (tested for every backbone and detector). It is a new
    model: training ``model`` afterwards does not change it — make a new copy.

    Args:
        model: a built keras_det detector. A model with nothing to fold,
            one not serializable by config (a custom ``keras.Model``
            backbone) or a plain callable is returned as it is.
        inputs: one batch ``model`` takes (images ``[B, H, W, 3]``, or the
            dict with ``proposals`` of a proposal detector): the copy is
            built by one call on it.

    Returns:
        The folded copy, or ``model``.
    """
    if not isinstance(model, keras.Model) or getattr(model, "backbone_name", "") is None:
        return model  # not a Keras model (a callable that serves), or a custom backbone its config does not rebuild
    folded = {}
    for attr, sub in vars(model).items():
        if not attr.startswith("_") and _is_functional(sub):
            new, count = fold_batch_norms(sub)
            if count:
                folded[attr] = (sub, new)
    blocks = _conv_bn_blocks(model)
    if not folded and not blocks:
        return model
    copy = model.__class__.from_config(model.get_config())
    # Swap the parts before the copy is built (Keras locks a built layer's
    # state). Keras tracks a reassigned sub-layer but does not drop the old
    # one, so it is untracked explicitly (else its variables would be exported too).
    for attr, (_, new) in folded.items():
        copy._tracker.untrack(getattr(copy, attr))
        setattr(copy, attr, new)
    copy_blocks = _conv_bn_blocks(copy)
    for block in copy_blocks:
        block.drop_batch_norm()
    copy(inputs, training=False)
    skip_source = {id(w) for sub, _ in folded.values() for w in sub.weights} | {
        id(w) for block in blocks for w in block.weights}
    skip_target = {id(w) for _, new in folded.values() for w in new.weights} | {
        id(w) for block in copy_blocks for w in block.weights}
    _copy_weights([w for w in model.weights if id(w) not in skip_source],
                  [w for w in copy.weights if id(w) not in skip_target], type(model).__name__)
    if len(blocks) != len(copy_blocks):
        raise ValueError(f"inference_copy: the rebuilt {type(model).__name__} has {len(copy_blocks)} ConvBNAct blocks, "
                         f"the model {len(blocks)}.")
    for source, target in zip(blocks, copy_blocks):
        kernel, bias = folded_weights(source.conv, source.bn)
        target.conv.kernel.assign(kernel)
        target.conv.bias.assign(bias)
    return copy


def _copy_weights(source, target, name):
    """Assigns ``source`` variables to ``target`` ones, in order, checking that they correspond."""
    if len(source) != len(target):
        raise ValueError(f"inference_copy: the rebuilt {name} has {len(target)} weights besides the folded parts, "
                         f"the model {len(source)}.")
    for a, b in zip(source, target):
        if tuple(a.shape) != tuple(b.shape) or a.path.split("/")[-1] != b.path.split("/")[-1]:
            raise ValueError(f"inference_copy: weight {a.path} {tuple(a.shape)} does not match {b.path} {tuple(b.shape)}.")
        b.assign(a)
