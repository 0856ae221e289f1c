"""benchmarks/profile_ops.py: the trace reader sums the TF op events of a known graph."""

import keras
import pytest
import tensorflow as tf

import profile_ops


def test_read_trace_finds_the_graph_ops_and_summarize_shares(tmp_path):
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3), keras.layers.DepthwiseConv2D(3)])
    fn = tf.function(lambda x: model(x))
    x = tf.ones((1, 32, 32, 3))
    fn(x)
    tf.profiler.experimental.start(str(tmp_path))
    for _ in range(2):
        fn(x).numpy()
    tf.profiler.experimental.stop()
    totals = profile_ops.read_trace(str(tmp_path))
    types = {t for _, t in totals}
    # The convolution (fused with its bias by oneDNN or not) and the depthwise convolution are there, by layer name.
    # oneDNN's names differ by CPU: _MklNativeFusedConv2D, _MklNativeFusedDepthwiseConv2dNative (AVX-512), plain
    # DepthwiseConv2dNative (AVX2).
    kinds = {t.replace("_MklNative", "").replace("_Mkl", "").lstrip("_") for t in types}
    assert kinds & {"DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}
    assert kinds & {"Conv2D", "FusedConv2D"}
    assert any("depthwise_conv2d" in name for name, _ in totals)
    out = profile_ops.summarize(totals, top=3)
    assert out["total_ms"] == pytest.approx(sum(totals.values()) / 1e3)
    assert len(out["by_type"]) <= 3 and all(0 < share <= 1 for _, _, share in out["by_type"])
    shares = [s for _, _, s in out["by_type"]]
    assert shares == sorted(shares, reverse=True)


def test_summarize_by_type_adds_ops_of_one_type():
    totals = {("a/Conv2D", "Conv2D"): 3000.0, ("b/Conv2D", "Conv2D"): 1000.0, ("c/TopKV2", "TopKV2"): 4000.0}
    out = profile_ops.summarize(totals)
    assert out["total_ms"] == pytest.approx(8.0)
    assert {t: ms for t, ms, _ in out["by_type"]} == {"Conv2D": pytest.approx(4.0), "TopKV2": pytest.approx(4.0)}
    assert out["by_name"][0] == ["c/TopKV2", "TopKV2", pytest.approx(4.0), pytest.approx(0.5)]
