"""ServingReLU6: the same numbers as ReLU6 in either graph form; the form per machine and batch; its use when served."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import presets
from keras_det.export import _Serving
from keras_det.layers import relu6
from keras_det.layers.relu6 import ServingReLU6
from keras_det.models.folding import fold_batch_norms, inference_copy


def _op_types(fn, x):
    return {op.type for op in fn.get_concrete_function(x).graph.get_operations()}


@pytest.mark.parametrize("form", ["fused", "split"])
def test_both_forms_equal_relu6_bit_for_bit_and_trace_as_named(form, monkeypatch):
    monkeypatch.setattr(relu6, "RELU6_FORM", form)
    values = np.random.default_rng(0).normal(0.0, 5.0, (1, 4, 5, 3)).astype("float32")
    values.flat[:8] = [-np.inf, -1.0, -0.0, 0.0, 3.0, 6.0, 6.000001, np.inf]
    x = tf.constant(values)
    layer = ServingReLU6()
    fn = tf.function(lambda t: layer(t))
    np.testing.assert_array_equal(fn(x).numpy(), np.clip(values, 0.0, 6.0))
    np.testing.assert_array_equal(fn(x).numpy(), tf.nn.relu6(x).numpy())
    ops = _op_types(fn, x)
    if form == "split":
        assert {"Relu", "Minimum"} <= ops and "Relu6" not in ops
    else:
        assert "Relu6" in ops and "Minimum" not in ops


def test_the_form_follows_the_machine_and_the_static_batch(monkeypatch):
    monkeypatch.setattr(relu6, "RELU6_FORM", "auto")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN's AVX2 code: batch 1 splits
    assert not relu6.onednn_uses_avx512()
    assert [relu6.relu6_form(b) for b in (1, 2, 8, None)] == ["split", "fused", "fused", "fused"]
    monkeypatch.setattr(relu6, "onednn_uses_avx512", lambda: True)  # AVX-512 code: always fused
    assert relu6.relu6_form(1) == "fused"
    monkeypatch.setattr(relu6, "RELU6_FORM", "split")
    assert relu6.relu6_form(None) == relu6.relu6_form(8) == "split"
    monkeypatch.setattr(relu6, "RELU6_FORM", "fast")
    with pytest.raises(ValueError, match=r"KERAS_DET_RELU6 .* must be one of \('auto', 'fused', 'split'\); got 'fast'"):
        relu6.relu6_form(1)


def test_onednn_isa_cap_is_read(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2_vnni")
    assert not relu6.onednn_uses_avx512()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")  # a cap at AVX-512: what the CPU has decides
    has = any(line.startswith("flags") and "avx512f" in line.split() for line in open("/proc/cpuinfo"))
    assert relu6.onednn_uses_avx512() == has


def test_only_relu6_is_accepted_and_it_serializes(tmp_path):
    with pytest.raises(ValueError, match="ServingReLU6 is ReLU\\(6.0\\) only; got max_value=4"):
        ServingReLU6(max_value=4.0)
    with pytest.raises(ValueError, match="negative_slope=0.1"):
        ServingReLU6(negative_slope=0.1)
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, ServingReLU6(name="r6")(keras.layers.Conv2D(3, 1)(inputs)))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("r6")) is ServingReLU6
    x = np.random.default_rng(1).normal(0, 10, (2, 4, 4, 2)).astype("float32")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_folding_switches_every_relu6_and_nothing_else():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 1, use_bias=False)(inputs))
    x = keras.layers.ReLU(6.0, name="six")(x)
    x = keras.layers.ReLU(name="plain")(x)
    x = keras.layers.ReLU(6.0, negative_slope=0.1, name="leaky_six")(x)
    x = keras.layers.BatchNormalization()(keras.layers.DepthwiseConv2D(3, use_bias=False)(x))
    x = keras.layers.ReLU(6.0, name="six_after_depthwise")(x)  # oneDNN's depthwise kernel fuses it well
    folded, count = fold_batch_norms(keras.Model(inputs, x))
    assert count == 2
    assert [type(folded.get_layer(n)) for n in ("six", "plain", "leaky_six", "six_after_depthwise")] == [
        ServingReLU6, keras.layers.ReLU, keras.layers.ReLU, keras.layers.ReLU]


def test_served_batch_of_one_takes_the_split_form_and_every_batch_gets_the_same_detections(monkeypatch):
    keras.utils.set_random_seed(0)
    model = presets.build("ssd_micro", 3, backbone="mobilenet_v2")  # MobileNetV2: ReLU6 after its convolutions
    size = model.image_size
    rng = np.random.default_rng(4)
    images = tf.constant(rng.integers(0, 256, (3,) + tuple(size) + (3,)).astype("uint8"))
    model(tf.cast(images, tf.float32), training=False)
    served = {}
    for form in ("fused", "auto"):
        monkeypatch.setattr(relu6, "RELU6_FORM", form)
        monkeypatch.setattr(relu6, "onednn_uses_avx512", lambda: False)  # as on an AVX2 CPU
        serving = _Serving(model, size)
        assert any(isinstance(layer, ServingReLU6) for layer in serving.model._flatten_layers())
        fn = tf.function(serving.serve_tensor, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
        graph = fn.get_concrete_function().graph
        # "auto" on AVX2: a batch-1 branch traced apart (split form) beside the any-batch one (fused form).
        assert any(op.type in ("If", "StatelessIf") for op in graph.get_operations()) == (form == "auto")
        served[form] = [fn(images[:1]), fn(images)]
    for one_or_all in (0, 1):
        for key in served["fused"][one_or_all]:
            np.testing.assert_array_equal(served["auto"][one_or_all][key].numpy(),
                                          served["fused"][one_or_all][key].numpy(), err_msg=key)
    assert int(served["auto"][0]["num_detections"][0]) == int(served["auto"][1]["num_detections"][0])
    # MobileNetV2: ReLU6 after each expansion 1x1 and the stem conv -- not after its depthwise convolutions.
    copy = inference_copy(model, tf.zeros((1,) + tuple(size) + (3,)))
    names = sorted(layer.name for layer in copy._flatten_layers() if isinstance(layer, ServingReLU6))
    assert names and all(n == "Conv1_relu" or n.endswith("expand_relu") or n == "out_relu" for n in names), names
