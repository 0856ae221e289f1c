import os

import numpy as np
import pytest

from keras_det import data as kd
from keras_det.ops import boxes as B
from tests.data import folders

FORMATS = ("xyxy", "yxyx", "rel_xyxy", "center_xywh")


def _elements(ds):
    return [
        {
            "image": e["images"].numpy(),
            "boxes": e["bounding_boxes"]["boxes"].numpy(),
            "labels": e["bounding_boxes"]["labels"].numpy(),
            "extra": {
                k: v.numpy() for k, v in e["bounding_boxes"].items() if k not in ("boxes", "labels")
            },
            "image_id": int(e["image_id"].numpy()),
        }
        for e in ds
    ]


def _check(ds, fmt, want):
    got = _elements(ds)
    assert len(got) == len(want)
    for g, (boxes, labels, (h, w)) in zip(got, want):
        assert g["image"].dtype == np.float32 and g["image"].shape == (h, w, 3)
        assert 0 <= g["image"].min() and g["image"].max() <= 255
        assert g["labels"].dtype == np.int32
        np.testing.assert_array_equal(g["labels"], labels)
        np.testing.assert_allclose(
            g["boxes"],
            B.convert_format(boxes, "xyxy", fmt, image_shape=(h, w)),
            rtol=1e-5,
            atol=1e-4,
        )
    return got


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    return folders.write_coco(str(tmp_path_factory.mktemp("coco")))


@pytest.fixture(scope="module")
def voc_dir(tmp_path_factory):
    return folders.write_voc_devkit(str(tmp_path_factory.mktemp("voc")), rename=folders.VOC_RENAME)


@pytest.fixture(scope="module")
def yolo_dir(tmp_path_factory):
    return folders.write_yolo(str(tmp_path_factory.mktemp("yolo")))


@pytest.mark.parametrize("fmt", FORMATS)
def test_coco_folder(coco_dir, fmt):
    ds, info = kd.load(coco_dir, "train", fmt, with_info=True)
    assert info.name == "coco"
    # Categories sorted by id: person 1, rocket 5, cat 17, cup 47.
    assert info.class_names == ("person", "rocket", "cat", "cup")
    assert info.category_ids == (1, 5, 17, 47)
    got = _check(ds, fmt, folders.expected(folders.TRAIN, info.class_names))
    assert [g["image_id"] for g in got] == [105, 115, 125]
    assert info.image_files[0].endswith(os.path.join("train", "chelsea.jpg"))


def test_coco_validation_alias_and_json_path(coco_dir):
    ds, info = kd.load(coco_dir, "validation", with_info=True)
    _check(ds, "xyxy", folders.expected(folders.VAL, info.class_names))
    ds2 = kd.load(os.path.join(coco_dir, "annotations", "instances_val.json"), "validation", "yxyx")
    _check(ds2, "yxyx", folders.expected(folders.VAL, info.class_names))


@pytest.mark.parametrize("fmt", FORMATS)
def test_voc_devkit(voc_dir, fmt):
    assert kd.detect_layout(voc_dir) == "voc"
    ds, info = kd.load(voc_dir, "train", fmt, with_info=True)
    # All names are standard VOC classes → the standard 20-class order.
    assert info.class_names == kd.VOC_CLASSES
    got = _check(ds, fmt, folders.expected(folders.TRAIN, kd.VOC_CLASSES, folders.VOC_RENAME))
    # Folder ids are the file_image_id of the path relative to JPEGImages/.
    assert [g["image_id"] for g in got] == [kd.file_image_id(n) for n in info.file_names]
    assert list(info.image_ids) == [g["image_id"] for g in got]
    # Object 1 of each image was written with <difficult>1</difficult>.
    np.testing.assert_array_equal(got[1]["extra"]["difficult"], [False, True])
    val = kd.load(voc_dir, "validation", fmt)
    _check(val, fmt, folders.expected(folders.VAL, kd.VOC_CLASSES, folders.VOC_RENAME))


def test_voc_devkit_non_standard_names_sorted(tmp_path):
    root = folders.write_voc_devkit(str(tmp_path))
    ds, info = kd.load(root, "train", with_info=True)
    assert info.class_names == folders.SORTED_NAMES
    _check(ds, "xyxy", folders.expected(folders.TRAIN, folders.SORTED_NAMES))
    # Class order comes from all XMLs, so the val split agrees.
    _, vinfo = kd.load(root, "val", with_info=True)
    assert vinfo.class_names == folders.SORTED_NAMES


