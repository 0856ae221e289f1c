"""COCO segm and keypoints evaluation against pycocotools' COCOeval (stats and tables to 1e-9)."""

import json

import numpy as np
import pytest

from keras_det.metrics import COCOEvaluator, evaluate_coco
from keras_det.metrics import coco as C
from keras_det.metrics import keypoints as KP
from keras_det.metrics import masks as M
from tests.metrics.coco_cases import make_keypoints_case, make_segm_case, pycocotools_eval

TOL = 1e-9
mask_utils = pytest.importorskip("pycocotools.mask")

SEGM_CASES = [
    dict(seed=0),
    dict(seed=1, crowd_prob=0.4, match_prob=0.9),
    dict(seed=2, result_bbox=True),
    dict(seed=3, big_image_prob=0.5, rle_gt_prob=0.6),
    dict(seed=4, empty_prob=0.4, num_categories=1),
]
KEYPOINT_CASES = [
    dict(seed=0),
    dict(seed=1, unlabelled_prob=0.4, crowd_prob=0.3, match_prob=0.95),
    dict(seed=2, result_bbox=True),
    dict(seed=3, big_image_prob=0.5, num_categories=2),
    dict(seed=4, empty_prob=0.4, invisible_prob=0.7),
]


def _check(gt, res, iou_type, sigmas=None):
    ref = pycocotools_eval(gt, res, iou_type, sigmas)
    ours = evaluate_coco(gt, res, iou_type=iou_type, sigmas=sigmas)
    np.testing.assert_allclose(np.array(list(ours.values())), ref.stats, rtol=0, atol=TOL)
    g = C.load_coco_ground_truth(gt, iou_type=iou_type)
    acc = C.evaluate_arrays(g, C.load_coco_results(res, g, iou_type=iou_type), sigmas=sigmas)
    np.testing.assert_allclose(acc["precision"], ref.eval["precision"], rtol=0, atol=TOL)
    np.testing.assert_allclose(acc["recall"], ref.eval["recall"], rtol=0, atol=TOL)
    return ours


@pytest.mark.parametrize("case", SEGM_CASES, ids=[str(c["seed"]) for c in SEGM_CASES])
def test_segm_matches_pycocotools(case):
    gt, res, _ = make_segm_case(**case)
    ours = _check(gt, res, "segm")
    assert list(ours) == list(C.STAT_NAMES) and ours["AP"] > 0.01


@pytest.mark.parametrize("case", KEYPOINT_CASES, ids=[str(c["seed"]) for c in KEYPOINT_CASES])
def test_keypoints_match_pycocotools(case):
    gt, res = make_keypoints_case(**case)
    ours = _check(gt, res, "keypoints")
    assert list(ours) == list(C.KEYPOINT_STAT_NAMES) and ours["AP"] > 0.0


def test_keypoints_with_given_sigmas():
    gt, res = make_keypoints_case(5, num_points=5, match_prob=0.9)
    _check(gt, res, "keypoints", sigmas=[0.03, 0.05, 0.08, 0.1, 0.2])
    with pytest.raises(ValueError, match="5 .* points but there are 17 sigmas"):
        evaluate_coco(gt, res, iou_type="keypoints")


def test_segm_cases_cover_the_edge_cases():
    gt, res, _ = make_segm_case(3, big_image_prob=0.5, rle_gt_prob=0.6)
    kinds = {("rle" if isinstance(a["segmentation"], dict) and isinstance(a["segmentation"]["counts"], str)
              else "ucrle" if isinstance(a["segmentation"], dict) else "poly") for a in gt["annotations"]}
    assert kinds == {"rle", "ucrle", "poly"}
    assert any(len(a["segmentation"]) > 1 for a in gt["annotations"] if isinstance(a["segmentation"], list))
    per = {}
    for r in res:
        per[r["image_id"], r["category_id"]] = per.get((r["image_id"], r["category_id"]), 0) + 1
    assert max(per.values()) > 100
    areas = [a["area"] for a in gt["annotations"]]
    assert min(areas) < 32**2 and max(areas) > 96**2
    assert {i["id"] for i in gt["images"]} - {a["image_id"] for a in gt["annotations"]}
    gt_k, _ = make_keypoints_case(1, unlabelled_prob=0.4)
    assert any(a["num_keypoints"] == 0 for a in gt_k["annotations"])
    assert any(0 < a["num_keypoints"] < 17 for a in gt_k["annotations"])


