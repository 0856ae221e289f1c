"""Serving latency of exported detectors: SavedModel (TF1 session / TF2 load) vs Keras.

For each exportable detector (small CPU configs of the tests, 128x128 input:
FasterRCNN, MaskRCNN, SSD, YOLO multiscale, SlidingWindowDetector) it exports
with ``keras_det.export.export_saved_model`` to a temporary folder and
measures milliseconds per image (batch 1, median of ``--runs`` runs after
``--warmup`` warm-up runs) of:

* ``tf1_session``: the ``serving_default`` signature (input: one encoded JPEG)
  through ``tf.compat.v1.saved_model.loader.load`` + ``sess.run``, as TF
  Serving does, in a subprocess that never imports keras_det (the models are
  timed round-robin there, one run of each model per round);
* ``tf2_serving_tensor``: the ``serving_tensor`` signature (uint8 image) of
  ``tf.saved_model.load``;
* ``keras_predict``: ``model.predict_on_batch`` on the float32 image;

(b) and (c) are interleaved (one run of each per round). Ratios are
SavedModel / Keras (>1 = the SavedModel is slower). Note (a) includes JPEG
decoding and resize in the graph, (b) the resize, (c) neither.

Writes ``benchmarks/results/serving_latency.json``.

Usage::

    python benchmarks/serving_latency.py [--runs 30] [--warmup 5] [--models ssd,yolo_multiscale]
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IMAGE_SIZE = (128, 128)

# Runs with TensorFlow only (never imports keras_det).
TF1_CLIENT = textwrap.dedent(
    """
    import json, statistics, sys, time
    import tensorflow as tf
    spec = json.loads(sys.argv[1])
    data = open(spec["jpeg"], "rb").read()
    sessions = {}
    for name, path in spec["models"].items():
        graph = tf.Graph()
        sess = tf.compat.v1.Session(graph=graph)
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        sig = meta.signature_def["serving_default"]
        fetch = {k: v.name for k, v in sig.outputs.items()}
        sessions[name] = (sess, fetch, {sig.inputs["images"].name: [data]})
    for _ in range(spec["warmup"]):
        for sess, fetch, feed in sessions.values():
            sess.run(fetch, feed)
    times = {name: [] for name in sessions}
    for _ in range(spec["runs"]):
        for name, (sess, fetch, feed) in sessions.items():
            t0 = time.perf_counter()
            out = sess.run(fetch, feed)
            times[name].append((time.perf_counter() - t0) * 1000.0)
    assert "keras_det" not in sys.modules
    print(json.dumps({"times_ms": times}))
    """
)


def detectors():
    from keras_det import presets

    names = {"faster_rcnn": "faster_rcnn_test", "mask_rcnn": "mask_rcnn_test", "ssd": "ssd_test",
             "yolo_multiscale": "yolo_test", "sliding_window": "sliding_window_test"}
    return {name: (lambda preset=preset: presets.build(preset, 3)) for name, preset in names.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--models", default=None, help="comma-separated subset")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "serving_latency.json"))
    args = parser.parse_args(argv)

    import tensorflow as tf

    from keras_det.export import export_saved_model

    factories = detectors()
    names = args.models.split(",") if args.models else list(factories)
    tmp = tempfile.mkdtemp(prefix="serving_latency_")
    rng = np.random.default_rng(0)
    # A smooth-ish image (random blobs) so the JPEG is realistic in size.
    small = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    pixels = tf.cast(tf.image.resize(small[None].astype(np.float32), IMAGE_SIZE)[0], tf.uint8).numpy()
    jpeg = tf.io.encode_jpeg(pixels, quality=90).numpy()
    jpeg_path = os.path.join(tmp, "image.jpg")
    with open(jpeg_path, "wb") as f:
        f.write(jpeg)
    # What the SavedModel sees after decoding (JPEG is lossy): feed the same to Keras.
    decoded = tf.io.decode_jpeg(jpeg, channels=3).numpy()

    models, paths, export_s = {}, {}, {}
    for name in names:
        t0 = time.perf_counter()
        model = factories[name]()
        model(np.zeros((1,) + IMAGE_SIZE + (3,), np.float32), training=False)
        paths[name] = export_saved_model(model, os.path.join(tmp, name), image_size=IMAGE_SIZE)
        export_s[name] = time.perf_counter() - t0
        models[name] = model
        print(f"exported {name} in {export_s[name]:.1f}s", flush=True)

    # (a) TF1 session loader in a keras_det-free subprocess.
    script = os.path.join(tmp, "tf1_client.py")
    with open(script, "w") as f:
        f.write(TF1_CLIENT)
    spec = {"jpeg": jpeg_path, "models": paths, "runs": args.runs, "warmup": args.warmup}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, script, json.dumps(spec)], capture_output=True, text=True, env=env, cwd=tmp)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    tf1_times = json.loads(run.stdout.strip().splitlines()[-1])["times_ms"]
    print(f"TF1 session client done in {time.perf_counter() - t0:.1f}s", flush=True)

    # (b) serving_tensor via tf.saved_model.load and (c) Keras predict_on_batch, interleaved.
    loaded = {name: tf.saved_model.load(paths[name]) for name in names}
    fns = {name: loaded[name].signatures["serving_tensor"] for name in names}
    uint8_batch = tf.constant(decoded[None])
    float_batch = decoded[None].astype(np.float32)
    for _ in range(args.warmup):
        for name in names:
            fns[name](images=uint8_batch)
            models[name].predict_on_batch(float_batch)
    tf2_times = {name: [] for name in names}
    keras_times = {name: [] for name in names}
    for _ in range(args.runs):
        for name in names:
            t0 = time.perf_counter()
            out = fns[name](images=uint8_batch)
            _ = out["num_detections"].numpy()
            tf2_times[name].append((time.perf_counter() - t0) * 1000.0)
            t0 = time.perf_counter()
            models[name].predict_on_batch(float_batch)
            keras_times[name].append((time.perf_counter() - t0) * 1000.0)

    med = statistics.median
    rows = {}
    print()
    print(f"{'model':<18}{'TF1 sess ms':>12}{'TF2 tensor ms':>15}{'Keras ms':>10}{'TF1/Keras':>11}{'TF2/Keras':>11}")
    for name in names:
        a, b, c = med(tf1_times[name]), med(tf2_times[name]), med(keras_times[name])
        rows[name] = {"tf1_session_serving_default_ms": a, "tf2_serving_tensor_ms": b, "keras_predict_on_batch_ms": c,
                      "ratio_tf1_over_keras": a / c, "ratio_tf2_over_keras": b / c,
                      "export_seconds": export_s[name],
                      "runs_ms": {"tf1_session": tf1_times[name], "tf2_serving_tensor": tf2_times[name],
                                  "keras": keras_times[name]}}
        print(f"{name:<18}{a:>12.2f}{b:>15.2f}{c:>10.2f}{a / c:>10.2f}x{b / c:>10.2f}x")

    out = {
        "benchmark": "serving latency of exported detectors, batch 1, 128x128, CPU",
        "statistic": f"median ms/image of {args.runs} runs after {args.warmup} warm-up runs",
        "inputs": {"tf1_session": f"serving_default, one encoded JPEG ({len(jpeg)} bytes, 128x128)",
                   "tf2_serving_tensor": "serving_tensor, uint8 [1,128,128,3] (the decoded JPEG)",
                   "keras": "predict_on_batch, float32 [1,128,128,3] (the decoded JPEG)"},
        "interleaving": "tf1_session: round-robin over models in a keras_det-free subprocess; "
                        "tf2_serving_tensor and keras: interleaved per model per round in the main process",
        "platform": {"python": sys.version.split()[0], "tensorflow": tf.__version__, "machine": platform.machine(),
                     "cpu_count": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
        "results": rows,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.output}")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
