"""`keras-det train --strategy mirrored` through the command line, on 2 logical CPU devices.

The run is a subprocess (``python -m keras_det.cli``): the CPU can only be
split into logical devices before TensorFlow initialises, which the test
process did long ago. Tiny SSD, 64 px, one step of a global batch of 2
(one image per replica), no validation (~25-30 s on 2 busy cores, most of it
importing TensorFlow and tracing the replicated step).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_det import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_cli(args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "KERAS_DET_CPU_DEVICES"}
    env.update(PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "keras_det.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def test_train_mirrored_on_two_logical_cpus_reports_two_replicas_and_the_model_predicts(tmp_path):
    import keras

    import keras_det.models  # noqa: F401  (registers the classes the .keras file names)

    run = str(tmp_path / "mirrored")
    proc = _run_cli(["train", "--model", "ssd", "--strategy", "mirrored", "--image-size", "64", "--batch-size", "2",
                     "--epochs", "1", "--steps-per-epoch", "1", "--train-images", "4", "--val-split", "none",
                     "--no-augment", "--output-dir", run], env_extra={"KERAS_DET_CPU_DEVICES": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "strategy mirrored: 2 replica(s) in sync" in proc.stdout and "device:CPU:1" in proc.stdout
    assert "warning" not in proc.stdout
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["strategy"] == "mirrored" and summary["replicas"] == 2 and summary["global_batch_size"] == 2
    model = keras.saving.load_model(summary["model"])
    assert model.image_size == (64, 64)
    weights = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in weights)
    out = model.predict_on_batch(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32"))
    assert out["boxes"].shape[0] == 2 and out["boxes"].shape[-1] == 4
    assert np.all(np.isfinite(np.asarray(out["scores"])))


def test_cpu_devices_flag_is_checked_before_training(tmp_path, monkeypatch, capsys):
    from keras_det import cli

    assert cli.main(["train", "--cpu-devices", "0", "--output-dir", str(tmp_path / "x")]) == 2
    assert "--cpu-devices must be >= 1" in capsys.readouterr().err
    monkeypatch.setenv("KERAS_DET_CPU_DEVICES", "two")
    assert cli.main(["train", "--output-dir", str(tmp_path / "y")]) == 2
    assert "KERAS_DET_CPU_DEVICES='two' is not an integer" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "y")


def test_split_cpu_after_tensorflow_started_names_the_problem():
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # the runtime is up
    have = len(tf.config.list_logical_devices("CPU"))
    assert training.split_cpu(have) == have  # what it already is: nothing to do
    with pytest.raises(RuntimeError, match=f"cannot split the CPU into {have + 1} logical devices: TensorFlow is already"):
        training.split_cpu(have + 1)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="`num_devices` must be a positive integer"):
            training.split_cpu(bad)


@pytest.mark.slow
def test_train_multi_worker_two_processes_through_the_cli(tmp_path):
    """Two `keras-det train --strategy multi_worker` processes (TF_CONFIG, loopback ports): the chief saves
    a model that loads and predicts, its summary says 2 replicas; the other worker writes nothing there."""
    import keras

    import keras_det.models  # noqa: F401
    from keras_det.beam.portable import free_port

    run = str(tmp_path / "mw")
    ports = set()
    while len(ports) < 2:
        ports.add(free_port())
    cluster = {"worker": [f"localhost:{p}" for p in sorted(ports)]}
    args = [sys.executable, "-m", "keras_det.cli", "train", "--model", "ssd", "--strategy", "multi_worker",
            "--image-size", "64", "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "1", "--train-images", "4",
            "--val-split", "none", "--no-augment", "--output-dir", run]
    procs = []
    for i in range(2):
        env = {k: v for k, v in os.environ.items() if k != "KERAS_DET_CPU_DEVICES"}
        env.update(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
                   PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for p in procs:
        try:
            outputs.append(p.communicate(timeout=300))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, outputs[-1][1][-3000:]
    assert all("strategy multi_worker: 2 replica(s) in sync" in out for out, _ in outputs)
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["strategy"] == "multi_worker" and summary["replicas"] == 2
    scratch = [n for n in os.listdir(os.path.join(run, "distributed")) if n.startswith("worker_")]
    assert scratch == []  # the other worker's checkpoint and model copies are removed
    model = keras.saving.load_model(summary["model"])
    out = model.predict_on_batch(np.zeros((1, 64, 64, 3), "float32"))
    assert out["boxes"].shape[0] == 1 and np.all(np.isfinite(np.asarray(out["scores"])))
