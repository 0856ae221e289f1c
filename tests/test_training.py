import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import models
from keras_det.export import export_saved_model
from keras_det.training import set_mixed_precision

from .models.replica_step import MeanBoxDetector
from .models.synthetic import rectangles


@pytest.fixture
def policy():
    yield set_mixed_precision
    set_mixed_precision("float32")


def _one_step(model, batch, lr=0.1):
    model.compile(optimizer=keras.optimizers.SGD(lr))
    model(batch["images"])
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(len(batch["images"])), epochs=1, verbose=0).history
    return history, [v.numpy() - b for v, b in zip(model.trainable_variables, before)]


def test_mixed_bfloat16_trains_predicts_float32_and_serves(policy, tmp_path):
    assert policy("mixed_bfloat16") == "mixed_bfloat16"
    batch = rectangles(num_images=2, size=64, num_classes=2, seed=5)
    model = models.SSD(2, backbone="tiny", image_size=(64, 64), feature_taps=("C4", "C5"), extra_filters=16, max_detections=5)
    assert model.dtype_policy.compute_dtype == "bfloat16" and model.dtype_policy.variable_dtype == "float32"
    history, moved = _one_step(model, batch, lr=0.01)
    assert all(np.isfinite(v[0]) for v in history.values()), history
    assert max(float(np.abs(m).max()) for m in moved) > 0
    out = model.predict(batch["images"], verbose=0)
    assert out["boxes"].dtype == np.float32 and out["scores"].dtype == np.float32
    path = export_saved_model(model, str(tmp_path))
    served = tf.saved_model.load(path).signatures["serving_tensor"](images=tf.constant(batch["images"].astype(np.uint8)))
    assert served["detection_boxes"].dtype == tf.float32 and served["detection_scores"].dtype == tf.float32
    assert served["detection_boxes"].shape == (2, 5, 4)


def test_mixed_float16_loss_scaling_gives_the_float32_step(policy):
    batch = rectangles(num_images=2, size=64, num_classes=2, seed=5)
    keras.utils.set_random_seed(0)
    _, reference = _one_step(MeanBoxDetector(), batch)
    policy("mixed_float16")
    keras.utils.set_random_seed(0)
    model = MeanBoxDetector()
    _, moved = _one_step(model, batch)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert float(model.optimizer.dynamic_scale.numpy()) > 1  # the loss was scaled ...
    for m, r in zip(moved, reference):  # ... and the gradients unscaled: the float32 step, to float16 precision
        np.testing.assert_allclose(m, r, rtol=2e-2, atol=2e-4)


def test_set_mixed_precision_rejects_unknown_policies(policy):
    with pytest.raises(ValueError, match="`policy` must be one of"):
        policy("float8")


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _weights(path):
    with np.load(path) as f:
        weights = [f[k] for k in sorted((k for k in f.files if k.startswith("arr_")), key=lambda k: int(k[4:]))]
        return weights, int(f["replicas"]), int(f["steps"])


def test_two_workers_end_equal_to_one_process_with_the_global_batch(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from .multi_worker_step import main as single_process

    root = Path(__file__).resolve().parents[1]
    single_process(str(tmp_path / "single.npz"))
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
               "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "2"}
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.multi_worker_step", str(tmp_path / f"w{i}.npz"),
                                       str(tmp_path / "ckpt")], cwd=root, env=env, stderr=subprocess.PIPE, text=True))
    for p in procs:
        try:
            _, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-3000:]
    (single, r, s), (w0, r0, s0), (w1, r1, s1) = (_weights(tmp_path / n) for n in ("single.npz", "w0.npz", "w1.npz"))
    assert (r, r0, r1) == (1, 2, 2) and s == s0 == s1 == 3
    assert max(float(np.abs(a).max()) for a in single) > 0
    for a, b, c in zip(single, w0, w1):
        np.testing.assert_array_equal(b, c)
        np.testing.assert_allclose(b, a, atol=1e-5)
    # The chief's checkpoints (kept: the last 2); the other worker's scratch copy is removed.
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index",
                                                     "ckpt-3.data-00000-of-00001", "ckpt-3.index"]


def test_fit_distributed_resumes_from_its_checkpoint(tmp_path):
    from .multi_worker_step import main as single_process

    single_process(str(tmp_path / "straight.npz"), epochs=3)
    single_process(str(tmp_path / "first.npz"), str(tmp_path / "ckpt"), epochs=2)
    single_process(str(tmp_path / "resumed.npz"), str(tmp_path / "ckpt"), epochs=3)  # restores step 2, runs 1 more
    straight, first, resumed = (_weights(tmp_path / n)[0] for n in ("straight.npz", "first.npz", "resumed.npz"))
    assert _weights(tmp_path / "resumed.npz")[2] == 3
    assert max(float(np.abs(a - b).max()) for a, b in zip(straight, first)) > 1e-4  # 2 steps are not 3
    for a, b in zip(straight, resumed):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
