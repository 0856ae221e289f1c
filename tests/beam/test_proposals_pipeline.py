"""The proposal pipeline on the DirectRunner's engine (FnApiRunner): outputs + dead letters = inputs."""

import glob
import json
import os

import cv2
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from keras_det import data as kd_data
from keras_det.data.proposal_io import read_proposals
from keras_det.identity import file_image_id
from keras_det.beam import sources, tf_example
from keras_det.beam import proposals as pipeline

FAST = ["--method", "selective_search_fast", "--max_side", "96", "--max_proposals", "50"]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    photos = {"chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee(), "astronaut": skimage.data.astronaut()}
    for name, image in photos.items():
        small = cv2.resize(image, (96, 72))
        cv2.imwrite(str(folder / f"{name}.png"), small[:, :, ::-1])
    cv2.imwrite(str(folder / "gray.jpg"), cv2.resize(skimage.data.camera(), (80, 80)))  # 1 channel → RGB
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG" * 20)
    (folder / "empty.png").write_bytes(b"")
    return folder


def _count_records(out):
    return sum(1 for _ in tf.data.TFRecordDataset(glob.glob(os.path.join(out, "proposals-*.tfrecord"))))


def _dead_letters(out):
    lines = []
    for path in glob.glob(os.path.join(out, "dead_letter-*.jsonl")):
        lines += [json.loads(line) for line in open(path) if line.strip()]
    return lines


def test_pipeline_on_image_files_with_dead_letters(image_dir, tmp_path):
    out = str(tmp_path / "out")
    summary = pipeline.run(["--input", str(image_dir / "*"), "--output", out, "--include_image", *FAST,
                            "--direct_num_workers=1"])
    inputs = len(os.listdir(image_dir))
    dead = _dead_letters(out)
    assert _count_records(out) + len(dead) == inputs == 6
    assert {d["file_name"]: d["stage"] for d in dead} == {"corrupt.jpg": "decode", "empty.png": "decode"}
    assert "undecodable" in {d["file_name"]: d["reason"] for d in dead}["corrupt.jpg"]
    assert summary["images"] == 4 and summary["failures"] == 2
    assert summary["counters"]["processed"] == 4 and summary["counters"]["decode_failed"] == 2
    assert 0 < summary["proposals_per_image"]["p50"] <= summary["proposals_per_image"]["p95"] <= 50
    assert json.load(open(os.path.join(out, "summary.json")))["images"] == 4

    props = read_proposals(out)
    names = ("chelsea.png", "coffee.png", "astronaut.png", "gray.jpg")
    assert set(props) == {str(file_image_id(n)) for n in names}
    chelsea = props[str(file_image_id("chelsea.png"))]
    assert chelsea["image_shape"] == (72, 96)
    assert chelsea["boxes"].dtype == np.float32 and 0 < len(chelsea["boxes"]) <= 50
    assert chelsea["boxes"][:, 2].max() <= 72 and chelsea["boxes"][:, 3].max() <= 96
    # The same boxes as calling propose() directly (the pipeline adds nothing).
    from keras_det.region_proposals import propose

    image = cv2.imread(str(image_dir / "chelsea.png"))[:, :, ::-1]
    np.testing.assert_allclose(chelsea["boxes"], propose(image, max_side=96, max_proposals=50), atol=1e-4)
    # --include_image keeps the input bytes.
    record = next(iter(tf.data.TFRecordDataset(glob.glob(os.path.join(out, "proposals-*.tfrecord")))))
    parsed = tf_example.parse_example(record.numpy())
    assert parsed["image/encoded"][0][:4] == b"\x89PNG"


def test_pipeline_on_tfrecords_and_join(tmp_path):
    ds = kd_data.load("shapes", "train", "xyxy", num_images=3, image_size=64)
    images = str(tmp_path / "images.tfrecord")
    assert kd_data.write_images(ds, images) == 3
    # Two broken records: an Example without image, and one whose image does not decode.
    with tf.io.TFRecordWriter(str(tmp_path / "broken.tfrecord")) as writer:
        writer.write(tf_example.make_example({"image/source_id": [b"noimage"]}))
        writer.write(tf_example.make_example({"image/source_id": [b"garbage"], "image/encoded": [b"garbage"]}))
    out = str(tmp_path / "out")
    summary = pipeline.run(["--input", str(tmp_path / "*.tfrecord"), "--output", out, *FAST])
    dead = {d["file_name"]: d["stage"] for d in _dead_letters(out)}
    assert dead == {"noimage": "read", "garbage": "decode"}
    assert summary["images"] == 3 and _count_records(out) + len(dead) == 5

    joined = kd_data.join_proposals(ds, out, "xyxy", num_proposals=40)
    batch = next(iter(kd_data.batch(joined, 3)))
    assert batch["proposals"].shape == (3, 40, 4)
    props = read_proposals(out)["0"]["boxes"]
    n = min(len(props), 40)
    np.testing.assert_allclose(batch["proposals"][0, :n].numpy(), props[:n][:, [1, 0, 3, 2]], atol=1e-4)


def test_pipeline_multi_processing_two_workers(image_dir, tmp_path):
    out = str(tmp_path / "out")
    summary = pipeline.run(["--input", str(image_dir / "*"), "--output", out, "--method", "sliding_window",
                            "--max_proposals", "30", "--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert summary["images"] == 4 and summary["failures"] == 2
    assert _count_records(out) + len(_dead_letters(out)) == 6


def test_pipeline_features_step(image_dir, tmp_path):
    from keras_det.models.rcnn import RCNN

    model = RCNN(2, backbone="tiny", warp_size=32, context_padding=4)
    model_path = str(tmp_path / "rcnn.keras")
    model.save(model_path)
    out = str(tmp_path / "out")
    summary = pipeline.run(["--input", str(image_dir / "c*.png"), "--output", out, *FAST, "--max_proposals", "20",
                            "--features", model_path, "--feature_chunk", "8"])
    assert summary["images"] == 2 and summary["failures"] == 0  # chelsea.png, coffee.png
    props = read_proposals(out)
    for image_id, entry in props.items():
        assert entry["features"].shape == (len(entry["boxes"]), model.feature_dim)
        assert image_id == str(file_image_id(entry["file_name"]))
        image = cv2.imread(str(image_dir / entry["file_name"]))[:, :, ::-1].astype(np.float32)
        expected = model.window_features(image[None], entry["boxes"][None]).numpy()[0]
        # (Chunked vs. one batch: oneDNN may sum in another order.)
        np.testing.assert_allclose(entry["features"], expected, rtol=1e-3, atol=1e-2 * np.abs(expected).max())


def test_input_kinds_and_bad_method(tmp_path):
    assert sources.input_kind("/a/*.jpg") == "images"
    assert sources.input_kind("gs://b/train-*.tfrecord") == "tfrecord"
    assert sources.input_kind("tfds:voc/2007:validation") == "tfds"
    with pytest.raises(ValueError, match="edge_model"):
        pipeline.run(["--input", "x", "--output", str(tmp_path), "--method", "edge_boxes"])


import tensorflow_datasets as tfds  # noqa: E402


class KerasDetTinyImages(tfds.core.GeneratorBasedBuilder):
    """A 3-image TFDS dataset built locally (no network) for the `tfds:` input."""

    VERSION = tfds.core.Version("1.0.0")
    # TFDS would find its code folder through importlib_resources (not installed here).
    code_path = __import__("etils.epath", fromlist=["Path"]).Path(__file__)

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
            {"image": tfds.features.Image(shape=(None, None, 3)), "image/filename": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        rng = np.random.default_rng(0)
        for i in range(3):
            yield i, {"image": rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "image/filename": f"img{i}.png"}


def test_pipeline_on_tfds(tmp_path):
    KerasDetTinyImages(data_dir=str(tmp_path)).download_and_prepare()
    out = str(tmp_path / "out")
    summary = pipeline.run(["--input", "tfds:keras_det_tiny_images:train", "--tfds_data_dir", str(tmp_path), "--output", out,
                            "--method", "sliding_window", "--max_proposals", "20"])
    assert summary["images"] == 3 and summary["failures"] == 0
    props = read_proposals(out)
    # The ids keras_det.data.load gives TFDS examples (digits of the file name), file names kept.
    assert set(props) == {"0", "1", "2"} and props["0"]["image_shape"] == (48, 64)
    assert props["0"]["file_name"] == "img0.png"


def test_proposals_over_a_folder_glob_join_the_folder_dataset(tmp_path):
    """`keras-det proposals` over ``JPEGImages/*.jpg`` joins ``load(devkit)`` by image_id (issue 13.7)."""
    from ..data.folders import write_voc_devkit

    root = write_voc_devkit(str(tmp_path / "voc"))
    out = str(tmp_path / "out")
    summary = pipeline.run(["--input", os.path.join(root, "VOC2007", "JPEGImages", "*.jpg"), "--output", out, *FAST])
    assert summary["images"] == 4 and summary["failures"] == 0
    props = read_proposals(out)
    ds, info = kd_data.load(root, "train", "xyxy", with_info=True)
    assert {str(i) for i in info.image_ids} <= set(props)
    assert {props[str(i)]["file_name"] for i in info.image_ids} == set(info.file_names)
    joined = list(kd_data.join_proposals(ds, out, "xyxy", num_proposals=10).as_numpy_iterator())
    assert len(joined) == 3
    for element in joined:
        entry = props[str(element["image_id"])]
        assert entry["file_name"] == element["file_name"].decode()
        n = min(10, len(entry["boxes"]))
        np.testing.assert_allclose(element["proposals"][:n], entry["boxes"][:n][:, [1, 0, 3, 2]], atol=1e-4)
