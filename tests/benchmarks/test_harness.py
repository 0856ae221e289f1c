"""benchmarks/harness.py: FLOP counts against hand-computed values and TF's profiler, timing statistics."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import harness


def _model():
    inputs = keras.Input((32, 32, 8), batch_size=1)
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.Conv2DTranspose(4, 2, strides=2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def test_graph_flops_hand_counts():
    out = harness.graph_flops(_model(), tf.zeros([1, 32, 32, 8]))
    # 2 FLOPs per multiply-accumulate: output elements × (kernel window × input channels).
    conv = 2 * 32 * 32 * 16 * (3 * 3 * 8)
    depthwise = 2 * 32 * 32 * 16 * (3 * 3)
    transposed = 2 * (32 * 32 * 16) * (2 * 2 * 4)  # every input pixel scatters a 2×2×4 patch
    dense = 2 * 4 * 10
    assert out["by_op"] == {"Conv2D": conv, "DepthwiseConv2dNative": depthwise, "Conv2DBackpropInput": transposed,
                            "MatMul": dense}
    assert out["flops"] == conv + depthwise + transposed + dense
    assert out["notes"] == []


def test_graph_flops_matches_tf_profiler_on_conv_and_matmul():
    """TF's own profiler (tf.compat.v1.profiler, float_operation) is the reference for Conv2D and MatMul."""
    inputs = keras.Input((20, 24, 3), batch_size=2)
    x = keras.layers.Conv2D(7, 5, strides=2, padding="valid", use_bias=False)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, use_bias=False)(x))
    fn = tf.function(lambda t: model(t))
    graph = fn.get_concrete_function(tf.TensorSpec([2, 20, 24, 3])).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    reference = {}

    def walk(node):
        for child in node.children:
            reference[child.name] = child.float_ops
            walk(child)

    walk(tf.compat.v1.profiler.profile(graph, cmd="op", options=opts))
    ours = harness.graph_flops(fn, tf.zeros([2, 20, 24, 3]))["by_op"]
    assert ours["Conv2D"] == reference["Conv2D"] == 2 * 2 * 8 * 10 * 7 * (5 * 5 * 3)
    assert ours["MatMul"] == reference["MatMul"] == 2 * 2 * (8 * 10 * 7) * 5


def test_graph_flops_batch_matmul_and_transposes():
    a, b = tf.zeros([3, 4, 6]), tf.zeros([3, 5, 6])
    assert harness.graph_flops(lambda x, y: tf.matmul(x, y, transpose_b=True), a, b)["flops"] == 2 * 3 * 4 * 5 * 6
    a2, b2 = tf.zeros([6, 4]), tf.zeros([5, 6])
    assert harness.graph_flops(lambda x, y: tf.matmul(x, y, transpose_a=True, transpose_b=True), a2, b2)["flops"] == 2 * 4 * 5 * 6


def test_graph_flops_counts_loop_bodies_times_trip_count():
    w = tf.ones([8, 3])
    fn = lambda x: tf.map_fn(lambda row: tf.matmul(row[None], w), x)  # noqa: E731 - 5 iterations of [1,8]x[8,3]
    assert harness.graph_flops(fn, tf.zeros([5, 8]))["flops"] == 5 * 2 * 8 * 3
    # An If counts its costlier branch.
    cond = lambda x, p: tf.cond(p, lambda: tf.matmul(x, w), lambda: x[:, :3])  # noqa: E731
    assert harness.graph_flops(cond, tf.zeros([2, 8]), tf.constant(True))["flops"] == 2 * 2 * 8 * 3


def test_graph_flops_reports_what_it_cannot_count():
    # A dynamic batch dimension: the matmul's size is unknown when traced.
    spec_fn = tf.function(lambda x: tf.matmul(x, tf.ones([8, 3])), input_signature=[tf.TensorSpec([None, 8])])
    out = harness.graph_flops(spec_fn, tf.zeros([2, 8]))
    assert out["flops"] == 0 and any("dynamic shape" in n for n in out["notes"])


def test_paired_ratio_is_median_of_per_round_ratios():
    a = [[10, 12, 11], [30, 30, 30], [9, 9, 9]]
    b = [[5, 6, 5], [10, 10, 10], [9, 9, 9]]
    # per round: 11/5 = 2.2, 30/10 = 3.0, 9/9 = 1.0 -> median 2.2
    assert harness.paired_ratio(a, b) == pytest.approx(2.2)
    with pytest.raises(ValueError, match="same non-zero number of rounds"):
        harness.paired_ratio(a, b[:2])


