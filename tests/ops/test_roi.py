"""keras_det.ops.roi_align and keras_det.ops.roi_pool against torchvision fixtures and hand-computed values.

The fixture ``tests/fixtures/roi_reference.npz`` is written by
``python tests/tools/make_reference.py roi`` (torch + torchvision); these tests
only read it.
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_det.ops import roi_align as align_ops
from keras_det.ops import roi_pool as pool_ops
from tests.conftest import load_fixture

TOL = 1e-4
REF = load_fixture("roi_reference.npz")


def _parse_size(tag):
    oh, ow = tag[1:].split("x")
    return int(oh), int(ow)


def _report(name, got, want):
    diff = float(np.max(np.abs(np.asarray(got) - want))) if want.size else 0.0
    print(f"{name}: max abs diff {diff:.3g}")
    assert got.shape == want.shape
    assert diff <= TOL, f"{name}: max abs diff {diff}"


ALIGN_KEYS = sorted(k for k in REF.files if k.startswith("align_"))
POOL_KEYS = sorted(k for k in REF.files if k.startswith("pool_"))
ML_KEYS = sorted(k for k in REF.files if k.startswith("ml_g"))


def _call(graph, fn, *args, **kwargs):
    """Runs ``fn`` eagerly or traced in a tf.function (Grappler rewrites included)."""
    if not graph:
        return fn(*args, **kwargs).numpy()
    tensors = [tf.constant(a) for a in args]
    return tf.function(lambda *t: fn(*t, **kwargs))(*tensors).numpy()


MODES = [pytest.param(False, id="eager"), pytest.param(True, id="graph")]


def test_fixture_versions_recorded():
    assert str(REF["torch_version"]) and str(REF["torchvision_version"])


# Every case eagerly; the 7x7 ones also traced (keeps the suite fast).
ALIGN_CASES = [(k, False) for k in ALIGN_KEYS] + [(k, True) for k in ALIGN_KEYS if "o7x7" in k]


@pytest.mark.parametrize("key, graph", ALIGN_CASES)
def test_roi_align_matches_torchvision(key, graph):
    _, aligned, grid, scale, size = key.split("_")
    sampling = int(grid[1:])
    got = _call(
        graph,
        align_ops.roi_align,
        REF["features"],
        REF[f"rois_{scale}"],
        output_size=_parse_size(size),
        spatial_scale=1.0 / int(scale[1:]),
        sampling_ratio=max(sampling, 0),  # torchvision's -1 is our 0
        aligned=aligned == "a1",
    )
    _report(key, got, REF[key])


@pytest.mark.parametrize("method", ["crop", "matrix"])
@pytest.mark.parametrize("key", [k for k in ALIGN_KEYS if "_g-1_" in k])
def test_both_adaptive_methods_match_torchvision(key, method):
    # roi_align picks the cheaper of the two exact adaptive methods; check each.
    _, aligned, _, scale, size = key.split("_")
    features = tf.constant(REF["features"])
    rois = tf.constant(REF[f"rois_{scale}"])
    args = (_parse_size(size), 1.0 / int(scale[1:]), aligned == "a1")
    if method == "crop":
        flat, images = align_ops._flatten_rois(rois)
        got = align_ops._roi_align_adaptive_crop(features, flat, images, *args)
        got = tf.reshape(got, REF[key].shape)
    else:
        got = align_ops._roi_align_adaptive(features, rois, *args)
    _report(f"{key} {method}", got.numpy(), REF[key])


@pytest.mark.parametrize("graph", MODES)
@pytest.mark.parametrize("key", POOL_KEYS)
def test_roi_pool_matches_torchvision(key, graph):
    _, scale, size = key.split("_")
    got = _call(
        graph,
        pool_ops.roi_pool,
        REF["features"],
        REF[f"rois_{scale}"],
        output_size=_parse_size(size),
        spatial_scale=1.0 / int(scale[1:]),
    )
    _report(key, got, REF[key])


def _pyramid():
    return [REF[f"ml_p{k}"] for k in range(2, 6)], [2, 3, 4, 5]


@pytest.mark.parametrize("graph", MODES)
@pytest.mark.parametrize("key", ML_KEYS)
def test_multilevel_roi_align_matches_torchvision(key, graph):
    _, grid, size = key.split("_")
    maps, levels = _pyramid()
    got = _call(
        graph,
        lambda rois, *maps: align_ops.multilevel_roi_align(
            list(maps),
            levels,
            rois,
            output_size=_parse_size(size),
            sampling_ratio=max(int(grid[1:]), 0),
            aligned=False,  # MultiScaleRoIAlign uses the legacy RoIAlign
        ),
        REF["ml_rois"],
        *maps,
    )
    _report(key, got, REF[key])


def test_multilevel_level_order_does_not_matter():
    maps, levels = _pyramid()
    got = align_ops.multilevel_roi_align(
        maps[::-1], levels[::-1], REF["ml_rois"], (7, 7), 2, aligned=False
    )
    _report("ml reversed", got.numpy(), REF["ml_g2_o7x7"])


@pytest.mark.parametrize("graph", MODES)
def test_fpn_level_matches_torchvision_level_mapper(graph):
    got = _call(graph, align_ops.fpn_level, REF["ml_rois"], min_level=2, max_level=5)
    np.testing.assert_array_equal(got, REF["ml_levels"])


def test_fpn_level_hand_computed():
    def box(side):
        return [0.0, 0.0, side, side]

    sides = (224, 112, 111.9, 448, 2000, 10, 0)
    rois = np.array([box(s) for s in sides], np.float32)
    np.testing.assert_array_equal(align_ops.fpn_level(rois, 2, 5).numpy(), [4, 3, 2, 5, 5, 2, 2])
    # Non-square: sqrt(56 * 224) = 112 → level 3.
    np.testing.assert_array_equal(align_ops.fpn_level([[0.0, 0.0, 56.0, 224.0]], 2, 5).numpy(), [3])


def _ramp():
    """4x4 map with F[h, w] = 10 h + w, shape [1, 4, 4, 1]."""
    h, w = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    return (10.0 * h + w).astype(np.float32)[None, :, :, None]


def _align(box, size, sampling, aligned):
    out = align_ops.roi_align(_ramp(), np.array([[box]], np.float32), size, 1.0, sampling, aligned)
    return out.numpy()[0, 0, :, :, 0]


@pytest.mark.parametrize("sampling", [2, 0])
def test_roi_align_ramp_hand_computed(sampling):
    # Bilinear sampling of a linear map is exact: the mean of samples at
    # y, x in {0.5, 1.5} is 10 * 1 + 1 (legacy) ...
    np.testing.assert_allclose(_align([0, 0, 2, 2], (1, 1), sampling, False), [[11.0]], atol=1e-5)
    # ... and at {0, 1} after the -0.5 shift (aligned).
    np.testing.assert_allclose(_align([0, 0, 2, 2], (1, 1), sampling, True), [[5.5]], atol=1e-5)
    # 2x2 bins, one sample each at the bin centres 0.5 / 1.5.
    got = _align([0, 0, 2, 2], (2, 2), 1 if sampling else 0, False)
    np.testing.assert_allclose(got, [[5.5, 6.5], [15.5, 16.5]], atol=1e-5)


def test_roi_align_ramp_adaptive_grid():
    # roi 3x3 into 1 bin: adaptive grid ceil(3) = 3 samples at 0.5, 1.5, 2.5.
    np.testing.assert_allclose(_align([0, 0, 3, 3], (1, 1), 0, False), [[16.5]], atol=1e-5)
    # a fixed grid of 2 samples at 0.75, 2.25 gives the same mean on a ramp.
    np.testing.assert_allclose(_align([0, 0, 3, 3], (1, 1), 2, False), [[16.5]], atol=1e-5)


@pytest.mark.parametrize("sampling", [2, 0])
def test_roi_align_border_rules(sampling):
    # Samples at 3.25 / 3.75 (beyond H - 1 = 3, within H = 4) use row/col 3.
    np.testing.assert_allclose(_align([3, 3, 4, 4], (1, 1), sampling, False), [[33.0]], atol=1e-5)
    # G=2: y samples at -1.25 (outside [-1, H]: 0) and -0.75 (clamped to row
    # 0); x samples at 0.25 / 0.75: (0 + 0 + 0.25 + 0.75) / 4. Adaptive: one
    # sample at (-1, 0.5), valid → 0.5.
    want = 0.25 if sampling else 0.5
    got = _align([-1.5, 0, -0.5, 1], (1, 1), sampling, False)
    np.testing.assert_allclose(got, [[want]], atol=1e-5)
    # A sample exactly on -1 is still valid (row 0): y at -1 and 0 (legacy, G=2).
    got = _align([-1.5, 0, 0.5, 1], (1, 1), sampling, False)
    np.testing.assert_allclose(got, [[0.5]], atol=1e-5)
    # Entirely outside.
    np.testing.assert_allclose(_align([-9, -9, -3, -3], (2, 2), sampling, False), np.zeros((2, 2)))


def test_roi_align_empty_adaptive_grid_is_zero():
    # aligned with a zero-size box: adaptive grid ceil(0) = 0 → 0 (torchvision).
    np.testing.assert_allclose(_align([1, 1, 1, 1], (2, 2), 0, True), np.zeros((2, 2)))
    # with a fixed grid every sample sits on (0.5, 0.5) → 5.5.
    got = _align([1, 1, 1, 1], (2, 2), 2, True)
    np.testing.assert_allclose(got, np.full((2, 2), 5.5), atol=1e-5)


def _pool(box, size):
    out = pool_ops.roi_pool(_ramp(), np.array([[box]], np.float32), size, 1.0)
    return out.numpy()[0, 0, :, :, 0]


def test_roi_pool_ramp_hand_computed():
    # [0, 3] rounds to 4 pixels, 2 bins of 2: maxima at the bottom-right corners.
    np.testing.assert_array_equal(_pool([0, 0, 3, 3], (2, 2)), [[11, 13], [31, 33]])
    # C rounding: 2.5 → 3 (tf.round would give 2 → 22).
    np.testing.assert_array_equal(_pool([2.5, 2.5, 2.5, 2.5], (1, 1)), [[33]])
    # Bins overlap when the RoI is not a multiple of the output: 3 px into 2 bins
    # → rows [0, 2) and [1, 3).
    np.testing.assert_array_equal(_pool([0, 0, 2, 2], (2, 2)), [[11, 12], [21, 22]])
    # Outside the map → empty bins → 0.
    np.testing.assert_array_equal(_pool([10, 10, 12, 12], (2, 2)), np.zeros((2, 2)))
    # More bins than pixels: 1 px into 3 bins repeats it.
    np.testing.assert_array_equal(_pool([1, 2, 1, 2], (3, 3)), np.full((3, 3), 12))


def test_roi_pool_negative_features_and_all_bins():
    rng = np.random.default_rng(3)
    features = -np.abs(rng.normal(size=(1, 9, 11, 2))).astype(np.float32) - 1.0
    rois = np.array([[[0, 0, 8, 10], [2, 3, 6, 9]]], np.float32)
    got = pool_ops.roi_pool(features, rois, (3, 2), 1.0).numpy()
    # Brute force with torchvision's bin rule.
    for r, (y1, x1, y2, x2) in enumerate(rois[0].astype(int)):
        hb, wb = (y2 - y1 + 1) / 3, (x2 - x1 + 1) / 2
        for i in range(3):
            for j in range(2):
                h0, h1 = int(np.floor(i * hb)) + y1, int(np.ceil((i + 1) * hb)) + y1
                w0, w1 = int(np.floor(j * wb)) + x1, int(np.ceil((j + 1) * wb)) + x1
                want = features[0, h0:h1, w0:w1].max(axis=(0, 1))
                np.testing.assert_array_equal(got[0, r, i, j], want)


def test_dynamic_shapes_under_tf_function():
    spec_f = tf.TensorSpec([None, None, None, 2], tf.float32)
    spec_r = tf.TensorSpec([None, None, 4], tf.float32)
    features, rois = REF["features"], REF["rois_s4"]

    @tf.function(input_signature=[spec_f, spec_r])
    def pool(f, r):
        return pool_ops.roi_pool(f, r, (7, 7), 0.25)

    @tf.function(input_signature=[spec_f, spec_r])
    def align(f, r):
        return align_ops.roi_align(f, r, (7, 7), 0.25, 2, True)

    @tf.function(input_signature=[spec_f, spec_r])
    def adaptive(f, r):
        return align_ops.roi_align(f, r, (2, 3), 0.25, 0, False)

    _report("pool dynamic", pool(features, rois).numpy(), REF["pool_s4_o7x7"])
    _report("align dynamic", align(features, rois).numpy(), REF["align_a1_g2_s4_o7x7"])
    _report("adaptive dynamic", adaptive(features, rois).numpy(), REF["align_a0_g-1_s4_o2x3"])


def test_multilevel_single_level_populated_and_empty_rois():
    maps, levels = _pyramid()
    # Every RoI on level 2 (others empty partitions).
    rois = np.tile(np.array([[[4.0, 4.0, 20.0, 30.0]]], np.float32), (2, 3, 1))
    got = align_ops.multilevel_roi_align(maps, levels, rois, (7, 7), 2, aligned=True)
    want = align_ops.roi_align(maps[0], rois, (7, 7), 0.25, 2, True)
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)
    # No RoIs at all.
    empty = np.zeros((2, 0, 4), np.float32)
    assert align_ops.multilevel_roi_align(maps, levels, empty, (7, 7)).shape == (2, 0, 7, 7, 2)
    assert align_ops.roi_align(maps[0], empty, (7, 7), sampling_ratio=0).shape == (2, 0, 7, 7, 2)
    assert pool_ops.roi_pool(maps[0], empty, (7, 7)).shape == (2, 0, 7, 7, 2)


def test_multilevel_rejects_gaps():
    maps, _ = _pyramid()
    with pytest.raises(ValueError, match="consecutive"):
        align_ops.multilevel_roi_align(maps[:2], [2, 4], REF["ml_rois"])


def test_fixed_and_adaptive_paths_agree_with_gradients():
    # Boxes whose adaptive grid is exactly 2 in both axes: both paths sample
    # the same points, so outputs and gradients must agree.
    rng = np.random.default_rng(5)
    features = tf.constant(rng.normal(size=(2, 13, 17, 3)).astype(np.float32))
    yx = rng.uniform(-2, 6, (2, 5, 2)).astype(np.float32)
    size = rng.uniform(7.2, 13.8, (2, 5, 2)).astype(np.float32)  # / 7 bins → (1, 2]
    rois = np.concatenate([yx, yx + size], -1)
    weights = tf.constant(rng.normal(size=(2, 5, 7, 7, 3)).astype(np.float32))
    results = []
    for sampling in (2, 0):
        with tf.GradientTape() as tape:
            tape.watch(features)
            out = align_ops.roi_align(features, rois, (7, 7), 1.0, sampling, True)
            loss = tf.reduce_sum(out * weights)
        results.append((out.numpy(), tape.gradient(loss, features).numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], atol=1e-4)
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-4)


def test_multilevel_dynamic_shapes_under_tf_function():
    maps, levels = _pyramid()
    specs = [tf.TensorSpec([None, None, None, 2], tf.float32)] * 4
    rois_spec = tf.TensorSpec([None, None, 4], tf.float32)
    for sampling, key in ((2, "ml_g2_o7x7"), (0, "ml_g-1_o7x7")):

        @tf.function(input_signature=[rois_spec] + specs)
        def run(rois, *maps):
            return align_ops.multilevel_roi_align(
                list(maps), levels, rois, (7, 7), sampling, aligned=False
            )

        _report(f"{key} dynamic", run(REF["ml_rois"], *maps).numpy(), REF[key])


def test_saved_model_round_trip(tmp_path):
    spec_f = tf.TensorSpec([None, None, None, 2], tf.float32)
    spec_r = tf.TensorSpec([None, None, 4], tf.float32)
    module = tf.Module()
    module.pool = tf.function(
        lambda f, r: pool_ops.roi_pool(f, r, (7, 7), 0.25), input_signature=[spec_f, spec_r]
    )
    module.align = tf.function(
        lambda f, r: align_ops.roi_align(f, r, (7, 7), 0.25, 2, True), input_signature=[spec_f, spec_r]
    )
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    features, rois = tf.constant(REF["features"]), tf.constant(REF["rois_s4"])
    _report("saved pool", loaded.pool(features, rois).numpy(), REF["pool_s4_o7x7"])
    _report("saved align", loaded.align(features, rois).numpy(), REF["align_a1_g2_s4_o7x7"])
