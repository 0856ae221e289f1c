"""One SGD step on 2 replicas (MirroredStrategy, 2 logical CPUs) equals one
step on 1 device with the same global batch, for every model ``fit`` trains.

The check runs in a subprocess (``tests/models/replica_step.py``) so that the
logical-device configuration does not leak into the other tests. The batch
has 1 and 3 objects in its two images: a loss normalised by a per-replica
count (positives, sampled anchors) moves the weights differently from one
device (SSD 1.07x, multiscale YOLO 1.10x, Faster R-CNN 2.8e-4 max difference
when measured with the per-replica count); without the 1/R loss scaling
every detector moved 2.00x.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_det.losses import replica_mean_scale, replica_normalizer

from .replica_step import BUILDERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def replica_results():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-m", "tests.models.replica_step", *BUILDERS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {row["model"]: row for row in rows}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_two_replica_step_equals_one_device_step(replica_results, name):
    row = replica_results.get(name)
    assert row is not None, f"{name}: no result"
    assert "error" not in row, row["error"]
    assert row["moved"] > 1e-3  # the step did move the weights
    assert row["max_abs_diff"] < 1e-4, row
    assert abs(row["ratio"] - 1.0) < 1e-3, row


def test_replica_helpers_without_a_strategy():
    np.testing.assert_allclose(replica_normalizer(tf.constant(3)), 3.0)
    np.testing.assert_allclose(replica_normalizer(0.0), 1.0)  # clamped: no positives, no division by zero
    np.testing.assert_allclose(replica_mean_scale(tf.constant(4.0)), 4.0)