def test_interleaved_round_robin_medians_and_errors():
    calls = []

    def fake(name, value):
        def run(n):
            calls.append((name, n))
            return [value] * n
        return run

    def broken(n):
        raise RuntimeError("no such op\ndetails")

    bench = harness.Interleaved(warmup=1, rounds=3, runs_per_round=2, log=False)
    bench.add("a", fake("a", 4.0))
    bench.add("b", fake("b", 2.0))
    bench.add("c", broken)
    bench.measure()
    assert calls == [("a", 1), ("b", 1)] + [("a", 2), ("b", 2)] * 3  # warm-up, then round-robin
    assert bench.median("a") == 4.0 and bench.paired("a", "b") == 2.0
    s = bench.summary()
    assert s["timed_runs"] == 6 and s["ms"] == {"a": 4.0, "b": 2.0}
    assert s["errors"] == {"c": "RuntimeError: no such op ... details"}


def test_timer_fetches_outputs():
    run = harness.timer(lambda x: {"y": x * 2}, tf.ones([3]))
    times = run(3)
    assert len(times) == 3 and all(t >= 0 for t in times)


def test_nominal_peak_from_lscpu_text():
    text = "Model name:  Intel(R) Xeon(R) Processor @ 2.80GHz\nFlags: fpu sse avx2 fma avx512f\n"
    out = harness.nominal_peak_gflops(text, cores=2)
    assert out["gflops"] == pytest.approx(2 * 2.8 * 64)
    avx2 = harness.nominal_peak_gflops("CPU max MHz: 3000.0000\nFlags: sse avx2 fma\n", cores=4)
    assert avx2["gflops"] == pytest.approx(4 * 3.0 * 32)
    assert harness.nominal_peak_gflops("Flags: sse\n", cores=1)["gflops"] is None


def test_measured_peak_is_positive():
    assert harness.measured_peak_gflops(size=128, repeats=3) > 0


def test_train_for_cpu_seconds_runs_at_least_one_chunk():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((8, 4), np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(4).repeat()
    out = harness.train_for_cpu_seconds(model, ds, budget=0.0, steps_per_call=3, warmup_steps=1)
    assert out["steps"] == 3 and np.isfinite(out["final_loss"]) and out["cpu_s"] >= 0


def test_train_for_cpu_seconds_drops_the_learning_rate_once():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = np.ones((8, 4), np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).batch(4).repeat()
    out = harness.train_for_cpu_seconds(model, ds, budget=0.5, steps_per_call=3, warmup_steps=0, lr_drop=(0.5, 0.1))
    # Dropped once (0.01 -> 0.001, not 0.0001), between chunks, after half the budget.
    np.testing.assert_allclose(float(model.optimizer.learning_rate.numpy()), 0.001, rtol=1e-6)
    assert out["lr_drop_step"] % 3 == 0 and 0 < out["lr_drop_step"] < out["steps"]
    with pytest.raises(ValueError, match="lr_drop"):
        harness.train_for_cpu_seconds(model, ds, budget=0.0, lr_drop=(1.5, 0.1))


def test_steal_percent():
    assert harness.steal_percent((10, 1000), (35, 1100)) == 25.0  # 25 of 100 ticks went to other guests
    assert harness.steal_percent((0, 0), (0, 0)) is None
    steal, total = harness.cpu_ticks()
    assert 0 <= steal <= total


@pytest.mark.skipif(not os.environ.get("KERAS_DET_TORCH_PYTHON"),
                    reason="set KERAS_DET_TORCH_PYTHON to a Python with torch + torchvision")
def test_composed_torchvision_ssd_has_keras_dets_ssd_320_layout():
    # SSD's training peer (harness._TORCH_COMPOSED) must be keras_det's ssd_320 at 320 px built from torchvision's
    # parts: the same maps, boxes per cell and compute, or the ratio compares different models.
    import peers
    import zoo

    peer = harness.TorchPeer(os.environ["KERAS_DET_TORCH_PYTHON"], "ssd_mobilenet_v2_320", 1, 0, 320)
    peer.close()
    model = zoo.speed_detector("ssd", 91, 320)
    assert peer.info["feature_maps"] == [list(s) for s in model.feature_map_sizes] == [[20, 20], [10, 10], [5, 5],
                                                                                         [3, 3], [1, 1]]
    assert peer.info["boxes_per_cell"] == list(model.num_anchors_per_level) == [4, 6, 6, 4, 4]
    ours = peers.padded_flops(model, tf.zeros((1, 320, 320, 3)))["flops"]
    assert abs(peer.info["flops"] / ours - 1) < 0.02, (peer.info["flops"], ours)
    trainable = sum(int(tf.size(w)) for w in model.trainable_weights)
    assert abs(peer.info["params"] / trainable - 1) < 0.02, (peer.info["params"], trainable)
