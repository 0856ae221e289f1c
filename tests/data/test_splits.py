"""Splits: a dataset's own split files win; otherwise seeded val/test fractions; empty splits are errors."""

import os
import shutil

import pytest

from keras_det import data as kd
from keras_det.data.core import fraction_split
from tests.data import folders


def test_fraction_split_sizes_are_disjoint_and_stable():
    names = [f"img{i:02d}.jpg" for i in range(10)][::-1]  # given unsorted: sorted first
    parts = {s: fraction_split(names, s, 0.2, 0.1, seed=0) for s in ("train", "validation", "test")}
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [7, 2, 1]
    assert sorted(sum(parts.values(), [])) == sorted(names)
    assert fraction_split(names, "val", 0.2, 0.1, seed=0) == parts["validation"]
    # Stable: same names, fractions, seed -> same parts, whatever the input order.
    assert fraction_split(sorted(names), "test", 0.2, 0.1, seed=0) == parts["test"]
    # A positive fraction gets at least one image: 0.1 of 4 rounds to 0 -> 1.
    four = ["a", "b", "c", "d"]
    assert [len(fraction_split(four, s, 0.1, 0.1)) for s in ("train", "validation", "test")] == [2, 1, 1]
    assert fraction_split(four, "test", 0.1, 0.0) == []
    assert fraction_split(four, "all", 0.1, 0.1) == four
    with pytest.raises(ValueError, match="val_fraction=0.6, test_fraction=0.5"):
        fraction_split(four, "train", 0.6, 0.5)
    with pytest.raises(kd.DataError, match="'holdout' is not one of"):
        fraction_split(four, "holdout")


def test_labelimg_default_fractions_give_three_disjoint_splits(tmp_path):
    root = folders.write_labelimg(str(tmp_path))
    infos = {s: kd.load(root, s, with_info=True)[1] for s in ("train", "validation", "test")}
    sizes = {s: i.num_examples for s, i in infos.items()}
    assert sizes == {"train": 2, "validation": 1, "test": 1}  # 4 images, defaults 0.1 / 0.1
    files = sum((list(i.file_names) for i in infos.values()), [])
    assert sorted(files) == sorted(n + ".jpg" for n in folders.TRAIN + folders.VAL)
    again = kd.load(root, "validation", with_info=True)[1]
    assert again.file_names == infos["validation"].file_names


def test_empty_split_is_an_error_naming_the_other_splits(tmp_path):
    root = folders.write_labelimg(str(tmp_path))
    # 4 images, 7 boxes: chelsea 1, astronaut 2, coffee 1, rocket 3.
    with pytest.raises(kd.DataError) as error:
        kd.load(root, "test", val_fraction=0.25, test_fraction=0.0, split_seed=3)
    message = str(error.value)
    assert "split 'test' has no images" in message
    assert "train: 3 images" in message and "validation: 1 images" in message
    assert "--val-fraction / --test-fraction" in message


def test_split_without_boxes_is_an_error(tmp_path):
    root = folders.write_voc_devkit(str(tmp_path))
    base = os.path.join(root, "VOC2007")
    xml = os.path.join(base, "Annotations", "rocket.xml")  # the only val image
    text = open(xml).read()
    open(xml, "w").write(text[: text.index("<object>")] + "</annotation>")
    with pytest.raises(kd.DataError, match=r"split 'val' has 1 images but no boxes \(other splits: train: 3 images, 4 boxes; test: missing\)"):
        kd.load(root, "val")


def test_own_split_files_win_over_fractions(tmp_path):
    root = folders.write_voc_devkit(str(tmp_path))
    _, info = kd.load(root, "train", with_info=True, class_names=folders.SORTED_NAMES)
    assert [f[:-4] for f in info.file_names] == list(folders.TRAIN)
    yolo = folders.write_yolo(str(tmp_path / "yolo"))
    # images/train + images/val: the fractions apply only to a single pool.
    _, yinfo = kd.load(yolo, "train", with_info=True, val_fraction=0.5)
    assert sorted(f[:-4] for f in yinfo.file_names) == sorted(folders.TRAIN)


def test_yolo_single_pool_is_divided(tmp_path):
    root = folders.write_yolo(str(tmp_path))
    for kind, ext in (("images", ".jpg"), ("labels", ".txt")):
        for name in folders.VAL:
            shutil.move(os.path.join(root, kind, "val", name + ext), os.path.join(root, kind, "train", name + ext))
        os.rmdir(os.path.join(root, kind, "val"))
    infos = {s: kd.load(root, s, with_info=True)[1] for s in ("train", "validation", "test")}
    assert {s: i.num_examples for s, i in infos.items()} == {"train": 2, "validation": 1, "test": 1}
    files = sum((list(i.file_names) for i in infos.values()), [])
    assert sorted(files) == sorted(n + ".jpg" for n in folders.TRAIN + folders.VAL)
    assert kd.load(root, "all", with_info=True)[1].num_examples == 4


def test_yolo_data_yaml_names_the_split_folders(tmp_path):
    # A Roboflow-style export: <split>/images, <split>/labels, data.yaml with "../<split>/images".
    src = folders.write_yolo(str(tmp_path / "src"))
    root = str(tmp_path / "roboflow")
    for split, folder in (("train", "train"), ("val", "valid")):
        for kind in ("images", "labels"):
            shutil.copytree(os.path.join(src, kind, split), os.path.join(root, folder, kind))
    with open(os.path.join(root, "data.yaml"), "w") as f:
        f.write("train: ../train/images\nval: ../valid/images\nnc: 4\nnames: " + str(list(folders.YOLO_NAMES)) + "\n")
    assert kd.detect_layout(root) == "yolo"
    _, info = kd.load(root, "validation", with_info=True)
    assert [f[:-4] for f in info.file_names] == list(folders.VAL) and info.num_boxes == 3
    _, info = kd.load(root, "train", with_info=True)
    assert sorted(f[:-4] for f in info.file_names) == sorted(folders.TRAIN) and info.num_boxes == 4
    with pytest.raises(kd.DataError, match=r"data.yaml names the splits \['train', 'val'\], not 'test'"):
        kd.load(root, "test")