@pytest.mark.parametrize("fmt", ("xyxy", "rel_yxyx"))
def test_labelimg_ratio_split(tmp_path, fmt):
    root = folders.write_labelimg(str(tmp_path))
    assert kd.detect_layout(root) == "labelimg"
    opts = dict(val_fraction=0.25, test_fraction=0.0, split_seed=3)
    train, info = kd.load(root, "train", fmt, with_info=True, **opts)
    val, vinfo = kd.load(root, "validation", fmt, with_info=True, **opts)
    assert info.class_names == folders.SORTED_NAMES
    names = lambda i: [os.path.basename(p)[:-4] for p in i.image_files]  # noqa: E731
    assert len(names(info)) == 3 and len(names(vinfo)) == 1
    assert sorted(names(info) + names(vinfo)) == sorted(folders.TRAIN + folders.VAL)
    _check(train, fmt, folders.expected(names(info), folders.SORTED_NAMES))
    _check(val, fmt, folders.expected(names(vinfo), folders.SORTED_NAMES))
    _, again = kd.load(root, "train", with_info=True, **opts)
    assert again.image_files == info.image_files
    _, everything = kd.load(root, "all", with_info=True)
    assert everything.num_examples == 4


def test_labelimg_split_list(tmp_path):
    root = folders.write_labelimg(str(tmp_path))
    with open(os.path.join(root, "train.txt"), "w") as f:
        f.write("ann_rocket\nann_coffee\n")
    ds, info = kd.load(root, "train", with_info=True)
    assert [os.path.basename(p) for p in info.image_files] == ["rocket.jpg", "coffee.jpg"]
    _check(ds, "xyxy", folders.expected(["rocket", "coffee"], folders.SORTED_NAMES))


@pytest.mark.parametrize("fmt", FORMATS)
def test_yolo(yolo_dir, fmt):
    assert kd.detect_layout(yolo_dir) == "yolo"
    ds, info = kd.load(yolo_dir, "train", fmt, with_info=True)
    assert info.class_names == folders.YOLO_NAMES
    # Images are read in sorted file-name order.
    order = sorted(folders.TRAIN)
    _check(ds, fmt, folders.expected(order, folders.YOLO_NAMES))
    val = kd.load(yolo_dir, "validation", fmt)
    _check(val, fmt, folders.expected(folders.VAL, folders.YOLO_NAMES))


def test_yolo_classes_txt_and_inline_yaml(tmp_path):
    root = folders.write_yolo(str(tmp_path / "a"), names_file="classes.txt")
    _, info = kd.load(root, "val", with_info=True)
    assert info.class_names == folders.YOLO_NAMES
    root = folders.write_yolo(str(tmp_path / "b"), names_file="classes.txt")
    os.remove(os.path.join(root, "classes.txt"))
    with open(os.path.join(root, "data.yaml"), "w") as f:
        f.write("nc: 4\nnames: ['rocket', 'person', 'cup', 'cat']  # inline\n")
    _, info = kd.load(root, "val", with_info=True)
    assert info.class_names == folders.YOLO_NAMES


def test_yolo_missing_label_file_is_background(tmp_path, caplog):
    root = folders.write_yolo(str(tmp_path))
    os.remove(os.path.join(root, "labels", "train", "coffee.txt"))
    with caplog.at_level("WARNING", logger="keras_det.data"):
        ds, info = kd.load(root, "train", with_info=True)
    assert info.stats["missing_label_file"] == 1
    assert "no label file" in caplog.text and "coffee.txt" in caplog.text
    got = _elements(ds)
    assert len(got[2]["labels"]) == 0 and got[2]["boxes"].shape == (
        0,
        4,
    )  # sorted: astronaut, chelsea, coffee


def test_coco_official_layout(tmp_path):
    """annotations/instances_val2017.json + val2017/ (the layout of the COCO download)."""
    root = folders.write_coco(str(tmp_path), splits=(("val2017", folders.VAL),))
    os.rename(os.path.join(root, "images", "val2017"), os.path.join(root, "val2017"))
    ds, info = kd.load(root, "validation", "rel_yxyx", with_info=True)
    assert info.source.endswith("instances_val2017.json")
    assert info.image_files[0] == os.path.join(root, "val2017", "rocket.jpg")
    _check(ds, "rel_yxyx", folders.expected(folders.VAL, info.class_names))


def test_grayscale_16bit_png_is_rgb_0_255(tmp_path):
    root = folders.write_yolo(str(tmp_path))
    path = os.path.join(root, "images", "val", "rocket.jpg")
    gray16 = (folders.photo("rocket").mean(-1) * 257).astype(np.uint16)
    os.remove(path)
    import cv2

    cv2.imwrite(path[:-4] + ".png", gray16)
    e = next(iter(kd.load(root, "val")))
    assert e["images"].shape == (85, 128, 3)
    assert 100 < float(e["images"].numpy().max()) <= 255
