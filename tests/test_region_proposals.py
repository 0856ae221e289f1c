import numpy as np
import pytest
import skimage.data

from keras_det.region_proposals import METHODS, deduplicate, propose, recall, sliding_windows


@pytest.fixture(scope="module")
def chelsea():
    return skimage.data.chelsea()  # 300 x 451 x 3 uint8, a real photo


def _check_boxes(boxes, image, cap, min_size=0):
    h, w = image.shape[:2]
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert 0 < len(boxes) <= cap
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 1] >= 0)
    assert np.all(boxes[:, 2] <= h) and np.all(boxes[:, 3] <= w)
    assert np.all(boxes[:, 2] - boxes[:, 0] >= min_size) and np.all(boxes[:, 3] - boxes[:, 1] >= min_size)
    assert len(np.unique(boxes, axis=0)) == len(boxes)


def test_selective_search_on_a_photo(chelsea):
    boxes = propose(chelsea, "selective_search_fast", max_proposals=100, min_size=10, max_side=200)
    _check_boxes(boxes, chelsea, 100, min_size=10)
    assert len(boxes) == 100  # a photo gives more than 100 boxes: the cap applies
    # Boxes are in the full-resolution frame although the search ran at 200 px.
    assert boxes[:, 2].max() > 250 and boxes[:, 3].max() > 400
    # The cat (hand-placed box) is found.
    cat = np.array([[0.0, 25.0, 300.0, 395.0]], np.float32)
    assert recall(boxes, cat)[0.5] == 1.0
    # Float input in 0..255 gives the same boxes as uint8.
    np.testing.assert_array_equal(boxes, propose(chelsea.astype(np.float32), "selective_search_fast", 100, 10, max_side=200))


def test_near_duplicate_removal_and_cap(chelsea):
    from keras_det.ops.boxes import iou

    raw = propose(chelsea, "selective_search_fast", max_proposals=2000, max_side=160)
    dedup = propose(chelsea, "selective_search_fast", max_proposals=2000, max_side=160, dedup_iou=0.7)
    assert len(dedup) < len(raw)
    overlaps = np.asarray(iou(dedup, dedup)) - np.eye(len(dedup))
    assert overlaps.max() <= 0.7 + 1e-6
    # The first (best-ranked) box always survives.
    np.testing.assert_array_equal(dedup[0], raw[0])


def test_deduplicate_exact_keeps_first_order():
    boxes = np.array([[0, 0, 5, 5], [1, 1, 6, 6], [0, 0, 5, 5], [2, 2, 9, 9]], np.float32)
    np.testing.assert_array_equal(deduplicate(boxes), boxes[[0, 1, 3]])


def test_sliding_window_baseline(chelsea):
    boxes = propose(chelsea, "sliding_window", max_proposals=500)
    _check_boxes(boxes, chelsea, 500, min_size=8)
    assert len(boxes) > 200
    windows = sliding_windows((100, 200), max_proposals=90, scales=(0.5, 1.0), aspect_ratios=(1.0,))
    assert len(windows) <= 90
    np.testing.assert_allclose(windows[0], [0, 0, 100, 100])  # coarse scale first


def test_all_methods_are_listed():
    assert METHODS == ("selective_search_fast", "selective_search_quality", "edge_boxes", "sliding_window")


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((32, 32), np.uint8), r"\[H, W, 3\]"),
        (np.zeros((32, 32, 4), np.uint8), r"\[H, W, 3\]"),
        (np.zeros((0, 32, 3), np.uint8), "empty"),
        (None, "None"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_images(image, match):
    with pytest.raises(ValueError, match=match):
        propose(image)


def test_bad_arguments(tmp_path):
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="Unknown proposal method"):
        propose(image, method="magic")
    with pytest.raises(ValueError, match="max_proposals"):
        propose(image, max_proposals=0)
    with pytest.raises(ValueError, match="edge_model"):
        propose(image, method="edge_boxes")
    missing = tmp_path / "model.yml.gz"
    with pytest.raises(FileNotFoundError, match="model.yml.gz"):
        propose(image, method="edge_boxes", edge_model=str(missing))


def test_recall():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    props = np.array([[0, 0, 10, 12]], np.float32)  # IoU 0.833 with the first box
    r = recall(props, gt)
    assert r[0.5] == 0.5 and r[0.7] == 0.5 and r["num_gt"] == 2
    assert recall([props, np.zeros((0, 4))], [gt, gt[:1]])[0.5] == pytest.approx(1 / 3)