def test_polygon_results_equal_their_rle():
    # pycocotools reads only RLE results; ours also takes polygons (rasterised pycocotools' way).
    gt, res, poly_res = make_segm_case(6)
    sizes = {i["id"]: (i["height"], i["width"]) for i in gt["images"]}
    as_rle = []
    for r in poly_res:
        h, w = sizes[r["image_id"]]
        rle = mask_utils.merge(mask_utils.frPyObjects(r["segmentation"], h, w))
        as_rle.append(dict(r, segmentation={"size": rle["size"], "counts": rle["counts"].decode()}))
    ref = pycocotools_eval(gt, as_rle, "segm").stats
    np.testing.assert_allclose(list(evaluate_coco(gt, poly_res, iou_type="segm").values()), ref, atol=TOL)


def test_rle_polygons_and_iou_equal_pycocotools():
    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = rng.integers(3, 50, 2).tolist()
        polys = [rng.uniform(-3, max(h, w) + 3, int(rng.integers(3, 8)) * 2).tolist()
                 for _ in range(int(rng.integers(1, 3)))]
        if rng.random() < 0.2:
            polys = [np.round(np.asarray(p) * 2).tolist() for p in polys]  # vertices on the 0.5 grid
        ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
        np.testing.assert_array_equal(M.masks_from_polygons([polys], [h], [w]).to_dense()[0], ref)
        dense = (rng.random((3, h, w)) < rng.random()).astype(np.uint8)
        dense[0] = 0
        ref_rle = [mask_utils.encode(np.asfortranarray(m)) for m in dense]
        ours = M.to_rle(dense)
        assert [r["counts"] for r in ours] == [r["counts"].decode() for r in ref_rle]
        back = M.masks_from_segmentations(ours, [h] * 3, [w] * 3)
        np.testing.assert_array_equal(back.to_dense(), dense)
        np.testing.assert_array_equal(back.areas, mask_utils.area(ref_rle))
        crowd = rng.random(3) < 0.5
        d, g = np.meshgrid(np.arange(3), np.arange(3), indexing="ij")
        iou = M.mask_iou_pairs(back, d.ravel(), back, g.ravel()[::-1], crowd[g.ravel()[::-1]]).reshape(3, 3)
        ref_iou = mask_utils.iou(ref_rle, ref_rle[::-1], crowd[::-1].astype(np.uint8))
        np.testing.assert_array_equal(iou, ref_iou)
    # Masks whose sizes differ: IoU -1 (never a match), as pycocotools.
    a, b = M.masks_from_dense(np.ones((1, 4, 4))), M.masks_from_dense(np.ones((1, 4, 5)))
    assert M.mask_iou_pairs(a, [0], b, [0], [False])[0] == -1.0


def test_oks_reference_values():
    # One ground truth with 2 labelled of 3 points; hand-computed OKS.
    sig = np.array([0.1, 0.2, 0.3])
    g = np.array([[[10.0, 10.0, 2], [20.0, 20.0, 1], [0, 0, 0]]])
    d = np.array([[[13.0, 14.0, 1], [20.0, 20.0, 1], [99, 99, 1]]])
    area = 50.0
    e0 = 25.0 / (2 * 0.1) ** 2 / (area + np.spacing(1)) / 2
    want = (np.exp(-e0) + 1.0) / 2
    got = KP.oks_pairs(d, g, [[0, 0, 30, 30]], [area], [0], [0], sig)
    assert got[0] == pytest.approx(want, abs=1e-15)
    # No labelled point: distance to the box extended by its size on each side, all points.
    g0 = np.zeros((1, 3, 3))
    d0 = np.array([[[5.0, 5.0, 1], [-20.0, 5.0, 1], [5.0, 40.0, 1]]])  # box [0,0,10,10] -> [-10, 20]
    e = np.array([0.0, 100.0, 400.0]) / (2 * sig) ** 2 / (area + np.spacing(1)) / 2
    got0 = KP.oks_pairs(d0, g0, [[0, 0, 10, 10]], [area], [0], [0], sig)
    assert got0[0] == pytest.approx(np.mean(np.exp(-e)), abs=1e-15)


def test_bad_segm_and_keypoint_results_name_the_entry(tmp_path):
    gt, res, _ = make_segm_case(7)
    bad = res[:2] + [dict(res[2], segmentation={"counts": "abc"})]
    with pytest.raises(ValueError, match=r"results entry 2 has a segmentation that is an RLE without a 'size'"):
        evaluate_coco(gt, bad, iou_type="segm")
    h, w = res[0]["segmentation"]["size"]
    wrong = [dict(res[0], segmentation={"size": [h + 1, w], "counts": M.encode_rle_counts([(h + 1) * w])})]
    with pytest.raises(ValueError, match=r"results entry 0 has a segmentation of size"):
        evaluate_coco(gt, wrong, iou_type="segm")
    with pytest.raises(ValueError, match=r"results entry 0 has no 'segmentation' field"):
        evaluate_coco(gt, [{k: v for k, v in res[0].items() if k != "segmentation"}], iou_type="segm")
    gk, rk = make_keypoints_case(7)
    with pytest.raises(ValueError, match=r"results entry 1 has keypoints that are 2 points, not 17"):
        evaluate_coco(gk, [rk[0], dict(rk[1], keypoints=[1, 2, 1, 3, 4, 1])], iou_type="keypoints")
    with pytest.raises(ValueError, match=r"iou_type must be one of"):
        evaluate_coco(gk, rk, iou_type="mask")
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gk))
    assert evaluate_coco(str(path), rk, iou_type="keypoints")["AP"] == evaluate_coco(gk, rk, iou_type="keypoints")["AP"]


