"""Generated bad inputs thrown at the ``keras-det`` command line (issue 14, CLI family).

Every case builds its bad input in a temp dir and runs ``keras_det.cli.main``
in-process. A *rejected* case must exit 2 with exactly one stderr line
``keras-det: error: ...`` naming the input; a *handled* case (a corrupt image
among good ones) must exit 1, name each bad file on its own line and still
write the good images' ``detections.json``. No case may raise (a crash) or
exit 0 (a silent pass). A few cases also run the real ``keras-det`` console
script in a subprocess to check that no traceback (nor TensorFlow start-up
noise) reaches the user.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_det import cli

from ..data.folders import write_voc_devkit

SIZE = 64


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A SavedModel and a .keras file of an untrained tiny Faster R-CNN, a VOC folder and some files."""
    from keras_det import presets
    from keras_det.export import export_saved_model

    root = tmp_path_factory.mktemp("fuzz_cli")
    model = presets.build(cli.DEMO_PRESET, 5, bounding_box_format="xyxy")
    model(tf.zeros((1, SIZE, SIZE, 3)))
    model.save(str(root / "model.keras"))
    saved = export_saved_model(model, str(root / "saved"), image_size=(SIZE, SIZE))
    voc = write_voc_devkit(str(root / "voc"))
    rng = np.random.default_rng(0)
    good = root / "good.png"
    good.write_bytes(tf.io.encode_png(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).numpy())
    jpeg = tf.io.encode_jpeg(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).numpy()
    files = {
        "text.jpg": b"just some text, not an image\n",
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "notes.txt": b"hello\n",
        "notzip.keras": b"this is not a zip archive\n",
        "notjson.json": b"{not json",
        "object.json": json.dumps({"a": 1}).encode(),
        "latin1.json": "[{\"caf\xe9\": 1}]".encode("latin-1"),
        "nan_score.json": json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": float("nan")}]).encode(),
        "no_bbox.json": json.dumps([{"image_id": 1, "category_id": 1, "score": 0.5}]).encode(),
        "dets.json": json.dumps([]).encode(),
    }
    for name, content in files.items():
        (root / name).write_bytes(content)
    (root / "empty_dir").mkdir()
    (root / "not_a_model").mkdir()
    (root / "not_a_model" / "x.txt").write_text("x")
    corrupt_voc = write_voc_devkit(str(root / "corrupt_voc"))
    (root / "corrupt_voc" / "VOC2007" / "JPEGImages" / "chelsea.jpg").write_bytes(b"not a jpeg")
    return {"root": str(root), "saved": saved, "keras": str(root / "model.keras"), "voc": voc, "good": str(good),
            "corrupt_voc": corrupt_voc}


def P(name):
    """A placeholder for a path under the fixture's root (resolved per case)."""
    return ("path", name)


