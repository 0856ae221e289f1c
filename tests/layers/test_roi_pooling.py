"""RoIPooling / RoIAlign / MultiLevelRoIAlign layers: values, graphs, models, config, gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det.layers import MultiLevelRoIAlign, RoIAlign, RoIPooling
from tests.conftest import load_fixture

REF = load_fixture("roi_reference.npz")
TOL = 1e-4


def _max_diff(got, want):
    diff = float(np.max(np.abs(np.asarray(got) - want)))
    print(f"max abs diff {diff:.3g}")
    return diff


def _pyramid_dict():
    return {f"P{k}": REF[f"ml_p{k}"] for k in range(2, 6)}


LAYERS = [
    pytest.param(
        lambda: RoIAlign((7, 7), 0.25, 2, True), "rois_s4", "align_a1_g2_s4_o7x7", id="align"
    ),
    pytest.param(
        lambda: RoIAlign((2, 3), 1 / 16, 0, False),
        "rois_s16",
        "align_a0_g-1_s16_o2x3",
        id="align-adaptive",
    ),
    pytest.param(
        lambda: RoIAlign((7, 7), 1.0, 1, False), "rois_s1", "align_a0_g1_s1_o7x7", id="align-g1"
    ),
    pytest.param(lambda: RoIPooling((7, 7), 1 / 16), "rois_s16", "pool_s16_o7x7", id="pool"),
]


@pytest.mark.parametrize("make, rois_key, ref_key", LAYERS)
def test_layer_matches_torchvision_eager_and_tf_function(make, rois_key, ref_key):
    layer = make()
    features, rois = REF["features"], REF[rois_key]
    assert _max_diff(layer(features, rois), REF[ref_key]) <= TOL
    traced = tf.function(lambda f, r: layer(f, r))
    assert _max_diff(traced(tf.constant(features), tf.constant(rois)), REF[ref_key]) <= TOL


@pytest.mark.parametrize("make, rois_key, ref_key", LAYERS)
def test_layer_in_functional_model_and_config_round_trip(make, rois_key, ref_key, tmp_path):
    layer = make()
    features_in = keras.Input((13, 17, 2), name="features")
    rois_in = keras.Input((None, 4), name="rois")
    out = layer(features_in, rois_in)
    assert tuple(out.shape) == (None, None) + REF[ref_key].shape[2:]
    model = keras.Model([features_in, rois_in], out)
    got = model.predict([REF["features"], REF[rois_key]], verbose=0)
    assert _max_diff(got, REF[ref_key]) <= TOL

    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    got = loaded.predict([REF["features"], REF[rois_key]], verbose=0)
    assert _max_diff(got, REF[ref_key]) <= TOL


@pytest.mark.parametrize("sampling", [2, 0])
def test_multilevel_layer_dict_and_list(sampling):
    key = f"ml_g{-1 if sampling == 0 else 2}_o7x7"
    layer = MultiLevelRoIAlign((7, 7), sampling_ratio=sampling, aligned=False)
    assert _max_diff(layer(_pyramid_dict(), REF["ml_rois"]), REF[key]) <= TOL
    maps = [REF[f"ml_p{k}"] for k in range(2, 6)]
    assert _max_diff(layer(maps, REF["ml_rois"]), REF[key]) <= TOL
    explicit = MultiLevelRoIAlign(
        (7, 7), sampling_ratio=sampling, aligned=False, levels=[5, 4, 3, 2]
    )
    assert _max_diff(explicit(maps[::-1], REF["ml_rois"]), REF[key]) <= TOL


def test_multilevel_layer_functional_model_and_config(tmp_path):
    layer = MultiLevelRoIAlign((7, 7), sampling_ratio=2, aligned=False)
    inputs = {
        f"P{k}": keras.Input((128 // 2**k, 160 // 2**k, 2), name=f"P{k}") for k in range(2, 6)
    }
    rois_in = keras.Input((None, 4), name="rois")
    out = layer(inputs, rois_in)
    assert tuple(out.shape) == (None, None, 7, 7, 2)
    model = keras.Model({**inputs, "rois": rois_in}, out)
    feed = {**_pyramid_dict(), "rois": REF["ml_rois"]}
    assert _max_diff(model.predict(feed, verbose=0), REF["ml_g2_o7x7"]) <= TOL

    config = layer.get_config()
    assert MultiLevelRoIAlign.from_config(config).get_config() == config
    path = str(tmp_path / "ml.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert _max_diff(loaded.predict(feed, verbose=0), REF["ml_g2_o7x7"]) <= TOL


def test_multilevel_layer_bad_names():
    layer = MultiLevelRoIAlign()
    with pytest.raises(ValueError, match="level"):
        layer({"fine": REF["ml_p2"], "coarse": REF["ml_p3"]}, REF["ml_rois"])


PADDED = [
    pytest.param(lambda: RoIAlign(), id="align"),
    pytest.param(lambda: RoIAlign(sampling_ratio=0), id="align-adaptive"),
    pytest.param(lambda: RoIAlign(aligned=False), id="align-legacy"),
    pytest.param(lambda: RoIPooling(), id="pool"),
]


@pytest.mark.parametrize("make", PADDED)
def test_padded_rows_are_finite(make):
    features = np.random.default_rng(0).normal(size=(2, 9, 11, 4)).astype(np.float32)
    rois = np.zeros((2, 5, 4), np.float32)
    rois[0, 0] = [16, 16, 96, 128]
    out = make()(features, rois).numpy()
    assert out.shape == (2, 5, 7, 7, 4)
    assert np.all(np.isfinite(out))


def test_multilevel_padded_rows_are_finite():
    rois = np.zeros((2, 4, 4), np.float32)
    for sampling in (2, 0):
        out = MultiLevelRoIAlign(sampling_ratio=sampling)(_pyramid_dict(), rois).numpy()
        assert np.all(np.isfinite(out))


GRAD_LAYERS = [
    pytest.param(lambda: RoIAlign((7, 7), 0.25), id="align"),
    pytest.param(lambda: RoIAlign((7, 7), 0.25, 0), id="align-adaptive"),
    pytest.param(lambda: RoIPooling((7, 7), 0.25), id="pool"),
]


@pytest.mark.parametrize("make", GRAD_LAYERS)
def test_gradients_flow_to_features(make):
    layer = make()
    features = tf.constant(REF["features"])
    rois = tf.constant(REF["rois_s4"])
    with tf.GradientTape() as tape:
        tape.watch(features)
        loss = tf.reduce_sum(tf.square(layer(features, rois)))
    grad = tape.gradient(loss, features)
    assert grad is not None
    grad = tf.convert_to_tensor(grad).numpy()
    assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_roi_align_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    features = tf.constant(rng.normal(size=(1, 6, 7, 2)).astype(np.float32))
    rois = tf.constant([[[4.0, 3.0, 17.0, 21.0], [-3.0, 10.0, 9.0, 30.0]]])
    weights = tf.constant(rng.normal(size=(1, 2, 3, 3, 2)).astype(np.float32))
    layer = RoIAlign((3, 3), 0.25, 2, True)
    with tf.GradientTape() as tape:
        tape.watch(features)
        loss = tf.reduce_sum(layer(features, rois) * weights)
    grad = tape.gradient(loss, features).numpy()
    # The output is linear in the features: a unit perturbation gives the
    # gradient exactly (up to float rounding).
    base = loss.numpy()
    for index in [(0, 1, 1, 0), (0, 3, 4, 1), (0, 0, 0, 0), (0, 5, 6, 1)]:
        bumped = features.numpy().copy()
        bumped[index] += 1.0
        delta = float(tf.reduce_sum(layer(bumped, rois) * weights)) - base
        assert abs(delta - grad[index]) < 1e-4


def test_multilevel_gradients_flow_to_every_used_level():
    maps = {k: tf.constant(v) for k, v in _pyramid_dict().items()}
    with tf.GradientTape() as tape:
        tape.watch(list(maps.values()))
        loss = tf.reduce_sum(MultiLevelRoIAlign()(maps, REF["ml_rois"]))
    grads = tape.gradient(loss, maps)
    for name, grad in grads.items():
        grad = tf.convert_to_tensor(grad).numpy()
        assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0, name


def test_mixed_precision_keeps_box_precision():
    # float16 cannot hold 37.830585 exactly; the layer must not cast the rois.
    layer = RoIAlign((7, 7), 1 / 16, 2, True, dtype="mixed_float16")
    out = layer(REF["features"], REF["rois_s16"])
    assert out.dtype == tf.float16
    assert _max_diff(tf.cast(out, tf.float32), REF["align_a1_g2_s16_o7x7"]) <= 5e-3


def test_compute_output_shape():
    assert RoIAlign((7, 5)).compute_output_shape((2, 13, 17, 8), (2, 30, 4)) == (2, 30, 7, 5, 8)
    shape = MultiLevelRoIAlign(3).compute_output_shape({"P2": (1, 8, 8, 4)}, (1, 9, 4))
    assert shape == (1, 9, 3, 3, 4)


def test_roi_pool_gradient_routes_to_the_argmax():
    # torchvision's roi_pool backward: each bin's gradient goes to its max pixel.
    rng = np.random.default_rng(2)
    features = tf.constant(rng.normal(size=(1, 9, 11, 2)).astype(np.float32))
    rois = np.array([[[0, 0, 8, 10], [2, 3, 6, 9], [4, 4, 40, 40]]], np.float32)
    weights = rng.normal(size=(1, 3, 3, 2, 2)).astype(np.float32)
    layer = RoIPooling((3, 2), 1.0)
    with tf.GradientTape() as tape:
        tape.watch(features)
        loss = tf.reduce_sum(layer(features, rois) * weights)
    grad = tape.gradient(loss, features).numpy()
    want = np.zeros_like(grad)
    f = features.numpy()
    for r, (y1, x1, y2, x2) in enumerate(rois[0].astype(int)):
        hb, wb = (y2 - y1 + 1) / 3, (x2 - x1 + 1) / 2
        for i in range(3):
            for j in range(2):
                h0 = min(max(int(np.floor(i * hb)) + y1, 0), 9)
                h1 = min(max(int(np.ceil((i + 1) * hb)) + y1, 0), 9)
                w0 = min(max(int(np.floor(j * wb)) + x1, 0), 11)
                w1 = min(max(int(np.ceil((j + 1) * wb)) + x1, 0), 11)
                if h1 <= h0 or w1 <= w0:
                    continue
                for c in range(2):
                    window = f[0, h0:h1, w0:w1, c]
                    dh, dw = np.unravel_index(np.argmax(window), window.shape)
                    want[0, h0 + dh, w0 + dw, c] += weights[0, r, i, j, c]
    np.testing.assert_allclose(grad, want, atol=1e-5)
