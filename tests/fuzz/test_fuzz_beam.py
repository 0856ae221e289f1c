"""Generated bad inputs for the Beam pipelines: records in = records out + dead letters.

Many bad inputs of one family go into one pipeline run (a folder of image
files, a glob of TFRecord files, a glob of detection files), next to good
ones; each input then declares its outcome:

* ``("ok", check)``: it is an output record (and ``check`` of it holds);
* ``("dead", stage, pattern)``: it is exactly one dead letter of that stage
  whose ``reason`` matches the pattern and which names the input (its
  ``file_name`` / ``source``).

Each family test also asserts that every input is accounted for exactly
once. Runs that must not start (an empty glob) or must fail (a malformed
ground truth) assert the error names the glob / file.
"""

import glob
import json
import math
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_det.identity import file_image_id
from keras_det.metrics.coco import evaluate_coco
from keras_det.beam import sources, tf_example
from keras_det.beam import evaluate as evaluate_pipeline
from keras_det.beam import proposals as proposals_pipeline

FAST = ["--method", "sliding_window", "--max_proposals", "5", "--direct_num_workers=1"]


def _image(h=40, w=56, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 90, np.uint8)
    cv2.rectangle(img, (5, 5), (w // 2, h // 2), tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
    return img


def _enc(ext, img=None):
    return cv2.imencode(ext, _image() if img is None else img)[1].tobytes()


def _dead_letters(out):
    lines = []
    for path in glob.glob(os.path.join(out, "dead_letter-*.jsonl")):
        lines += [json.loads(line) for line in open(path) if line.strip()]
    return lines


def _proposal_records(out):
    files = glob.glob(os.path.join(out, "proposals-*.tfrecord"))
    return [tf_example.parse_example(r.numpy()) for r in tf.data.TFRecordDataset(files)] if files else []


# -- image files --------------------------------------------------------------------------

JPEG = _enc(".jpg")
IMAGE_INPUTS = {
    # file name -> (bytes or callable(folder) making it, expected outcome)
    "good.png": (_enc(".png"), ("ok",)),
    "good.jpg": (JPEG, ("ok",)),
    "gray.jpg": (cv2.imencode(".jpg", cv2.cvtColor(_image(), cv2.COLOR_BGR2GRAY))[1].tobytes(), ("ok",)),
    "deep.png": (cv2.imencode(".png", (_image().astype(np.uint16) * 257))[1].tobytes(), ("ok",)),
    "photo.webp": (_enc(".webp"), ("ok",)),
    "photo.bmp": (_enc(".bmp"), ("ok",)),
    "tiny.png": (_enc(".png", _image(2, 2)), ("ok",)),
    "dup.jpg": (JPEG, ("ok",)),
    "dup.png": (_enc(".png"), ("ok",)),
    "0042.jpg": (JPEG, ("ok",)),
    "42.png": (_enc(".png"), ("ok",)),
    "sub/nested.jpg": (JPEG, ("ok",)),
    "text.jpg": (b"this is a text file\n", ("dead", "decode", r"undecodable")),
    "empty.png": (b"", ("dead", "decode", r"empty file")),
    "truncated.jpg": (JPEG[: len(JPEG) // 3], ("dead", "decode", r"undecodable")),
    "bad_sof.jpg": (None, ("dead", "decode", r"undecodable")),
    "bad_crc.png": (None, ("dead", "decode", r"undecodable")),
    "notes.txt": (b"hello\n", ("dead", "decode", r"undecodable")),
    "random.bin": (bytes(range(256)) * 4, ("dead", "decode", r"undecodable")),
    "broken_link.jpg": ("symlink", ("dead", "match", r"broken symbolic link")),
    b"caf\xe9.jpg": (JPEG, ("dead", "match", r"not valid UTF-8")),
    b"\xff\xfe.png": (_enc(".png"), ("dead", "match", r"not valid UTF-8")),
}


def _bad_sof():
    b = bytearray(JPEG)
    j = b.find(b"\xff\xc0")
    b[j + 5 : j + 9] = b"\x00\x00\x00\x00"
    return bytes(b)


def _bad_crc():
    b = bytearray(_enc(".png"))
    i = b.find(b"IDAT")
    b[i + 12] ^= 0xFF
    return bytes(b)


def _shown(name):
    return name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else name


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for name, (content, _) in IMAGE_INPUTS.items():
        path = os.path.join(os.fsencode(str(folder)), os.fsencode(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if content == "symlink":
            os.symlink(os.path.join(str(folder), "gone.jpg"), path)
            continue
        content = {"bad_sof.jpg": _bad_sof, "bad_crc.png": _bad_crc}.get(name, lambda: content)()
        with open(path, "wb") as f:
            f.write(content)
    out = str(tmp_path_factory.mktemp("out") / "proposals")
    summary = proposals_pipeline.run(["--input", str(folder / "**"), "--output", out, *FAST])
    return {"summary": summary, "records": _proposal_records(out), "dead": _dead_letters(out), "folder": str(folder)}


def test_images_accounted(image_run):
    names = [r["image/filename"][0].decode() for r in image_run["records"]]
    dead = [d["file_name"] for d in image_run["dead"]]
    assert sorted(names + dead) == sorted(_shown(n) for n in IMAGE_INPUTS)
    assert image_run["summary"]["images"] + image_run["summary"]["failures"] == len(IMAGE_INPUTS)
    ids = [int(r["image/source_id"][0]) for r in image_run["records"]]
    assert len(set(ids)) == len(ids)  # dup.jpg / dup.png, 0042.jpg / 42.png: distinct ids


@pytest.mark.parametrize("name", list(IMAGE_INPUTS), ids=[_shown(n) for n in IMAGE_INPUTS])
def test_image_input(image_run, name):
    expect = IMAGE_INPUTS[name][1]
    shown = _shown(name)
    records = [r for r in image_run["records"] if r["image/filename"][0].decode() == shown]
    dead = [d for d in image_run["dead"] if d["file_name"] == shown]
    if expect[0] == "ok":
        assert len(records) == 1 and not dead, (records, dead)
        assert int(records[0]["image/source_id"][0]) == file_image_id(shown)
        # sliding windows of at least --min_size 8 px: none fit a 2 x 2 image
        assert (records[0]["proposals/count"][0] == 0) == (shown == "tiny.png")
    else:
        assert len(dead) == 1 and not records, (records, dead)
        assert dead[0]["stage"] == expect[1] and re.search(expect[2], dead[0]["reason"]), dead[0]
        assert dead[0]["source"].endswith(shown)


# -- TFRecord files -----------------------------------------------------------------------


def _example(source_id=None, filename=None, encoded=JPEG):
    feature = {}
    if source_id is not None:
        feature["image/source_id"] = [source_id.encode()]
    if filename is not None:
        feature["image/filename"] = [filename.encode()]
    if encoded is not None:
        feature["image/encoded"] = [encoded]
    return tf_example.make_example(feature)


def _tfrecord(records):
    from apache_beam.io.tfrecordio import _TFRecordUtil

    import io

    buf = io.BytesIO()
    for r in records:
        _TFRecordUtil.write_record(buf, r)
    return buf.getvalue()


# file -> list of (record index or "rest", expected outcome); records written in order.
TFRECORD_FILES = {
    "a.tfrecord": [_example("1"), _example("2"), _example("3")],
    "b.tfrecord": [_example("10"), _example("11")],  # + a truncated third record
    "c.tfrecord": None,  # garbage bytes: not a TFRecord
    "d.tfrecord": [_example("2"), _example("20")],  # source_id 2 collides with a.tfrecord:1
    "e.tfrecord": [b"not a serialized example \xff\xff", _example("30")],
    "f.tfrecord": [_example("40", encoded=None), _example("41", encoded=b"not an image")],
    "g.tfrecord": [_example(None, "shared/x.jpg"), _example(None, "shared/x.jpg"), _example(None, "other.jpg")],
    "h.tfrecord": [],  # empty file: no records
}
TFRECORD_EXPECT = {
    "a.tfrecord:0": ("ok", 1), "a.tfrecord:1": ("ok", 2), "a.tfrecord:2": ("ok", 3),
    "b.tfrecord:0": ("ok", 10), "b.tfrecord:1": ("ok", 11),
    "b.tfrecord:2": ("dead", "read", r"TFRecord file .*b\.tfrecord is truncated or corrupt at record 2 \(2 record"),
    "c.tfrecord:0": ("dead", "read", r"c\.tfrecord is truncated or corrupt at record 0"),
    "d.tfrecord:0": ("dead", "read", r"image_id 2 is already used by .*a\.tfrecord:1"),
    "d.tfrecord:1": ("ok", 20),
    "e.tfrecord:0": ("dead", "read", r"not a tf\.Example"),
    "e.tfrecord:1": ("ok", 30),
    "f.tfrecord:0": ("dead", "read", r"no image/encoded"),
    "f.tfrecord:1": ("dead", "decode", r"undecodable"),
    "g.tfrecord:0": ("ok", file_image_id("shared/x.jpg")),
    "g.tfrecord:1": ("dead", "read", r"already used by .*g\.tfrecord:0 \(file_name 'shared/x\.jpg'\)"),
    "g.tfrecord:2": ("ok", file_image_id("other.jpg")),
}


@pytest.fixture(scope="module")
def tfrecord_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tfrecords")
    for name, records in TFRECORD_FILES.items():
        if records is None:
            data = b"\x00garbage, not a TFRecord at all" * 3
        else:
            data = _tfrecord(records)
        if name == "b.tfrecord":
            data += _tfrecord([_example("12")])[:-9]
        (folder / name).write_bytes(data)
    out = str(tmp_path_factory.mktemp("out") / "proposals")
    summary = proposals_pipeline.run(["--input", str(folder / "*.tfrecord"), "--output", out, *FAST])
    return {"summary": summary, "records": _proposal_records(out), "dead": _dead_letters(out), "folder": str(folder)}


def test_tfrecords_accounted(tfrecord_run):
    ids = sorted(int(r["image/source_id"][0]) for r in tfrecord_run["records"])
    assert ids == sorted(v[1] for v in TFRECORD_EXPECT.values() if v[0] == "ok")
    dead = sorted(os.path.basename(d["source"]) for d in tfrecord_run["dead"])
    assert dead == sorted(k for k, v in TFRECORD_EXPECT.items() if v[0] == "dead")


@pytest.mark.parametrize("key", list(TFRECORD_EXPECT))
def test_tfrecord_input(tfrecord_run, key):
    expect = TFRECORD_EXPECT[key]
    dead = [d for d in tfrecord_run["dead"] if os.path.basename(d["source"]) == key]
    if expect[0] == "ok":
        got = [r for r in tfrecord_run["records"] if int(r["image/source_id"][0]) == expect[1]]
        assert len(got) == 1 and not dead, (got, dead)
    else:
        assert len(dead) == 1, dead
        assert dead[0]["stage"] == expect[1] and re.search(expect[2], dead[0]["reason"]), dead[0]
        assert dead[0]["source"].startswith(tfrecord_run["folder"])


# -- detections (evaluate) --------------------------------------------------------------

GT = {
    "images": [{"id": i, "file_name": f"{i}.jpg", "height": 100, "width": 100} for i in (1, 2, 3)],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [20, 20, 30, 50], "area": 1500, "iscrowd": 0},
        {"id": 3, "image_id": 3, "category_id": 1, "bbox": [0, 0, 60, 60], "area": 3600, "iscrowd": 0},
    ],
    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
}
GOOD = [
    {"image_id": 1, "category_id": 1, "bbox": [11, 10, 40, 40], "score": 0.9},
    {"image_id": 2, "category_id": 2, "bbox": [20, 22, 30, 50], "score": 0.8},
    {"image_id": 3, "category_id": 1, "bbox": [50, 50, 30, 30], "score": 0.95},
    {"image_id": 3, "category_id": 1, "bbox": [0, 0, 58, 60], "score": 0.3},
]
_D = {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "score": 0.99}
BAD_LINES = {
    "nan_score": ({**_D, "score": float("nan")}, r"score that is not finite"),
    "inf_score": ({**_D, "score": float("inf")}, r"score that is not finite"),
    "neg_inf_score": ({**_D, "score": float("-inf")}, r"score that is not finite"),
    "nan_bbox": ({**_D, "bbox": [float("nan"), 1, 2, 3]}, r"NaN or infinite"),
    "inf_bbox": ({**_D, "bbox": [1, 1, float("inf"), 3]}, r"NaN or infinite"),
    "score_true": ({**_D, "score": True}, r"non-numeric score"),
    "score_string": ({**_D, "score": "0.5"}, r"non-numeric score"),
    "score_null": ({**_D, "score": None}, r"non-numeric score"),
    "bbox_bools": ({**_D, "bbox": [True, 1, 2, 3]}, r"bbox that is not 4 numbers"),
    "bbox_three": ({**_D, "bbox": [1, 2, 3]}, r"bbox that is not 4 numbers"),
    "bbox_string": ({**_D, "bbox": "ten"}, r"bbox that is not 4 numbers"),
    "bbox_negative": ({**_D, "bbox": [1, 2, -3, 4]}, r"negative width"),
    "no_score": ({k: v for k, v in _D.items() if k != "score"}, r"no 'score' field"),
    "no_image_id": ({k: v for k, v in _D.items() if k != "image_id"}, r"no 'image_id' field"),
    "image_id_bool": ({**_D, "image_id": True}, r"not a boolean"),
    "image_id_list": ({**_D, "image_id": [1]}, r"must be a number or a string"),
    "unknown_image": ({**_D, "image_id": 999}, r"not an image of the ground truth"),
    "unknown_category": ({**_D, "category_id": 77}, r"not a category of the ground truth"),
    "not_object": ([1, 2, 3], r"not a JSON object"),
    "not_json": ("{broken", r"not valid JSON"),
}


@pytest.fixture(scope="module")
def evaluate_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dets")
    gt_path = str(folder / "gt.json")
    json.dump(GT, open(gt_path, "w"))
    lines = [json.dumps(d) for d in GOOD[:2]]
    for key, (det, _) in BAD_LINES.items():
        lines.append(det if isinstance(det, str) else json.dumps(det))
    (folder / "dets_a.jsonl").write_text("\n".join(lines) + "\n")
    json.dump(GOOD[2:], open(str(folder / "dets_b.json"), "w"))
    (folder / "dets_c.jsonl").write_bytes(json.dumps(_D).encode() + b"\n\xff\xfe bad bytes\n")
    (folder / "dets_d.json").write_text("[" + json.dumps(_D) + ",")  # a broken JSON list
    out = str(tmp_path_factory.mktemp("out") / "eval")
    summary = evaluate_pipeline.run(["--gt", gt_path, "--detections", str(folder / "dets_*"), "--output", out,
                                     "--direct_num_workers=1"])
    return {"summary": summary, "dead": _dead_letters(out), "folder": str(folder), "gt": gt_path}


def test_detections_accounted(evaluate_run):
    summary, dead = evaluate_run["summary"], evaluate_run["dead"]
    # inputs: the good detections, one per bad line, one per unreadable file (c: not UTF-8, d: not JSON)
    assert summary["detections"] == len(GOOD)
    assert len(dead) == len(BAD_LINES) + 2 == summary["dead_letters"]
    ref = evaluate_coco(evaluate_run["gt"], GOOD)
    assert math.isclose(summary["stats"]["AP"], ref["AP"], abs_tol=1e-12)
    assert summary["stats"]["AP"] < 1.0  # a NaN score did not turn the result into AP 1.0


@pytest.mark.parametrize("key", list(BAD_LINES))
def test_detection_line(evaluate_run, key):
    line = list(BAD_LINES).index(key) + len(GOOD[:2])
    source = os.path.join(evaluate_run["folder"], "dets_a.jsonl") + f":{line}"
    dead = [d for d in evaluate_run["dead"] if d["source"] == source]
    assert len(dead) == 1, (source, evaluate_run["dead"])
    assert re.search(BAD_LINES[key][1], dead[0]["reason"]), dead[0]


@pytest.mark.parametrize("name,pattern", [("dets_c.jsonl", r"not UTF-8"), ("dets_d.json", r"not valid JSON")])
def test_unreadable_detection_file(evaluate_run, name, pattern):
    source = os.path.join(evaluate_run["folder"], name)
    dead = [d for d in evaluate_run["dead"] if d["source"] == source]
    assert len(dead) == 1 and re.search(pattern, dead[0]["reason"]), evaluate_run["dead"]


# -- runs that must not start / must fail naming the input ------------------------------


@pytest.mark.parametrize(
    "pipeline,args",
    [
        ("proposals", ["--input", "{d}/nothing/*.jpg", "--output", "{d}/out"]),
        ("proposals", ["--input", "{d}/*.tfrecord", "--output", "{d}/out"]),
        ("predict", ["--model", "{d}/model", "--input", "{d}/*.png", "--output", "{d}/out"]),
        ("evaluate", ["--gt", "{d}/gt.json", "--detections", "{d}/none-*.jsonl", "--output", "{d}/out"]),
        ("evaluate_gt", ["--gt", "{d}/missing_gt.json", "--detections", "{d}/dets.jsonl", "--output", "{d}/out"]),
        ("evaluate_gt", ["--gt", "{d}/missing_folder", "--detections", "{d}/dets.jsonl", "--output", "{d}/out"]),
    ],
)
def test_empty_glob_is_an_error(tmp_path, pipeline, args):
    d = str(tmp_path)
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    (tmp_path / "dets.jsonl").write_text(json.dumps(_D) + "\n")
    args = [a.format(d=d) for a in args]
    module = {"evaluate_gt": "evaluate"}.get(pipeline, pipeline)
    import importlib

    run = importlib.import_module(f"keras_det.beam.{module}").run
    named = next(a for a in args if "*" in a or "missing" in a)
    with pytest.raises(sources.InputError, match=re.escape(named)):
        run(args)
    assert not os.path.exists(os.path.join(d, "out", "summary.json"))


def test_empty_glob_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "keras_det.beam.proposals", "--input", str(tmp_path / "*.jpg"), "--output", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert proc.returncode == 2
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: --input") and "matches no file" in last and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "content,pattern",
    [(b"[1, 2, 3]", r"expected a COCO object"), (b"{not json", r"JSONDecodeError"),
     (b'{"images": "x"}', r"expected a COCO object"), (b"\xff\xfe{}", r"UnicodeDecodeError")],
    ids=["list", "not_json", "images_not_list", "not_utf8"],
)
def test_malformed_ground_truth_names_its_path(tmp_path, content, pattern):
    gt = tmp_path / "broken_gt.json"
    gt.write_bytes(content)
    (tmp_path / "dets.jsonl").write_text(json.dumps(_D) + "\n")
    with pytest.raises(Exception) as info:
        evaluate_pipeline.run(["--gt", str(gt), "--detections", str(tmp_path / "dets.jsonl"),
                               "--output", str(tmp_path / "out"), "--direct_num_workers=1"])
    message = str(info.value)
    assert str(gt) in message and re.search(pattern, message), message