# (id, argv with P() placeholders, expected exit code, text every error line must contain)
REJECTED = [
    # train: argument checks happen before any data or model work
    ("train-epochs-negative", ["train", "--epochs", "-1", "--output-dir", P("run_neg")], "--epochs"),
    ("train-epochs-zero", ["train", "--epochs", "0", "--output-dir", P("run_zero")], "--epochs"),
    ("train-batch-size-zero", ["train", "--batch-size", "0"], "--batch-size"),
    ("train-image-size-zero", ["train", "--image-size", "0"], "--image-size"),
    ("train-steps-zero", ["train", "--steps-per-epoch", "0"], "--steps-per-epoch"),
    ("train-learning-rate-negative", ["train", "--learning-rate", "-1"], "--learning-rate"),
    ("train-epochs-not-a-number", ["train", "--epochs", "ten"], "ten"),
    ("train-unknown-model", ["train", "--model", "resnet"], "resnet"),
    ("train-missing-data", ["train", "--data", P("missing_folder"), "--image-size", "32"], "missing_folder"),
    ("train-empty-folder", ["train", "--data", P("empty_dir"), "--image-size", "32"], "empty_dir"),
    ("train-text-file-as-data", ["train", "--data", P("notes.txt"), "--image-size", "32"], "notes.txt"),
    ("train-bad-json-as-data", ["train", "--data", P("notjson.json"), "--image-size", "32"], "notjson.json"),
    ("train-corrupt-image", ["train", "--data", P("corrupt_voc"), "--image-size", "32"], "chelsea.jpg"),
    # export
    ("export-missing-model", ["export", P("missing.keras"), P("exp")], "missing.keras"),
    ("export-not-a-zip", ["export", P("notzip.keras"), P("exp")], "notzip.keras"),
    ("export-folder-as-model", ["export", P("empty_dir"), P("exp")], "empty_dir"),
    ("export-image-size-zero", ["export", "KERAS", P("exp"), "--image-size", "0"], "--image-size"),
    ("export-image-size-three", ["export", "KERAS", P("exp"), "--image-size", "64", "96", "128"], "--image-size"),
    ("export-image-size-negative", ["export", "KERAS", P("exp"), "--image-size", "-5"], "--image-size"),
    # predict
    ("predict-missing-image", ["predict", "SAVED", P("missing.jpg"), "--output", P("p")], "missing.jpg"),
    ("predict-empty-folder", ["predict", "SAVED", P("empty_dir"), "--output", P("p")], "empty_dir"),
    ("predict-empty-glob", ["predict", "SAVED", P("empty_dir/*.jpg"), "--output", P("p")], "empty_dir"),
    ("predict-missing-model", ["predict", P("missing_model"), "GOOD", "--output", P("p")], "missing_model"),
    ("predict-text-model", ["predict", P("notzip.keras"), "GOOD", "--output", P("p")], "notzip.keras"),
    ("predict-folder-not-a-model", ["predict", P("not_a_model"), "GOOD", "--output", P("p")], "not_a_model"),
    ("predict-keras-without-size", ["predict", "KERAS", "GOOD", "--output", P("p")], "--image-size"),
    ("predict-image-size-zero", ["predict", "KERAS", "GOOD", "--image-size", "0"], "--image-size"),
    ("predict-score-threshold-2", ["predict", "SAVED", "GOOD", "--score-threshold", "2"], "--score-threshold"),
    ("predict-only-a-text-file", ["predict", "SAVED", P("text.jpg"), "--output", P("p_text")], "text.jpg"),
    ("predict-only-an-empty-file", ["predict", "SAVED", P("empty.jpg"), "--output", P("p_empty")], "empty.jpg"),
    # evaluate
    ("evaluate-neither-model-nor-results", ["evaluate", "--data", "VOC", "--split", "train"], "--results"),
    ("evaluate-both-model-and-results", ["evaluate", "--model", "SAVED", "--results", P("dets.json"), "--data", "VOC"], "--results"),
    ("evaluate-no-data", ["evaluate", "--results", P("dets.json")], "--data"),
    ("evaluate-missing-results", ["evaluate", "--results", P("missing.json"), "--data", "VOC", "--split", "train"], "missing.json"),
    ("evaluate-results-not-json", ["evaluate", "--results", P("notjson.json"), "--data", "VOC", "--split", "train"], "notjson.json"),
    ("evaluate-results-an-object", ["evaluate", "--results", P("object.json"), "--data", "VOC", "--split", "train"], "object.json"),
    ("evaluate-results-not-utf8", ["evaluate", "--results", P("latin1.json"), "--data", "VOC", "--split", "train"], "latin1.json"),
    ("evaluate-results-nan-score", ["evaluate", "--results", P("nan_score.json"), "--data", "VOC", "--split", "train"], "nan_score.json"),
    ("evaluate-results-no-bbox", ["evaluate", "--results", P("no_bbox.json"), "--data", "VOC", "--split", "train"], "no_bbox.json"),
    ("evaluate-missing-data", ["evaluate", "--results", P("dets.json"), "--data", P("missing_folder")], "missing_folder"),
    ("evaluate-empty-split", ["evaluate", "--results", P("dets.json"), "--data", "VOC", "--split", "test"], "test"),
    ("evaluate-missing-model", ["evaluate", "--model", P("missing_model"), "--data", "VOC", "--split", "train"], "missing_model"),
    ("evaluate-text-model", ["evaluate", "--model", P("notes.txt"), "--data", "VOC", "--split", "train"], "notes.txt"),
    # others
    ("proposals-empty-glob", ["proposals", "--input", P("empty_dir/*.jpg"), "--output", P("props")], "empty_dir"),
    ("bench-unknown", ["bench", "nope"], "nope"),
    ("unknown-command", ["fly"], "fly"),
    ("demo-epochs-zero", ["demo", "--epochs", "0"], "--epochs"),
    ("demo-batch-size-negative", ["demo", "--batch-size", "-3"], "--batch-size"),
]


