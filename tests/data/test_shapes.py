import time

import numpy as np
import pytest
import tensorflow as tf

from keras_det import data as kd
from keras_det.data import shapes
from keras_det.ops import boxes as B


def _arrays(ds):
    return [
        (
            e["images"].numpy(),
            e["bounding_boxes"]["boxes"].numpy(),
            e["bounding_boxes"]["labels"].numpy(),
            e["masks"].numpy(),
            int(e["image_id"]),
        )
        for e in ds
    ]


def test_contract_and_masks():
    ds, info = kd.load(
        "shapes", "train", "xyxy", with_info=True, num_images=24, image_size=96, seed=3
    )
    assert (
        info.class_names == kd.SHAPES_CLASS_NAMES
        and info.num_classes == 5
        and info.num_examples == 24
    )
    spec = ds.element_spec
    assert spec["images"].shape == (96, 96, 3) and spec["images"].dtype == tf.float32
    assert spec["bounding_boxes"]["boxes"].shape.as_list() == [None, 4]
    assert spec["bounding_boxes"]["labels"].dtype == tf.int32
    assert spec["masks"].dtype == tf.uint8 and spec["image_id"].dtype == tf.int64
    items = _arrays(ds)
    assert [i[4] for i in items] == list(range(24))
    all_labels = np.concatenate([i[2] for i in items])
    assert set(all_labels) <= set(range(5)) and len(set(all_labels)) >= 4
    for image, boxes, labels, masks, _ in items:
        assert 0 <= image.min() and image.max() <= 255
        assert 1 <= len(labels) <= 8 and masks.shape == (len(labels), 96, 96)
        # Visible-extent boxes: each box is the tight box of its mask; masks never overlap.
        for box, mask in zip(boxes, masks):
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert masks.sum(0).max() <= 1
        # Varied sizes (from ~8 px) with the box inside the image.
        assert np.all(boxes >= 0) and np.all(boxes <= 96)
    widths = np.concatenate([b[:, 2] - b[:, 0] for _, b, _, _, _ in items])
    assert widths.min() < 15 and widths.max() > 35


def test_deterministic_and_splits_differ():
    a = _arrays(kd.load("shapes", "train", num_images=6, image_size=64, seed=11))
    shapes.generate.cache_clear()
    b = _arrays(kd.load("shapes", "train", num_images=6, image_size=64, seed=11))
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    # Prefix property: the first images do not depend on num_images.
    c = _arrays(kd.load("shapes", "train", num_images=3, image_size=64, seed=11))
    np.testing.assert_array_equal(c[2][0], a[2][0])
    val = _arrays(kd.load("shapes", "validation", num_images=6, image_size=64, seed=11))
    other_seed = _arrays(kd.load("shapes", "train", num_images=6, image_size=64, seed=12))
    train_images = {x[0].tobytes() for x in a}
    assert not train_images & {x[0].tobytes() for x in val}
    assert not train_images & {x[0].tobytes() for x in other_seed}


@pytest.mark.parametrize("fmt", ("yxyx", "rel_xyxy", "center_xywh"))
def test_formats(fmt):
    ref = next(iter(kd.load("shapes", "test", "xyxy", num_images=2, image_size=64)))
    got = next(iter(kd.load("shapes", "test", fmt, num_images=2, image_size=64)))
    np.testing.assert_allclose(
        got["bounding_boxes"]["boxes"],
        B.convert_format(ref["bounding_boxes"]["boxes"], "xyxy", fmt, image_shape=(64, 64)),
        rtol=1e-6,
    )


def test_without_masks_and_options():
    ds = kd.load("shapes", "train", num_images=4, image_size=64, with_masks=False, max_objects=2)
    for e in ds:
        assert "masks" not in e and 1 <= len(e["bounding_boxes"]["labels"]) <= 2
    with pytest.raises(ValueError, match="min_objects"):
        kd.load("shapes", "train", num_images=2, min_objects=3, max_objects=2)


def test_generation_is_fast():
    start = time.perf_counter()
    shapes.generate(300, 128, seed=99, split="speed")
    assert time.perf_counter() - start < 6.0  # ~2 ms per 128 px image


# -- keypoints ---------------------------------------------------------------


def _keypoint_elements(**options):
    options = {"num_images": 16, "image_size": 96, "seed": 5, **options}
    return list(kd.load("shapes", "train", "xyxy", with_keypoints=True, **options).as_numpy_iterator())


