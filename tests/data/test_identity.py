"""One image identity everywhere: ``file_name`` and ``image_id`` of folder datasets."""

import hashlib
import os
import shutil

import pytest

from keras_det import data as kd
from keras_det.data.core import normalize_file_name
from tests.data import folders


def test_file_image_id_reference_values():
    # The first 53 bits of SHA-1("BloodImage_00001.jpg") = 7468683d2a482adc... (hex).
    assert hashlib.sha1(b"BloodImage_00001.jpg").hexdigest()[:16] == "7468683d2a482adc"
    assert kd.file_image_id("BloodImage_00001.jpg") == 0x7468683D2A482ADC >> 11
    assert kd.file_image_id("BloodImage_00001.jpg") < 2**53
    # One file, one id, however the path is spelled; different files differ.
    assert kd.file_image_id("./train/a.jpg") == kd.file_image_id("train/a.jpg")
    assert kd.file_image_id("a.jpg") != kd.file_image_id("a.png")
    assert normalize_file_name("./x/../train//a.jpg") == "train/a.jpg"


def _ids(ds):
    return [(e["file_name"].decode(), int(e["image_id"])) for e in ds.as_numpy_iterator()]


def test_voc_ids_follow_the_file_not_the_split_order(tmp_path):
    root = folders.write_voc_devkit(str(tmp_path))
    base = os.path.join(root, "VOC2007")
    before = dict(_ids(kd.load(root, "train")))
    split = os.path.join(base, "ImageSets", "Main", "train.txt")
    names = open(split).read().split()
    with open(split, "w") as f:
        f.write("\n".join(reversed(names)) + "\n")
    ds, info = kd.load(root, "train", with_info=True)
    after = _ids(ds)
    assert [n for n, _ in after] == [n + ".jpg" for n in reversed(names)]
    assert dict(after) == before
    assert {n: kd.file_image_id(n) for n in before} == before
    assert list(info.file_names) == [n for n, _ in after]


def test_voc_same_stem_two_extensions_are_two_images(tmp_path):
    root = folders.write_voc_devkit(str(tmp_path))
    base = os.path.join(root, "VOC2007")
    # A second annotation "chelsea_png" whose image is chelsea.png.
    shutil.copy(os.path.join(base, "JPEGImages", "chelsea.jpg"), os.path.join(base, "JPEGImages", "chelsea.png"))
    xml = open(os.path.join(base, "Annotations", "chelsea.xml")).read()
    with open(os.path.join(base, "Annotations", "chelsea_png.xml"), "w") as f:
        f.write(xml.replace("<filename>chelsea.jpg</filename>", "<filename>chelsea.png</filename>"))
    with open(os.path.join(base, "ImageSets", "Main", "train.txt"), "a") as f:
        f.write("chelsea_png\n")
    got = dict(_ids(kd.load(root, "train")))
    assert got["chelsea.jpg"] != got["chelsea.png"]
    assert len(set(got.values())) == len(got) == 4


def test_voc_one_image_under_two_annotations_is_an_error(tmp_path):
    root = folders.write_voc_devkit(str(tmp_path))
    base = os.path.join(root, "VOC2007")
    shutil.copy(os.path.join(base, "Annotations", "chelsea.xml"), os.path.join(base, "Annotations", "chelsea2.xml"))
    with open(os.path.join(base, "ImageSets", "Main", "train.txt"), "a") as f:
        f.write("chelsea2\n")
    with pytest.raises(kd.DataError, match=r"'chelsea.jpg' is listed twice.*chelsea.xml.*chelsea2.xml"):
        kd.load(root, "train")


def test_yolo_and_labelimg_file_names_are_relative_to_the_image_folder(tmp_path):
    yolo = folders.write_yolo(str(tmp_path / "yolo"))
    got = _ids(kd.load(yolo, "val"))
    assert got == [("rocket.jpg", kd.file_image_id("rocket.jpg"))]
    labelimg = folders.write_labelimg(str(tmp_path / "labelimg"))
    ds, info = kd.load(labelimg, "train", with_info=True)
    for name, image_id in _ids(ds):
        assert "/" not in name and image_id == kd.file_image_id(name)
    assert list(info.image_ids) == [i for _, i in _ids(ds)]


def test_coco_keeps_its_ids_and_file_names(tmp_path):
    coco = folders.write_coco(str(tmp_path))
    ds, info = kd.load(coco, "train", with_info=True)
    got = _ids(ds)
    assert [i for _, i in got] == [105, 115, 125]
    assert [n for n, _ in got] == [n + ".jpg" for n in folders.TRAIN]


def test_to_coco_carries_ids_and_file_names(tmp_path):
    root = folders.write_voc_devkit(str(tmp_path))
    ds, info = kd.load(root, "train", "xywh", with_info=True)
    gt = kd.to_coco(ds, info)
    assert [(im["file_name"], im["id"]) for im in gt["images"]] == list(zip(info.file_names, info.image_ids))
    assert {a["image_id"] for a in gt["annotations"]} <= set(info.image_ids)


def test_batches_carry_file_names():
    ds = kd.pipeline(kd.load("shapes", "validation", num_images=3), batch_size=3)
    element = next(iter(ds))
    names = [n.decode() for n in element["file_name"].numpy()]
    assert names == ["validation/000000.png", "validation/000001.png", "validation/000002.png"]


def test_input_roots_and_relative_names(tmp_path):
    from keras_det.identity import expand_inputs, input_root, relative_file_name

    assert input_root("photos/*.jpg") == "photos/"
    assert input_root("photos/*/img_*.jpg") == "photos/"
    assert input_root("photos/img_*.jpg") == "photos/"
    assert input_root("*.jpg") == ""
    assert input_root("gs://b/images/**") == "gs://b/images/"
    assert input_root("photos/a.jpg") == "photos"
    assert relative_file_name("gs://b/images/sub/a.jpg", "gs://b/images/") == "sub/a.jpg"
    assert relative_file_name(str(tmp_path / "x" / "a.jpg"), str(tmp_path)) == "x/a.jpg"
    assert relative_file_name("/elsewhere/a.jpg", str(tmp_path)) == "a.jpg"

    for sub in ("a", "b", "b/c"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        (tmp_path / sub / "x.jpg").write_bytes(b"")
    (tmp_path / "b" / "notes.txt").write_text("")
    got = expand_inputs([str(tmp_path / "b"), str(tmp_path / "b" / "x.jpg")])  # the same file twice: once
    assert [n for _, n in got] == ["c/x.jpg", "x.jpg"]
    with pytest.raises(ValueError, match=r"b/x.jpg and .*a/x.jpg would both be named 'x.jpg'"):
        expand_inputs([str(tmp_path / "b"), str(tmp_path / "a" / "*.jpg")])
    assert [n for _, n in expand_inputs([str(tmp_path)])] == ["a/x.jpg", "b/c/x.jpg", "b/x.jpg"]
    with pytest.raises(FileNotFoundError, match="matches no image file"):
        expand_inputs([str(tmp_path / "*.png")])
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        expand_inputs([str(tmp_path / "missing")])
