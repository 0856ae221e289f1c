import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_det import data as kd_data
from keras_det.data.augment import ResizePad
from keras_det.data.proposal_io import join_proposals, proposal_table


def _shapes(n=3, size=64):
    return kd_data.load("shapes", "train", "xyxy", num_images=n, image_size=size)


def _proposals(n=3, size=64):
    rng = np.random.default_rng(0)
    out = {}
    for i in range(n):
        y, x = rng.uniform(0, size / 2, (2, 5 + i))
        boxes = np.stack([y, x, y + size / 4, x + size / 3], -1).astype(np.float32)
        out[str(i)] = {"boxes": boxes, "image_shape": (size, size)}
    return out


def test_table_truncates_and_pads():
    ids, boxes, shapes = proposal_table(_proposals(), 6)
    assert ids == ["0", "1", "2"] and boxes.shape == (3, 6, 4)
    assert np.all(boxes[0, 5:] == 0) and np.all(boxes[2] != 0)  # 5 rows + 1 pad; 7 rows cut to 6


@pytest.mark.parametrize("fmt", ["xyxy", "yxyx", "rel_xyxy", "center_xywh"])
def test_join_in_dataset_format(fmt):
    props = _proposals()
    ds = kd_data.load("shapes", "train", fmt, num_images=3, image_size=64)
    batch = next(iter(kd_data.batch(join_proposals(ds, props, fmt, num_proposals=8), 3)))
    got = batch["proposals"].numpy()
    assert got.shape == (3, 8, 4)
    from keras_det.ops.boxes import convert_format

    for i in range(3):
        expected = props[str(int(batch["image_id"][i]))]["boxes"][:8]
        back = convert_format(got[i, : len(expected)], fmt, "yxyx", image_shape=(64, 64)).numpy()
        np.testing.assert_allclose(back, expected, atol=1e-4)
        assert np.all(got[i, len(expected):] == 0)


def test_join_after_resize_pad_scales_boxes():
    props = {"0": {"boxes": np.array([[10, 20, 30, 40]], np.float32), "image_shape": (64, 64)}}
    ds = _shapes(1).map(ResizePad((128, 256), "xyxy"))
    el = next(iter(join_proposals(ds, props, "yxyx", num_proposals=2)))
    np.testing.assert_allclose(el["proposals"].numpy(), [[20, 40, 60, 80], [0, 0, 0, 0]])


def test_missing_ids():
    props = {"0": _proposals()["0"]}
    ds = join_proposals(_shapes(2), props, "xyxy", num_proposals=4, missing="empty")
    els = list(ds)
    assert np.any(els[0]["proposals"].numpy() != 0) and np.all(els[1]["proposals"].numpy() == 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="no proposals for image_id 1"):
        list(join_proposals(_shapes(2), props, "xyxy", num_proposals=4))
    with pytest.raises(ValueError, match="missing"):
        join_proposals(_shapes(1), props, "xyxy", missing="skip")


def test_fast_rcnn_trains_on_joined_proposals():
    from keras_det.models.fast_rcnn import FastRCNN

    ds = join_proposals(_shapes(2), _proposals(2), "xyxy", num_proposals=16)
    model = FastRCNN(5, backbone="tiny", fc_dims=(32, 32), roi_batch_size_per_image=16, max_detections=5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(kd_data.batch(ds, 2), epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