def test_keypoints_contract_slots_and_visibility():
    ds, info = kd.load("shapes", "train", "xyxy", with_info=True, num_images=16, image_size=96, seed=5,
                       with_keypoints=True)
    assert ds.element_spec["keypoints"].shape.as_list() == [None, shapes.NUM_KEYPOINTS, 3]
    assert ds.element_spec["keypoints"].dtype == tf.float32
    meta = shapes.keypoint_metadata()
    assert info.keypoints == meta and len(meta["sigmas"]) == len(meta["names"]) == shapes.NUM_KEYPOINTS
    counts = {"occluded": 0, "visible": 0}
    for e in ds.as_numpy_iterator():
        kps, labels, masks = e["keypoints"], e["bounding_boxes"]["labels"], e["masks"]
        assert kps.shape == (len(labels), shapes.NUM_KEYPOINTS, 3)
        idmap = (masks * np.arange(1, len(labels) + 1)[:, None, None]).sum(0)
        for k, (points, label) in enumerate(zip(kps, labels)):
            used = meta["slots"][shapes.CLASS_NAMES[label]]
            unused = [s for s in range(shapes.NUM_KEYPOINTS) if s not in used]
            np.testing.assert_array_equal(points[unused], 0)  # the class does not use these slots
            assert set(points[:, 2]) <= {0, 1, 2}
            labelled = points[points[:, 2] > 0]
            assert np.all((labelled[:, :2] >= 0) & (labelled[:, :2] < 96))
            # Slot 0 is the topmost point.
            assert np.all(points[0, 1] <= labelled[:, 1] + 1e-4) or points[0, 2] == 0
            for x, y, v in labelled:
                under = idmap[int(y), int(x)]
                assert (v == 1) == (under > k + 1)  # occluded = a later-painted object covers the point
                counts["occluded" if v == 1 else "visible"] += 1
            # Points sit on the object's outline: within 1.5 px of its visible box.
            x1, y1, x2, y2 = e["bounding_boxes"]["boxes"][k]
            vis = points[points[:, 2] == 2]
            assert np.all((vis[:, 0] > x1 - 1.5) & (vis[:, 0] < x2 + 1.5) & (vis[:, 1] > y1 - 1.5)
                          & (vis[:, 1] < y2 + 1.5))
    assert counts["visible"] > 100 and counts["occluded"] > 0


def test_keypoints_leave_the_other_outputs_unchanged():
    plain = _arrays(kd.load("shapes", "train", num_images=6, image_size=64, seed=11))
    shapes.generate.cache_clear()
    with_kps = _arrays(kd.load("shapes", "train", num_images=6, image_size=64, seed=11, with_keypoints=True))
    for x, y in zip(plain, with_kps):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert "keypoints" not in next(iter(kd.load("shapes", "train", num_images=1, image_size=64)))


