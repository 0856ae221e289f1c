"""COCO instance masks (with_masks=True): polygons and RLE, against pycocotools."""

import json
import os

import numpy as np
import pytest

from keras_det import data as kd
from keras_det.data import core
from tests.data import folders

mask_api = pytest.importorskip("pycocotools.mask")


def _add_segmentations(root, split, make):
    path = os.path.join(root, "annotations", f"instances_{split}.json")
    with open(path) as f:
        coco = json.load(f)
    sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
    for ann in coco["annotations"]:
        ann["segmentation"] = make(ann, *sizes[ann["image_id"]])
    with open(path, "w") as f:
        json.dump(coco, f)
    return coco


def _box_polygon(ann, h, w):
    x, y, bw, bh = ann["bbox"]
    return [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]


def test_rectangle_polygons_fill_their_boxes(tmp_path):
    root = folders.write_coco(str(tmp_path), splits=(("val", folders.VAL),))
    _add_segmentations(root, "val", _box_polygon)
    e = next(iter(kd.load(root, "val", with_masks=True)))
    masks = e["masks"].numpy()
    boxes = e["bounding_boxes"]["boxes"].numpy()
    assert masks.dtype == np.uint8 and masks.shape == (3, 85, 128)
    for box, mask in zip(boxes, masks):
        ys, xs = np.nonzero(mask)
        np.testing.assert_array_equal([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box)
        assert mask.sum() == (box[2] - box[0]) * (box[3] - box[1])


def test_polygons_and_rle_match_pycocotools(tmp_path):
    root = folders.write_coco(str(tmp_path), splits=(("val", folders.VAL),))
    rng = np.random.default_rng(0)
    truth = {}

    def make(ann, h, w):
        x, y, bw, bh = ann["bbox"]
        kind = ann["id"] % 3
        if kind == 0:  # a diamond polygon inside the box
            cx, cy = x + bw / 2, y + bh / 2
            return [[cx, y, x + bw, cy, cx, y + bh, x, cy]]
        mask = np.zeros((h, w), np.uint8, order="F")
        mask[int(y) : int(y + bh), int(x) : int(x + bw)] = rng.integers(0, 2, (int(bh), int(bw)))
        truth[ann["id"]] = mask
        rle = mask_api.encode(np.asfortranarray(mask))
        if kind == 1:  # compressed string counts
            return {"counts": rle["counts"].decode(), "size": rle["size"]}
        runs, flat, value, start = [], mask.ravel(order="F"), 0, 0
        for i in range(flat.size + 1):  # uncompressed counts list
            if i == flat.size or flat[i] != value:
                runs.append(i - start)
                start, value = i, 1 - value
        return {"counts": runs, "size": [h, w]}

    coco = _add_segmentations(root, "val", make)
    e = next(iter(kd.load(root, "val", with_masks=True)))
    masks = e["masks"].numpy()
    for ann, mask in zip(coco["annotations"], masks):
        if ann["id"] in truth:
            np.testing.assert_array_equal(mask, truth[ann["id"]])
        else:
            ref = mask_api.decode(mask_api.frPyObjects(ann["segmentation"], 85, 128))[..., 0]
            inter = np.logical_and(ref, mask).sum()
            union = np.logical_or(ref, mask).sum()
            assert inter / union > 0.9


def test_rle_string_decoder_matches_pycocotools():
    rng = np.random.default_rng(1)
    mask = np.asfortranarray((rng.random((37, 23)) > 0.6).astype(np.uint8))
    rle = mask_api.encode(mask)
    counts = core.rle_string_to_counts(rle["counts"].decode())
    np.testing.assert_array_equal(core.rle_to_mask(counts, 37, 23), mask)


def test_missing_segmentation_is_an_error(tmp_path):
    root = folders.write_coco(str(tmp_path), splits=(("val", folders.VAL),))
    with pytest.raises(ValueError, match="rocket.jpg.*annotation id 1 has no polygon or RLE"):
        kd.load(root, "val", with_masks=True)
