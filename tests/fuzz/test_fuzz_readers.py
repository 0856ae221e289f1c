"""Generated bad inputs for every folder reader, in both layouts of each.

Each case copies a small valid dataset (built once from scikit-image photos),
breaks one thing in it and declares the outcome:

* ``reject``: `keras_det.data.load` raises `DataError` whose message matches
  the case's pattern and names the file (or entry) at fault;
* ``reject_iter``: load succeeds (the files were not checked) and iterating
  raises an error whose message names the file;
* ``handle``: load and iteration succeed and the case's assertion of the
  correct result holds.

Any other exception is a crash, no error where one was expected a silent
pass: both fail the test.
"""

import dataclasses
import json
import logging
import os
import re
import shutil
from typing import Callable

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_det import data as kd
from tests.data import folders

LAYOUTS = ("coco_split", "coco_flat", "voc_devkit", "labelimg", "yolo_yaml", "yolo_classes")


# -- templates ------------------------------------------------------------------------


def _build(layout, root):
    if layout.startswith("coco"):
        folders.write_coco(root, splits=(("val", ("rocket", "chelsea")),))
        if layout == "coco_flat":
            src = os.path.join(root, "images", "val")
            for f in os.listdir(src):
                shutil.move(os.path.join(src, f), os.path.join(root, "images", f))
            os.rmdir(src)
    elif layout == "voc_devkit":
        folders.write_voc_devkit(root, rename=folders.VOC_RENAME)
    elif layout == "labelimg":
        folders.write_labelimg(root)
    else:
        folders.write_yolo(root, "data.yaml" if layout == "yolo_yaml" else "classes.txt")


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    base = tmp_path_factory.mktemp("templates")
    out = {}
    for layout in LAYOUTS:
        _build(layout, str(base / layout))
        out[layout] = str(base / layout)
    return out


@dataclasses.dataclass
class Dataset:
    """A copied template: where its parts are."""

    layout: str
    root: str

    @property
    def split(self):
        return "all" if self.layout == "labelimg" else "val"

    @property
    def image_dir(self):
        return {
            "coco_split": os.path.join(self.root, "images", "val"),
            "coco_flat": os.path.join(self.root, "images"),
            "voc_devkit": os.path.join(self.root, "VOC2007", "JPEGImages"),
            "labelimg": os.path.join(self.root, "images"),
        }.get(self.layout, os.path.join(self.root, "images", "val"))

    @property
    def image(self):
        """The image the cases break: rocket.jpg (85 x 128, objects in `folders.OBJECTS`)."""
        return os.path.join(self.image_dir, "rocket.jpg")

    @property
    def json(self):
        return os.path.join(self.root, "annotations", "instances_val.json")

    @property
    def xml(self):
        if self.layout == "voc_devkit":
            return os.path.join(self.root, "VOC2007", "Annotations", "rocket.xml")
        return os.path.join(self.root, "annotations", "ann_rocket.xml")

    @property
    def label(self):
        return os.path.join(self.root, "labels", "val", "rocket.txt")

    @property
    def names_file(self):
        return os.path.join(self.root, "data.yaml" if self.layout == "yolo_yaml" else "classes.txt")

    @property
    def split_file(self):
        if self.layout == "voc_devkit":
            return os.path.join(self.root, "VOC2007", "ImageSets", "Main", "val.txt")
        return os.path.join(self.root, "train.txt")

    def rename_image(self, new_name, content=None):
        """Renames the target image (and what refers to it); returns the new path."""
        new = os.path.join(os.fsencode(self.image_dir), os.fsencode(new_name))
        new = os.fsdecode(new)
        data = content if content is not None else _read(self.image)
        os.remove(self.image)
        _write(new, data)
        if self.layout.startswith("coco"):
            edit_json(self, lambda c: c["images"][0].update(file_name=os.fsdecode(new_name)))
        elif self.layout in ("voc_devkit", "labelimg"):
            edit_text(self.xml, "<filename>rocket.jpg</filename>", f"<filename>{new_name}</filename>")
        return new


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def edit_json(ds, fn):
    with open(ds.json) as f:
        coco = json.load(f)
    coco = fn(coco) or coco
    with open(ds.json, "w") as f:
        json.dump(coco, f)


def edit_text(path, old, new):
    text = _read(path).decode()
    assert old in text, (old, path)
    _write(path, text.replace(old, new, 1))


# -- image bytes --------------------------------------------------------------------

_ROCKET = None


def rocket():
    global _ROCKET
    if _ROCKET is None:
        _ROCKET = folders.photo("rocket")
    return _ROCKET


def jpeg_bytes(image=None):
    image = rocket() if image is None else image
    ok, enc = cv2.imencode(".jpg", image[..., ::-1] if image.ndim == 3 else image)
    return enc.tobytes()