@pytest.mark.parametrize("class_name", shapes.CLASS_NAMES)
def test_flip_indices_mirror_the_slots(class_name):
    """Mirroring a shape and re-slotting it equals mirroring the slotted points, then `KEYPOINT_FLIP_INDICES`."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        cx, cy, radius, angle = 40 + rng.uniform(-5, 5), 40 + rng.uniform(-5, 5), rng.uniform(4, 30), rng.uniform(0, 7)
        points = shapes._shape_points(class_name, cx, cy, radius, angle)
        slotted, used = shapes._slot_points(points, cx, cy)
        mirrored, used_m = shapes._slot_points(points * [-1, 1] + [100, 0], 100 - cx, cy)
        expected = (slotted * [-1, 1] + [100, 0])[list(shapes.KEYPOINT_FLIP_INDICES)]
        assert used_m == used
        np.testing.assert_allclose(mirrored[list(used)], expected[list(used)], atol=1e-9)


def test_random_flip_and_resize_move_keypoints():
    from keras_det.data import augment

    element = next(iter(kd.load("shapes", "train", "xyxy", num_images=1, image_size=64, seed=2, with_keypoints=True)))
    kps = element["keypoints"].numpy()
    flip = augment.RandomFlip("xyxy", flip_indices=shapes.KEYPOINT_FLIP_INDICES, probability=1.0, seed=0)
    once = flip(element)
    expected = np.where(kps[..., 2:] > 0, kps * [-1, 1, 1] + [64, 0, 0], 0)[:, list(shapes.KEYPOINT_FLIP_INDICES)]
    np.testing.assert_allclose(once["keypoints"], expected, atol=1e-5)
    np.testing.assert_array_equal(once["masks"], element["masks"].numpy()[:, :, ::-1])
    boxes = element["bounding_boxes"]["boxes"].numpy()
    np.testing.assert_allclose(once["bounding_boxes"]["boxes"], np.stack(
        [64 - boxes[:, 2], boxes[:, 1], 64 - boxes[:, 0], boxes[:, 3]], -1))
    twice = flip(once)
    np.testing.assert_allclose(twice["keypoints"], kps, atol=1e-5)
    np.testing.assert_array_equal(twice["images"], element["images"])
    # Resize (and batching's truncation / padding): keypoints scale with the boxes, padding rows are 0.
    batch = next(iter(kd.batch(tf.data.Dataset.from_tensors(element), 1, max_boxes=12, image_size=128,
                               bounding_box_format="xyxy")))
    n = len(kps)
    assert batch["keypoints"].shape == (1, 12, shapes.NUM_KEYPOINTS, 3)
    np.testing.assert_allclose(batch["keypoints"][0, :n], kps * np.where(kps[..., 2:] > 0, [2, 2, 1], 0), atol=1e-5)
    np.testing.assert_array_equal(batch["keypoints"][0, n:], 0)
    cut = next(iter(kd.batch(tf.data.Dataset.from_tensors(element), 1, max_boxes=1)))
    np.testing.assert_array_equal(cut["keypoints"][0], kps[:1])
    with pytest.raises(ValueError, match="does not transform keypoints"):
        augment.KerasLayer(tf.keras.layers.RandomFlip("horizontal", bounding_box_format="xyxy"))(element)


def test_expand_and_crop_move_keypoints():
    from keras_det.data import augment

    element = next(iter(kd.load("shapes", "train", "xyxy", num_images=1, image_size=64, seed=2, with_keypoints=True)))
    kps = element["keypoints"].numpy()
    out = augment.RandomExpand("xyxy", max_ratio=2.0, probability=1.0, seed=1)(element)
    shift = out["bounding_boxes"]["boxes"].numpy()[0, :2] - element["bounding_boxes"]["boxes"].numpy()[0, :2]
    np.testing.assert_allclose(out["keypoints"], np.where(kps[..., 2:] > 0, kps + [*shift, 0], 0), atol=1e-5)
    for seed in range(5):
        crop = augment.RandomIoUCrop("xyxy", min_ious=(0.0,), seed=seed)(element)
        k = crop["keypoints"].numpy()
        h, w = crop["images"].shape[:2]
        assert len(k) == len(crop["bounding_boxes"]["labels"])
        lab = k[k[..., 2] > 0]
        assert np.all((lab[:, 0] >= 0) & (lab[:, 0] < w) & (lab[:, 1] >= 0) & (lab[:, 1] < h))
        np.testing.assert_array_equal(k[k[..., 2] == 0], 0)


def test_to_coco_keypoints_and_ground_truth_scores_one():
    from keras_det.metrics import evaluate_coco

    ds, info = kd.load("shapes", "test", "xywh", with_info=True, num_images=12, image_size=96, with_keypoints=True)
    gt = kd.to_coco(ds, info)
    assert all(c["keypoints"] == list(shapes.KEYPOINT_NAMES) and c["skeleton"] for c in gt["categories"])
    for ann, kps in zip(gt["annotations"], np.concatenate([e["keypoints"] for e in ds.as_numpy_iterator()])):
        assert ann["keypoints"] == [float(v) for v in kps.reshape(-1)]
        assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum()) >= 2
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": a["keypoints"], "score": 1.0}
               for a in gt["annotations"]]
    stats = evaluate_coco(gt, results, iou_type="keypoints", sigmas=info.keypoints["sigmas"])
    assert stats["AP"] == 1.0 and stats["AP50"] == 1.0 and stats["AR"] == 1.0
    # Shifted points score less, and still in [0, 1].
    shift = lambda kps: [v + (2.0 if i % 3 < 2 else 0.0) for i, v in enumerate(kps)]  # noqa: E731  x, y + 2 px
    moved = [{**r, "keypoints": shift(r["keypoints"])} for r in results]
    shifted = evaluate_coco(gt, moved, iou_type="keypoints", sigmas=info.keypoints["sigmas"])
    assert 0.0 <= shifted["AP"] < 1.0
    # Without keypoints the export is as before.
    plain = kd.to_coco(*kd.load("shapes", "test", "xywh", with_info=True, num_images=2, image_size=96))
    assert "keypoints" not in plain["annotations"][0] and "keypoints" not in plain["categories"][0]
