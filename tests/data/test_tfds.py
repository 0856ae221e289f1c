"""The TFDS adapter under `tfds.testing.mock_data`.

mock_data generates random examples from the builders' feature specs, without files.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_det import data as kd


def _mock():
    return tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE)


@pytest.mark.parametrize("fmt", ("xyxy", "rel_yxyx"))
def test_voc(fmt):
    with _mock():
        ds, info = kd.load("voc/2007", "train", fmt, with_info=True)
        items = list(ds)
    assert info.class_names == kd.VOC_CLASSES
    assert len(items) == 4
    for e in items:
        h, w = e["images"].shape[:2]
        assert e["images"].dtype == tf.float32 and e["images"].shape[-1] == 3
        boxes = e["bounding_boxes"]["boxes"].numpy()
        labels = e["bounding_boxes"]["labels"].numpy()
        assert labels.dtype == np.int32 and boxes.shape == (len(labels), 4)
        assert e["bounding_boxes"]["difficult"].shape == labels.shape
        assert np.all((labels >= 0) & (labels < 20))
        limit = [1, 1, 1, 1] if fmt.startswith("rel") else [w, h, w, h]
        assert np.all(boxes >= 0) and np.all(boxes <= np.array(limit) + 1e-4)
        assert e["image_id"].dtype == tf.int64


def test_coco_crowd_and_image_id():
    with _mock():
        ds, info = kd.load("coco/2017", "validation", "xyxy", with_info=True)
        plain = list(ds)
        with_crowd = list(kd.load("coco/2017", "validation", include_crowd=True))
    assert info.num_classes == 80
    for a, b in zip(plain, with_crowd):
        assert "is_crowd" not in a["bounding_boxes"]
        crowd = b["bounding_boxes"]["is_crowd"].numpy()
        assert len(a["bounding_boxes"]["labels"]) == int((~crowd).sum())
        assert a["image_id"].dtype == tf.int64


def test_unknown_name():
    with pytest.raises(
        ValueError, match="neither 'shapes', an existing folder, nor a TFDS dataset"
    ):
        kd.load("no_such_dataset_xyz", "train")