def png_bytes(image=None):
    image = rocket() if image is None else image
    ok, enc = cv2.imencode(".png", image[..., ::-1] if image.ndim == 3 else image)
    return enc.tobytes()


def sof_patched(height, width):
    b = bytearray(jpeg_bytes())
    j = b.find(b"\xff\xc0")
    b[j + 5 : j + 7] = height.to_bytes(2, "big")
    b[j + 7 : j + 9] = width.to_bytes(2, "big")
    return bytes(b)


def png_bad_crc():
    b = bytearray(png_bytes())
    i = b.find(b"IDAT")
    b[i + 40] ^= 0xFF
    return bytes(b)


def middle_cut():
    d = jpeg_bytes()
    return d[: len(d) // 3] + d[2 * len(d) // 3 :]


# -- cases --------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    id: str
    layouts: tuple
    mutate: Callable  # (Dataset) -> str naming the input at fault (file / entry), or None
    outcome: str  # "reject" | "reject_iter" | "handle"
    match: str = ""  # regex the error message must match (reject*)
    check: Callable = None  # (elements, info, Dataset, caplog) -> None (handle)
    options: dict = dataclasses.field(default_factory=dict)


CASES = []


def case(id, layouts, outcome, match="", check=None, **options):
    def register(fn):
        for layout in layouts:
            CASES.append(Case(f"{layout}-{id}", (layout,), fn, outcome, match, check, options))
        return fn

    return register


ALL = LAYOUTS
COCO = ("coco_split", "coco_flat")
VOC = ("voc_devkit", "labelimg")
YOLO = ("yolo_yaml", "yolo_classes")
SIZED = COCO + VOC  # annotations that declare the image size


def _element(elements, info, file_name):
    k = info.file_names.index(file_name)
    return elements[k]


def rocket_loaded(expect_hw=(85, 128), name="rocket.jpg"):
    def check(elements, info, ds, caplog):
        e = _element(elements, info, name)
        assert e["images"].shape == (*expect_hw, 3)
        assert len(e["bounding_boxes"]["labels"]) == len(folders.OBJECTS["rocket"])

    return check


def boxes_of(name="rocket.jpg", expect=None, labels=None):
    def check(elements, info, ds, caplog):
        e = _element(elements, info, name)
        np.testing.assert_allclose(e["bounding_boxes"]["boxes"], np.asarray(expect, np.float32), atol=1e-3)
        if labels is not None:
            assert [info.class_names[i] for i in e["bounding_boxes"]["labels"]] == labels

    return check


def warned(pattern, also=None):
    def check(elements, info, ds, caplog):
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert re.search(pattern, text), text
        if also:
            also(elements, info, ds, caplog)

    return check


# Image file corruptions: every layout.
@case("text_named_jpg", ALL, "reject", r"corrupt or not a JPEG")
def _(ds):
    _write(ds.image, "this is a text file, not a JPEG\n")
    return ds.image


@case("empty_file", ALL, "reject", r"corrupt or not a JPEG")
def _(ds):
    _write(ds.image, b"")
    return ds.image


@case("truncated_jpeg", ALL, "reject", r"truncated")
def _(ds):
    d = jpeg_bytes()
    _write(ds.image, d[: len(d) // 2])
    return ds.image


@case("truncated_jpeg_header_check", ALL, "reject", r"truncated", check_images="header")
def _(ds):
    d = jpeg_bytes()
    _write(ds.image, d[: len(d) // 2])
    return ds.image


@case("truncated_jpeg_unchecked", ALL, "reject_iter", r"cannot be decoded|truncated", check_images=False)
def _(ds):
    d = jpeg_bytes()
    _write(ds.image, d[: len(d) // 2])
    return ds.image


@case("text_named_jpg_unchecked", ALL, "reject_iter", r"corrupt or not a JPEG", check_images=False)
def _(ds):
    _write(ds.image, "plain text\n")
    return ds.image


@case("bad_sof_unchecked", ALL, "reject_iter", r"bad SOF|cannot be decoded", check_images=False)
def _(ds):
    _write(ds.image, sof_patched(0, 0))
    return ds.image


@case("bad_sof", ALL, "reject", r"bad SOF header")
def _(ds):
    _write(ds.image, sof_patched(0, 128))
    return ds.image


@case("jpeg_12_bit", ALL, "reject", r"unsupported JPEG: 12-bit")
def _(ds):
    b = bytearray(jpeg_bytes())
    b[b.find(b"\xff\xc0") + 4] = 12
    _write(ds.image, bytes(b))
    return ds.image


@case("jpeg_lossless_frame", ALL, "reject", r"unsupported JPEG \(frame type 0xC3")
def _(ds):
    b = bytearray(jpeg_bytes())
    b[b.find(b"\xff\xc0") + 1] = 0xC3
    _write(ds.image, bytes(b))
    return ds.image


@case("jpeg_no_frame_header", ALL, "reject", r"no valid SOF header before the scan")
def _(ds):
    b = bytearray(jpeg_bytes())
    b[b.find(b"\xff\xc0") + 1] = 0xFE  # the frame header becomes a comment
    _write(ds.image, bytes(b))
    return ds.image


@case("corrupt_gif", ALL, "reject", r"corrupt GIF")
def _(ds):
    _write(ds.image, b"GIF89a" + b"\x10\x00\x10\x00" + b"\x00" * 40)
    return ds.image


@case("valid_gif", ALL, "handle", check=rocket_loaded())
def _(ds):
    from PIL import Image

    import io

    buf = io.BytesIO()
    Image.fromarray(rocket()).save(buf, format="GIF")
    _write(ds.image, buf.getvalue())


@case("middle_cut_jpeg", ALL, "reject", r"corrupt JPEG: Corrupt JPEG data")
def _(ds):
    _write(ds.image, middle_cut())
    return ds.image


@case("png_bad_crc", ALL, "reject", r"corrupt PNG: bad CRC")
def _(ds):
    _write(ds.image, png_bad_crc())
    return ds.image


@case("png_bad_crc_header_check", ALL, "reject", r"corrupt PNG: bad CRC", check_images="header")
def _(ds):
    _write(ds.image, png_bad_crc())
    return ds.image


@case("png_bad_crc_unchecked", ALL, "reject_iter", r"bad CRC|cannot be decoded", check_images=False)
def _(ds):
    _write(ds.image, png_bad_crc())
    return ds.image


@case("png_truncated", ALL, "reject", r"corrupt PNG: truncated")
def _(ds):
    d = png_bytes()
    _write(ds.image, d[: len(d) // 2])
    return ds.image


@case("too_large_jpeg", ALL, "reject", r"too large.*13500 x 13500")
def _(ds):
    _write(ds.image, sof_patched(13500, 13500))
    return ds.image


@case("missing_image", COCO + VOC, "reject", r"does not exist")
def _(ds):
    os.remove(ds.image)
    return ds.image


@case("broken_symlink", ALL, "reject", r"broken symbolic link")
def _(ds):
    os.remove(ds.image)
    os.symlink(os.path.join(ds.root, "nowhere.jpg"), ds.image)
    return ds.image


@case("png_content_named_jpg", ALL, "handle", check=rocket_loaded())
def _(ds):
    _write(ds.image, png_bytes())


@case("grayscale_jpeg", ALL, "handle", check=rocket_loaded())
def _(ds):
    _write(ds.image, jpeg_bytes(cv2.cvtColor(rocket(), cv2.COLOR_RGB2GRAY)))


@case("grayscale_png", ALL, "handle", check=rocket_loaded())
def _(ds):
    _write(ds.image, png_bytes(cv2.cvtColor(rocket(), cv2.COLOR_RGB2GRAY)))


@case("webp_image", ALL, "handle", check=rocket_loaded(name="rocket.webp"))
def _(ds):
    ok, enc = cv2.imencode(".webp", rocket()[..., ::-1])
    ds.rename_image("rocket.webp", enc.tobytes())


@case("size_differs_from_annotation", SIZED, "reject_iter", r"rocket\.jpg.*decoded to height, width")
def _(ds):
    _write(ds.image, jpeg_bytes(cv2.resize(rocket(), (100, 60))))
    return ds.image


@case("non_utf8_file_name", COCO + YOLO, "reject", r"not valid UTF-8; rename")
def _(ds):
    if ds.layout.startswith("coco"):
        new = os.path.join(os.fsencode(ds.image_dir), b"caf\xe9.jpg")
        data = _read(ds.image)
        os.remove(ds.image)
        with open(new, "wb") as f:
            f.write(data)
        edit_json(ds, lambda c: c["images"][0].update(file_name="caf\udce9.jpg"))
        return "caf\\xe9.jpg"
    ds.rename_image(b"caf\xe9.jpg")
    os.rename(ds.label, os.path.join(os.fsencode(os.path.dirname(ds.label)), b"caf\xe9.txt"))
    return "caf\\xe9.jpg"


# -- COCO JSON ------------------------------------------------------------------------


def coco_case(id, outcome, match="", check=None, **options):
    return case(id, COCO, outcome, match, check, **options)


def _j(fn, named=None):
    def mutate(ds):
        edit_json(ds, fn)
        return named or ds.json

    return mutate


def _set(path, value):
    def fn(c):
        node = c
        for k in path[:-1]:
            node = node[k]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return fn


_DELETE = object()

for _id, _fn, _match in [
    ("images_missing_file_name", _set(("images", 0, "file_name"), _DELETE), r"images\[0\].*'file_name' is None"),
    ("images_file_name_number", _set(("images", 0, "file_name"), 7), r"images\[0\].*'file_name' is 7"),
    ("images_missing_id", _set(("images", 0, "id"), _DELETE), r"images\[0\] field 'id' is None"),
    ("images_string_id", _set(("images", 0, "id"), "abc"), r"images\[0\] field 'id' is 'abc'"),
    ("images_bool_id", _set(("images", 0, "id"), True), r"images\[0\] field 'id' is True"),
    ("images_float_id", _set(("images", 0, "id"), 1.5), r"images\[0\] field 'id' is 1.5"),
    ("height_tall", _set(("images", 0, "height"), "tall"), r"images\[0\].*'height' is 'tall'"),
    ("width_negative", _set(("images", 0, "width"), -5), r"images\[0\].*'width' is -5"),
    ("category_missing_name", _set(("categories", 0, "name"), _DELETE), r"categories\[0\].*'name' is None"),
    ("category_missing_id", _set(("categories", 0, "id"), _DELETE), r"categories\[0\] field 'id' is None"),
    ("category_string_id", _set(("categories", 1, "id"), "17"), r"categories\[1\] field 'id' is '17'"),
    ("annotations_null", _set(("annotations",), None), r"'annotations' is null"),
    ("annotations_dict", _set(("annotations",), {}), r"'annotations' is a dict"),
    ("images_dict", lambda c: c.update(images={str(i["id"]): i for i in c["images"]}), r"'images' is a dict"),
    ("categories_missing", _set(("categories",), _DELETE), r"no 'categories' list"),
    ("images_missing", _set(("images",), _DELETE), r"no 'images' list"),
    ("images_empty", _set(("images",), []), r"no images"),
    ("image_entry_number", _set(("images", 0), 5), r"images\[0\] is 5"),
    ("annotation_entry_string", _set(("annotations", 0), "box"), r"annotations\[0\] is 'box'"),
    ("bbox_string", _set(("annotations", 0, "bbox"), "ten"), r"annotations\[0\].*'bbox' is 'ten'"),
    ("bbox_string_number", _set(("annotations", 0, "bbox"), [1, 2, "ten", 4]), r"annotations\[0\].*'bbox'"),
    ("bbox_three_numbers", _set(("annotations", 0, "bbox"), [1, 2, 3]), r"annotations\[0\].*'bbox' is \[1, 2, 3\]"),
    ("bbox_null_value", _set(("annotations", 0, "bbox"), [1, None, 3, 4]), r"annotations\[0\].*'bbox'"),
    ("bbox_missing", _set(("annotations", 0, "bbox"), _DELETE), r"annotations\[0\].*'bbox' is None"),
    ("bbox_nan", _set(("annotations", 0, "bbox"), [float("nan"), 1, 2, 3]), r"NaN or infinite"),
    ("bbox_negative_width", _set(("annotations", 0, "bbox"), [50, 10, -20, 30]), r"inverted"),
    ("bbox_outside_image", _set(("annotations", 0, "bbox"), [500, 500, 10, 10]), r"entirely outside"),
    ("annotation_string_image_id", _set(("annotations", 0, "image_id"), "100"), r"'image_id' is '100'"),
    ("annotation_unknown_image", _set(("annotations", 0, "image_id"), 99999), r"unknown image_id 99999"),
    ("annotation_unknown_category", _set(("annotations", 0, "category_id"), 999), r"unknown category_id 999"),
    ("annotation_missing_category", _set(("annotations", 0, "category_id"), _DELETE), r"'category_id' is None"),
    ("iscrowd_two", _set(("annotations", 0, "iscrowd"), 2), r"'iscrowd' is 2"),
    ("duplicate_image_id", lambda c: c["images"][1].update(id=c["images"][0]["id"]),
     r"images\[0\] and images\[1\] have the same id .*rocket\.jpg.*chelsea\.jpg"),
    ("one_file_two_ids", lambda c: c["images"].append({**c["images"][0], "id": 4242}),
     r"'rocket\.jpg' is listed twice, as image ids \d+ \(images\[0\]\) and 4242"),
    ("duplicate_category_id", lambda c: c["categories"][1].update(id=c["categories"][0]["id"]),
     r"categories\[0\] and categories\[1\] have the same id"),
]:
    coco_case(_id, "reject", _match)(_j(_fn))


@coco_case("top_level_number", "reject", r"top level is a int")
def _(ds):
    _write(ds.json, "42")
    return ds.json


@coco_case("top_level_list", "reject", r"top level is a list")
def _(ds):
    _write(ds.json, "[]")
    return ds.json


@coco_case("invalid_json", "reject", r"not valid JSON")
def _(ds):
    _write(ds.json, '{"images": [')
    return ds.json


@coco_case("non_utf8_json", "reject", r"not valid JSON")
def _(ds):
    _write(ds.json, _read(ds.json).replace(b"rocket.jpg", b"rock\xe9t.jpg"))
    return ds.json


def _with_seg(seg):
    return _j(lambda c: [a.update(segmentation=[[1, 1, 20, 1, 20, 20]]) for a in c["annotations"]]
              and c["annotations"][0].update(segmentation=seg))


for _id, _seg, _match in [
    ("polygon_odd_length", [[1, 1, 20, 1, 20]], r"polygon 0 has 5 coordinates"),
    ("polygon_two_points", [[1, 1, 20, 1]], r"polygon 0 has 4 coordinates"),
    ("polygon_string", [[1, 1, "a", 1, 20, 20]], r"not a finite number"),
    ("rle_bad_sum", {"counts": [10, 5], "size": [85, 128]}, r"RLE counts sum to 15.*10880 pixels"),
    ("rle_negative", {"counts": [-1, 10881], "size": [85, 128]}, r"not non-negative"),
    ("rle_bad_size", {"counts": [10880], "size": [85]}, r"size \[85\] is not \[h, w\]"),
    ("segmentation_missing", None, r"no polygon or RLE segmentation"),
]:
    coco_case(_id, "reject", _match, with_masks=True)(_with_seg(_seg))


def _rle_check(elements, info, ds, caplog):
    e = _element(elements, info, "rocket.jpg")
    mask = e["masks"][0]
    assert mask.shape == (85, 128) and mask[:, 10:15].all() and mask.sum() == 85 * 5


@coco_case("rle_valid", "handle", with_masks=True, check=_rle_check)
def _(ds):
    _with_seg({"counts": [85 * 10, 85 * 5, 85 * 113], "size": [85, 128]})(ds)


@coco_case("bbox_partly_outside", "handle",
           check=boxes_of(expect=[[120, 70, 128, 85], [100, 60, 110, 80], [0, 70, 12, 85]]))
def _(ds):
    edit_json(ds, lambda c: c["annotations"][0].update(bbox=[120, 70, 20, 30]))


@coco_case("bbox_zero_area", "handle", check=boxes_of(expect=[[100, 60, 110, 80], [0, 70, 12, 85]]))
def _(ds):
    edit_json(ds, lambda c: c["annotations"][0].update(bbox=[40, 40, 0, 10]))


@coco_case("crowd_dropped", "handle", check=boxes_of(expect=[[100, 60, 110, 80], [0, 70, 12, 85]]))
def _(ds):
    edit_json(ds, lambda c: c["annotations"][0].update(iscrowd=1))


@coco_case("image_without_annotations", "handle", check=boxes_of(expect=np.zeros((0, 4))))
def _(ds):
    edit_json(ds, lambda c: c.update(annotations=[a for a in c["annotations"] if a["image_id"] != c["images"][0]["id"]]))


@coco_case("height_float_integral", "handle", check=rocket_loaded())
def _(ds):
    edit_json(ds, lambda c: c["images"][0].update(height=85.0))


# -- VOC XML (devkit and LabelImg) -------------------------------------------------------


def voc_case(id, outcome, match="", check=None, **options):
    return case(id, VOC, outcome, match, check, **options)


def _x(old, new):
    def mutate(ds):
        first = "aeroplane" if ds.layout == "voc_devkit" else "rocket"
        edit_text(ds.xml, old.format(first=first), new)
        return ds.xml

    return mutate


for _id, _old, _new, _match in [
    ("difficult_yes", "<difficult>0</difficult>", "<difficult>yes</difficult>", r"object 0 \((rocket|aeroplane)\) <difficult> is 'yes'"),
    ("difficult_two", "<difficult>0</difficult>", "<difficult>2</difficult>", r"<difficult> is '2'"),
    ("difficult_nan", "<difficult>0</difficult>", "<difficult>nan</difficult>", r"<difficult> is 'nan'"),
    ("size_not_numeric", "<height>85</height>", "<height>tall</height>", r"<size> is not numeric"),
    ("xmin_not_numeric", "<xmin>46</xmin>", "<xmin>abc</xmin>", r"object 0 <xmin> is 'abc'"),
    ("xmin_missing", "<xmin>46</xmin>", "", r"object 0: missing <xmin>"),
    ("name_missing", "<name>{first}</name>", "", r"object 0: missing <name>"),
    ("bndbox_missing", "<bndbox>", "<bnd>", r"has no <bndbox>|not valid XML"),
    ("malformed_xml", "</annotation>", "", r"not valid XML"),
    ("xmax_nan", "<xmax>75</xmax>", "<xmax>nan</xmax>", r"NaN or infinite"),
    ("inverted_box", "<xmax>75</xmax>", "<xmax>20</xmax>", r"inverted"),
    ("box_outside", "<xmin>46</xmin><ymin>5</ymin><xmax>75</xmax><ymax>80</ymax>",
     "<xmin>300</xmin><ymin>300</ymin><xmax>320</xmax><ymax>320</ymax>", r"entirely outside"),
]:
    voc_case(_id, "reject", _match)(_x(_old, _new))


@voc_case("xml_not_utf8", "reject", r"not valid XML")
def _(ds):
    _write(ds.xml, _read(ds.xml).replace(b"<folder>x</folder>", b"<folder>\xe9\xff</folder>"))
    return ds.xml


@voc_case("unknown_class_with_class_names", "reject", r"unknown class name '(rocket|aeroplane)'",
          class_names=("person", "cup", "cat"))
def _(ds):
    return os.path.dirname(ds.xml)


@voc_case("box_partly_outside", "handle",
          check=boxes_of(expect=[[100, 60, 128, 85], [100, 60, 110, 80], [0, 70, 12, 85]]))
def _(ds):
    edit_text(ds.xml, "<xmin>46</xmin><ymin>5</ymin><xmax>75</xmax><ymax>80</ymax>",
              "<xmin>101</xmin><ymin>61</ymin><xmax>200</xmax><ymax>200</ymax>")


@voc_case("zero_area_box", "handle", check=boxes_of(expect=[[100, 60, 110, 80], [0, 70, 12, 85]]))
def _(ds):
    edit_text(ds.xml, "<xmin>46</xmin><ymin>5</ymin><xmax>75</xmax>", "<xmin>46</xmin><ymin>5</ymin><xmax>45</xmax>")


def _difficult_check(elements, info, ds, caplog):
    e = _element(elements, info, "rocket.jpg")
    assert e["bounding_boxes"]["difficult"][0]


@voc_case("difficult_flag", "handle", check=_difficult_check)
def _(ds):
    edit_text(ds.xml, "<difficult>0</difficult>", "<difficult>1</difficult>")


@voc_case("difficult_float", "handle", check=_difficult_check)
def _(ds):
    edit_text(ds.xml, "<difficult>0</difficult>", "<difficult> 1.0 </difficult>")


def _mixed_classes(elements, info, ds, caplog):
    assert "rocket_launcher" in info.class_names and info.class_names == tuple(sorted(info.class_names))
    e = _element(elements, info, "rocket.jpg")
    assert info.class_names[e["bounding_boxes"]["labels"][0]] == "rocket_launcher"


@case("non_voc_class_among_voc", ("voc_devkit",), "handle",
      check=warned(r"\['rocket_launcher'\] \(first in .*rocket\.xml\) are not VOC classes", _mixed_classes))
def _(ds):
    edit_text(ds.xml, "<name>aeroplane</name>", "<name>rocket_launcher</name>")


def _rename_labelimg_class(ds):
    for name in ("chelsea", "astronaut", "coffee", "rocket"):
        path = os.path.join(ds.root, "annotations", f"ann_{name}.xml")
        text = _read(path).decode().replace("<name>rocket</name>", "<name>aeroplane</name>").replace(
            "<name>cup</name>", "<name>bottle</name>")
        _write(path, text)
    edit_text(ds.xml, "<name>aeroplane</name>", "<name>rocket_launcher</name>")


case("non_voc_class_among_voc", ("labelimg",), "handle",
     check=warned(r"\['rocket_launcher'\] \(first in .*ann_rocket\.xml\) are not VOC classes", _mixed_classes))(
    _rename_labelimg_class)


def _labelimg_split(ds, text):
    _write(ds.split_file, text)
    return ds.split_file


@case("split_file_not_utf8", ("voc_devkit",), "reject", r"not valid UTF-8")
def _(ds):
    _write(ds.split_file, b"rock\xe9t\n")
    return ds.split_file


@case("split_file_empty", ("voc_devkit",), "reject", r"is empty")
def _(ds):
    _write(ds.split_file, "\n\n")
    return ds.split_file


@case("split_file_id_twice", ("voc_devkit",), "reject", r"'rocket\.jpg' is listed twice")
def _(ds):
    _write(ds.split_file, "rocket\nrocket\n")
    return ds.xml


@case("split_file_unknown_id", ("voc_devkit",), "reject", r"nothere\.xml \(listed in .*val\.txt\) does not exist")
def _(ds):
    _write(ds.split_file, "rocket\nnothere\n")
    return ds.split_file


@case("split_file_not_utf8", ("labelimg",), "reject", r"not valid UTF-8", split="train")
def _(ds):
    return _labelimg_split(ds, b"ann_rock\xe9t\n")


@case("split_file_empty", ("labelimg",), "reject", r"is empty", split="train")
def _(ds):
    return _labelimg_split(ds, "\n")


@case("split_file_id_twice", ("labelimg",), "reject", r"'rocket\.jpg' is listed twice", split="train")
def _(ds):
    _labelimg_split(ds, "ann_rocket\nann_rocket\n")
    return ds.xml


@case("split_file_unknown_id", ("labelimg",), "reject", r"nothere\.xml \(listed in", split="train")
def _(ds):
    return _labelimg_split(ds, "nothere\n")


@case("two_xmls_one_image", ("labelimg",), "reject", r"'rocket\.jpg' is listed twice")
def _(ds):
    shutil.copy(ds.xml, os.path.join(ds.root, "annotations", "ann_rocket_copy.xml"))
    return ds.xml


@case("missing_filename", ("labelimg",), "reject", r"missing <filename>")
def _(ds):
    edit_text(ds.xml, "<filename>rocket.jpg</filename>", "")
    return ds.xml


@case("split_file_with_comments_columns", ("voc_devkit",), "handle", check=rocket_loaded())
def _(ds):
    _write(ds.split_file, "rocket  1\n\n")


# -- YOLO -----------------------------------------------------------------------------


def yolo_case(id, outcome, match="", check=None, **options):
    return case(id, YOLO, outcome, match, check, **options)


def _label(text):
    def mutate(ds):
        _write(ds.label, text)
        return ds.label

    return mutate


for _id, _text, _match in [
    ("four_values", "0 0.5 0.5 0.2\n", r"line 1: expected `class cx cy w h`"),
    ("six_values", "0 0.5 0.5 0.2 0.2 0.9\n", r"line 1: expected"),
    ("not_numeric", "0 0.5 abc 0.2 0.2\n", r"line 1: expected"),
    ("class_fraction", "1.5 0.5 0.5 0.2 0.2\n", r"line 1: expected"),
    ("class_inf", "inf 0.5 0.5 0.2 0.2\n", r"line 1: expected"),
    ("class_nan", "nan 0.5 0.5 0.2 0.2\n", r"line 1: expected"),
    ("class_out_of_range", "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n", r"line 2: unknown class id 7"),
    ("class_negative", "-1 0.5 0.5 0.2 0.2\n", r"line 1: unknown class id -1"),
    ("coordinate_nan", "0 nan 0.5 0.2 0.2\n", r"NaN or infinite"),
    ("coordinate_inf", "0 0.5 inf 0.2 0.2\n", r"NaN or infinite"),
    ("negative_size", "0 0.5 0.5 -0.2 0.2\n", r"inverted"),
    ("box_outside", "0 3.0 3.0 0.2 0.2\n", r"entirely outside"),
]:
    yolo_case(_id, "reject", _match)(_label(_text))


@yolo_case("label_not_utf8", "reject", r"Label file .* is not valid UTF-8")
def _(ds):
    _write(ds.label, b"0 0.5 0.5 0.2 0.2 \xff\xfe\n")
    return ds.label


@yolo_case("jpg_and_png_share_label", "reject", r"rocket\.jpg and .*rocket\.png would both take the label file")
def _(ds):
    _write(os.path.join(ds.image_dir, "rocket.png"), png_bytes())
    return ds.image


@yolo_case("unsupported_format_with_label", "reject", r"rocket\.tiff has a label file but is not a supported image")
def _(ds):
    ok, enc = cv2.imencode(".tiff", rocket())
    ds.rename_image("rocket.tiff", enc.tobytes())
    return os.path.join(ds.image_dir, "rocket.tiff")


@yolo_case("orphan_label_file", "handle", check=warned(r"1 label file\(s\) have no image.*ghost\.txt",
                                                         rocket_loaded()))
def _(ds):
    _write(os.path.join(os.path.dirname(ds.label), "ghost.txt"), "0 0.5 0.5 0.2 0.2\n")


@yolo_case("non_image_file", "handle", check=warned(r"not images.*README\.md", rocket_loaded()))
def _(ds):
    _write(os.path.join(ds.image_dir, "README.md"), "notes\n")


# The case's split holds this one image: without its labels the split has no boxes,
# which load rejects naming the split (an image without labels among others is read
# as no objects: tests/data/test_readers.py).
@yolo_case("missing_label_file", "reject", r"split 'val' has 1 images but no boxes")
def _(ds):
    os.remove(ds.label)


@yolo_case("empty_label_file", "reject", r"split 'val' has 1 images but no boxes")
def _(ds):
    _write(ds.label, "")


@yolo_case("blank_lines_and_bom", "handle", check=boxes_of(expect=[[32, 17, 96, 68]], labels=["cup"]))
def _(ds):
    _write(ds.label, "\ufeff\n2 0.5 0.5 0.5 0.6\n\n")


@yolo_case("box_partly_outside", "handle", check=boxes_of(expect=[[96, 42.5, 128, 85]], labels=["rocket"]))
def _(ds):
    _write(ds.label, "0 1.0 1.0 0.5 1.0\n")


def _names(text):
    def mutate(ds):
        _write(ds.names_file, text)
        return ds.names_file

    return mutate


for _id, _text, _match in [
    ("yaml_malformed", "names: [rocket, person\n  cup: : :\n", r"not valid YAML"),
    ("yaml_list_shaped", "- rocket\n- person\n", r"top level is a list, expected a mapping"),
    ("yaml_scalar", "just a string\n", r"top level is a str"),
    ("yaml_names_missing", "path: .\ntrain: images/train\n", r"no `names:` list"),
    ("yaml_names_gap", "names:\n  0: rocket\n  2: person\n", r"indices \[0, 2\] are not 0..1 \(missing \[1\]\)"),
    ("yaml_names_from_one", "names:\n  1: rocket\n  2: person\n  3: cup\n  4: cat\n", r"missing \[0\]"),
    ("yaml_names_string_keys", "names:\n  a: rocket\n  b: person\n", r"keys \['a', 'b'\] are not all class indices"),
    ("yaml_names_scalar", "names: rocket\n", r"`names:` is 'rocket', expected a list"),
    ("yaml_names_duplicate", "names: [rocket, person, cup, rocket]\n", r"lists a class name twice"),
    ("yaml_names_null_entry", "names: [rocket, null, cup, cat]\n", r"class 1 name None is not a name"),
    ("yaml_not_utf8", b"names: [rock\xe9t, person, cup, cat]\n", r"not valid UTF-8"),
]:
    case(_id, ("yolo_yaml",), "reject", _match)(_names(_text))


for _id, _text, _match in [
    ("classes_not_utf8", b"rocket\npers\xf6n\ncup\ncat\n", r"not valid UTF-8"),
    ("classes_empty", "\n\n", r"no `names:` list"),
    ("classes_duplicate", "rocket\nperson\ncup\nrocket\n", r"lists a class name twice"),
]:
    case(_id, ("yolo_classes",), "reject", _match)(_names(_text))


@case("yaml_names_inline_mapping", ("yolo_yaml",), "handle",
      check=boxes_of(expect=[[45, 4, 75, 80], [100, 60, 110, 80], [0, 70, 12, 85]], labels=["rocket", "person", "cup"]))
def _(ds):
    _write(ds.names_file, "names: {0: rocket, 1: person, 2: cup, 3: cat}\n")


@case("classes_crlf", ("yolo_classes",), "handle",
      check=boxes_of(expect=[[45, 4, 75, 80], [100, 60, 110, 80], [0, 70, 12, 85]], labels=["rocket", "person", "cup"]))
def _(ds):
    _write(ds.names_file, "rocket\r\nperson\r\ncup\r\ncat\r\n")


# -- runner -----------------------------------------------------------------------------


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_fuzz_reader(c, templates, tmp_path, caplog):
    layout = c.layouts[0]
    root = str(tmp_path / layout)
    shutil.copytree(templates[layout], root, symlinks=True)
    ds = Dataset(layout, root)
    named = c.mutate(ds)
    options = dict(c.options)
    split = options.pop("split", ds.split)
    caplog.set_level(logging.WARNING, logger="keras_det.data")
    stage = "load"
    try:
        dataset, info = kd.load(ds.root, split, with_info=True, **options)
        stage = "iterate"
        elements = list(dataset.as_numpy_iterator())
    except kd.DataError as error:
        assert c.outcome == "reject" and stage == "load", f"{c.id}: unexpected DataError at {stage}: {error}"
        message = str(error)
    except tf.errors.OpError as error:
        assert c.outcome == "reject_iter" and stage == "iterate", f"{c.id}: crash at {stage}: {error}"
        message = error.message
    except Exception as error:  # noqa: BLE001 - anything else is a crash
        pytest.fail(f"{c.id}: crash at {stage}: {type(error).__name__}: {error}")
    else:
        assert c.outcome == "handle", f"{c.id}: silent pass, expected {c.outcome} /{c.match}/"
        if c.check is not None:
            c.check(elements, info, ds, caplog)
        return
    assert re.search(c.match, message, re.S), f"{c.id}: message {message!r} does not match /{c.match}/"
    if named:
        shown = named if isinstance(named, str) else str(named)
        assert shown in message, f"{c.id}: message does not name {shown}: {message}"


def test_case_count():
    """The suite's size per reader family (reported in the issue note)."""
    per = {}
    for c in CASES:
        per[c.layouts[0]] = per.get(c.layouts[0], 0) + 1
    assert len(CASES) >= 200, per
    assert all(per[layout] >= 20 for layout in LAYOUTS), per