def _dense_batches(gt, res, iou_type):
    """The evaluator's batch dicts (all images of a case in one batch) and the case renumbered 0..N-1."""
    ids = [i["id"] for i in gt["images"]]
    remap = {old: new for new, old in enumerate(ids)}
    B = len(ids)
    ga = [[a for a in gt["annotations"] if a["image_id"] == i] for i in ids]
    da = [[r for r in res if r["image_id"] == i] for i in ids]
    M_, K_ = max(1, max(map(len, ga))), max(1, max(map(len, da)))
    y_true = {"boxes": np.zeros((B, M_, 4)), "labels": -np.ones((B, M_), int), "iscrowd": np.zeros((B, M_), int),
              "area": np.zeros((B, M_))}
    y_pred = {"scores": np.zeros((B, K_)), "labels": -np.ones((B, K_), int)}
    if iou_type == "segm":
        H = max(i["height"] for i in gt["images"])
        W = max(i["width"] for i in gt["images"])
        y_true["masks"] = np.zeros((B, M_, H, W), np.uint8)
        y_pred["masks"] = np.zeros((B, K_, H, W), np.float32)
    else:
        y_true["keypoints"] = np.zeros((B, M_, 17, 3))
        y_pred["keypoints"] = np.zeros((B, K_, 17, 3))
    for b, img in enumerate(gt["images"]):
        h, w = img["height"], img["width"]
        for j, a in enumerate(ga[b]):
            y_true["boxes"][b, j] = a["bbox"]
            y_true["labels"][b, j] = a["category_id"]
            y_true["iscrowd"][b, j] = a["iscrowd"]
            y_true["area"][b, j] = a["area"]
            if iou_type == "segm":
                ms = M.masks_from_segmentations([a["segmentation"]], [h], [w]).to_dense()[0]
                y_true["masks"][b, j, :h, :w] = ms
            else:
                y_true["keypoints"][b, j] = np.reshape(a["keypoints"], (17, 3))
        for j, r in enumerate(da[b]):
            y_pred["scores"][b, j] = r["score"]
            y_pred["labels"][b, j] = r["category_id"]
            if iou_type == "segm":
                y_pred["masks"][b, j, :h, :w] = M.masks_from_segmentations([r["segmentation"]], [h], [w]).to_dense()[0]
            else:
                y_pred["keypoints"][b, j] = np.reshape(r["keypoints"], (17, 3))
    # The reference: the case renumbered 0..N-1 in batch order (the evaluator's image ids); for segm
    # the padded masks (the same pixels in the batch's canvas) as RLE.
    gt2 = dict(gt, images=[dict(i, id=remap[i["id"]]) for i in gt["images"]], annotations=[])
    res2 = []
    for b, img in enumerate(gt["images"]):
        if iou_type == "segm":
            gt2["images"][b].update(height=y_true["masks"].shape[2], width=y_true["masks"].shape[3])
        for j, a in enumerate(ga[b]):
            a = dict(a, image_id=b)
            if iou_type == "segm":
                a["segmentation"] = M.to_rle(y_true["masks"][b, j][None])[0]
            gt2["annotations"].append(a)
        for j, r in enumerate(da[b]):
            r = dict(r, image_id=b)
            if iou_type == "segm":
                r["segmentation"] = M.to_rle(y_pred["masks"][b, j][None] > 0.5)[0]
            res2.append(r)
    return y_true, y_pred, gt2, res2


@pytest.mark.parametrize("iou_type", ["segm", "keypoints"])
def test_evaluator_matches_pycocotools(iou_type):
    if iou_type == "segm":
        gt, res, _ = make_segm_case(8, num_images=5, big_image_prob=0.0, max_det=4)
    else:
        gt, res = make_keypoints_case(8, num_images=12)
    y_true, y_pred, gt2, res2 = _dense_batches(gt, res, iou_type)
    ev = COCOEvaluator(bounding_box_format="xywh", iou_type=iou_type,
                       category_ids=[c["id"] for c in gt["categories"]])
    ev.update_state(y_true, y_pred)
    ref = pycocotools_eval(gt2, res2, iou_type).stats
    np.testing.assert_allclose(list(ev.result().values()), ref, atol=TOL)
    ev.reset_state()
    assert set(ev.result().values()) == {-1.0}