def _resolve(argv, env):
    out = []
    for item in argv:
        if isinstance(item, tuple):
            out.append(os.path.join(env["root"], item[1]))
        else:
            out.append({"SAVED": env["saved"], "KERAS": env["keras"], "GOOD": env["good"], "VOC": env["voc"]}.get(item, item))
    return out


@pytest.mark.parametrize("case", REJECTED, ids=[c[0] for c in REJECTED])
def test_rejected_with_one_line_naming_the_input(case, env, capsys):
    name, argv, named = case
    argv = _resolve(argv, env)
    capsys.readouterr()
    code = cli.main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, (name, code, captured.err[-500:])
    assert lines and all(line.startswith("keras-det: error: ") for line in lines), captured.err
    if not name.startswith("predict-only"):
        assert len(lines) == 1, captured.err
    assert named in lines[-1] or named in lines[0], captured.err
    assert "Traceback" not in captured.err and "File not found" not in captured.err
    if "--output-dir" in argv:
        run = argv[argv.index("--output-dir") + 1]
        assert not os.path.exists(os.path.join(run, "model.keras"))  # no untrained model saved


@pytest.mark.parametrize("bad", ["text.jpg", "truncated.jpg", "empty.jpg"])
def test_corrupt_image_among_good_ones_is_named_and_the_rest_written(bad, env, capsys):
    out = os.path.join(env["root"], f"mixed_{bad}")
    code = cli.main(["predict", env["saved"], env["good"], os.path.join(env["root"], bad), "--output", out])
    err = capsys.readouterr().err
    assert code == 1
    named = [line for line in err.splitlines() if bad in line]
    assert len(named) >= 1 and named[0].startswith("keras-det: error: ")
    assert "Traceback" not in err
    results = json.load(open(os.path.join(out, "detections.json")))
    assert isinstance(results, list) and {r["file_name"] for r in results} <= {"good.png"}
    failed = json.load(open(os.path.join(out, "failed.json")))
    assert [f["file_name"] for f in failed] == [bad]
    assert os.path.isfile(os.path.join(out, "good_pred.png"))


def test_verbose_shows_the_traceback(env):
    with pytest.raises(FileNotFoundError):
        cli.main(["predict", env["saved"], os.path.join(env["root"], "missing.jpg"), "--verbose"])


@pytest.mark.parametrize("argv, named", [
    (["predict", "SAVED", ("path", "missing.jpg")], "missing.jpg"),
    (["export", ("path", "notzip.keras"), ("path", "exp")], "notzip.keras"),
    (["train", "--epochs", "-1"], "--epochs"),
])
def test_console_script_prints_no_traceback(argv, named, env):
    argv = _resolve(argv, env)
    script = [sys.executable, "-c", "import sys; from keras_det.cli import main; sys.exit(main())", *argv]
    proc = subprocess.run(script, capture_output=True, text=True, timeout=120, env={**os.environ, "CI": "1"})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert lines == [lines[0]] and lines[0].startswith("keras-det: error: ") and named in lines[0], proc.stderr
