"""Each pipeline on Beam's portable runner (job service + external SDK worker
pool, the path of Flink / Spark / Dataflow) gives the outputs and counters of
the in-process run (``portable_runner`` in conftest.py); `worker_env` gives the
workers the keras_det this process imports."""

import glob
import json
import os
import sys

import numpy as np

from keras_det.beam import evaluate, portable, predict, proposals
from keras_det.data.proposal_io import read_proposals
from keras_det.identity import file_image_id

from ..metrics.coco_cases import make_case
from .test_evaluate_pipeline import _write_case
from .test_predict_pipeline import image_dir as predict_images, saved_model  # noqa: F401 (fixtures)
from .test_proposals_pipeline import FAST, image_dir  # noqa: F401 (fixture)

VOLATILE = ("seconds", "images_per_second")


def _lines(out, prefix):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, f"{prefix}-*.jsonl"))):
        rows += [json.loads(line) for line in open(path) if line.strip()]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def _stable(summary):
    return {k: v for k, v in summary.items() if k not in VOLATILE}


def _both(run, args, tmp_path, portable_runner):
    local = run([*args, "--output", str(tmp_path / "local"), "--direct_num_workers=1"])
    remote = run([*args, "--output", str(tmp_path / "portable"), *portable_runner])
    return local, remote, str(tmp_path / "local"), str(tmp_path / "portable")


def test_proposals_on_the_portable_runner(image_dir, tmp_path, portable_runner):  # noqa: F811
    local, remote, a, b = _both(proposals.run, ["--input", str(image_dir / "*"), *FAST], tmp_path, portable_runner)
    assert _stable(remote) == _stable(local) and remote["counters"]["processed"] == 4
    assert _lines(b, "dead_letter") == _lines(a, "dead_letter") and len(_lines(a, "dead_letter")) == 2
    pa, pb = read_proposals(a), read_proposals(b)
    names = ("chelsea.png", "coffee.png", "astronaut.png", "gray.jpg")
    assert set(pa) == set(pb) == {str(file_image_id(n)) for n in names}
    for key in pa:
        np.testing.assert_array_equal(pa[key]["boxes"], pb[key]["boxes"])


def test_predict_on_the_portable_runner(saved_model, predict_images, tmp_path, portable_runner):  # noqa: F811
    args = ["--model", saved_model, "--input", str(predict_images / "*"), "--min_batch_size", "2", "--max_batch_size", "2"]
    local, remote, a, b = _both(predict.run, args, tmp_path, portable_runner)
    assert _stable(remote) == _stable(local) and remote["counters"]["inferred"] == 4
    assert _lines(b, "detections") == _lines(a, "detections") and len(_lines(a, "detections")) == local["detections"]
    assert _lines(b, "dead_letter") == _lines(a, "dead_letter")


def test_evaluate_on_the_portable_runner(tmp_path, portable_runner):
    gt, results = make_case(0, num_images=12)
    gt_path, dets = _write_case(str(tmp_path / "in"), gt, results, extra_lines=["not json"])
    local, remote, a, b = _both(evaluate.run, ["--gt", gt_path, "--detections", dets, "--images_per_batch", "5"],
                                tmp_path, portable_runner)
    assert _stable(remote) == _stable(local)
    assert remote["counters"]["detections_read"] == len(results) and remote["dead_letters"] == 1
    assert _lines(b, "dead_letter") == _lines(a, "dead_letter")


def test_worker_env_puts_this_checkout_first_on_pythonpath():
    """Run from a checkout, the workers import this keras_det (not another install) and run this Python."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert portable.import_root() == root
    env = portable.worker_env({"PYTHONPATH": "/elsewhere", "PATH": "/usr/bin"})
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "/elsewhere"]
    assert env["PATH"].split(os.pathsep) == [os.path.dirname(sys.executable), "/usr/bin"]


def test_worker_env_adds_nothing_for_an_installed_keras_det(monkeypatch):
    """Installed in site-packages, the workers find keras_det without PYTHONPATH (which would put
    site-packages before the standard library)."""
    import sysconfig

    monkeypatch.setattr(portable, "import_root", lambda: sysconfig.get_paths()["purelib"])
    assert "PYTHONPATH" not in portable.worker_env({"PATH": "/usr/bin"})
    assert portable.worker_env({"PYTHONPATH": "/elsewhere"})["PYTHONPATH"] == "/elsewhere"
