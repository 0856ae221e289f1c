import json
import pickle

import numpy as np
import pytest

from keras_det.metrics import COCOEvaluator, evaluate_coco
from keras_det.metrics import coco as C
from tests.metrics.coco_cases import make_case, pycocotools_stats

TOL = 1e-9

CASES = [
    dict(seed=0),
    dict(seed=1, integer_boxes=True),
    dict(seed=2, crowd_prob=0.4),
    dict(seed=3, big_image_prob=0.4, max_det=60),
    dict(seed=4, empty_prob=0.4),
    dict(seed=5, num_categories=1, extra_categories=0),
    dict(seed=6, match_prob=0.95, crowd_prob=0.25, integer_boxes=True),
    dict(seed=7, zero_id=True, match_prob=0.95),
    dict(seed=8, area_noise=False, num_categories=8),
    dict(seed=9, num_images=60, max_gt=20, max_det=40),
    dict(seed=10, max_gt=1, max_det=3),
    dict(seed=11, match_prob=1.0, max_det=5, crowd_prob=0.0),
]


def _ours(gt, res):
    return np.array(list(evaluate_coco(gt, res).values()))


@pytest.mark.parametrize("case", CASES, ids=[str(c["seed"]) for c in CASES])
def test_random_cases_match_pycocotools(case):
    gt, res = make_case(**case)
    assert res, "generator produced no detections"
    ref, ref_eval = pycocotools_stats(gt, res, return_eval=True)
    np.testing.assert_allclose(_ours(gt, res), ref, rtol=0, atol=TOL)
    # The whole [T, R, K, A, M] / [T, K, A, M] tables, not only the summary.
    acc = C.evaluate_arrays(C.load_coco_ground_truth(gt), C.load_coco_results(res))
    np.testing.assert_allclose(acc["precision"], ref_eval["precision"], rtol=0, atol=TOL)
    np.testing.assert_allclose(acc["recall"], ref_eval["recall"], rtol=0, atol=TOL)


def test_case_generator_covers_the_edge_cases():
    gt, res = make_case(3, big_image_prob=0.4, max_det=60)
    pairs = {}
    for r in res:
        key = (r["image_id"], r["category_id"])
        pairs[key] = pairs.get(key, 0) + 1
    assert max(pairs.values()) > 100
    gt2, _ = make_case(2, crowd_prob=0.4)
    assert any(a["iscrowd"] for a in gt2["annotations"])
    areas = [a["area"] for a in gt2["annotations"]]
    assert min(areas) < 32**2 and max(areas) > 96**2
    img_with_gt = {a["image_id"] for a in gt["annotations"]}
    img_with_det = {r["image_id"] for r in res}
    all_img = {i["id"] for i in gt["images"]}
    assert all_img - img_with_gt and all_img - img_with_det
    assert {c["id"] for c in gt["categories"]} - {r["category_id"] for r in res}


def test_top_100_cut_after_score_sort():
    # 150 detections of one image/category: the 100 best are false positives,
    # the rest are perfect; pycocotools keeps only the first 100.
    gt = {"images": [{"id": 1}], "categories": [{"id": 3}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 10, 50, 50],
                           "area": 2500, "iscrowd": 0}]}
    res = [{"image_id": 1, "category_id": 3, "bbox": [200, 200, 10, 10], "score": 0.9}] * 100
    res += [{"image_id": 1, "category_id": 3, "bbox": [10, 10, 50, 50], "score": 0.5}] * 50
    ref = pycocotools_stats(gt, res)
    ours = _ours(gt, res)
    np.testing.assert_allclose(ours, ref, atol=TOL)
    assert ours[0] == 0.0
    # Ties in score keep file order: equal scores, the good one last.
    res2 = [dict(r, score=0.5) for r in res]
    np.testing.assert_allclose(_ours(gt, res2), pycocotools_stats(gt, res2), atol=TOL)


def test_crowd_iou_uses_detection_area():
    gt = {"images": [{"id": 7}], "categories": [{"id": 1}],
          "annotations": [
              {"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 100, 100], "area": 10000,
               "iscrowd": 1},
              {"id": 2, "image_id": 7, "category_id": 1, "bbox": [150, 0, 40, 40], "area": 500,
               "iscrowd": 0}]}
    # Small boxes inside the crowd region: IoU (inter / det area) = 1 -> ignored, not FP.
    res = [{"image_id": 7, "category_id": 1, "bbox": [10 * i, 10, 10, 10], "score": 0.9 - 0.01 * i}
           for i in range(5)]
    res.append({"image_id": 7, "category_id": 1, "bbox": [150, 0, 40, 40], "score": 0.1})
    ref = pycocotools_stats(gt, res)
    ours = _ours(gt, res)
    np.testing.assert_allclose(ours, ref, atol=TOL)
    assert ours[0] == pytest.approx(1.0)


def test_zero_annotation_id_quirk():
    # pycocotools records the matched GT *id*; id 0 reads as "unmatched".
    gt = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1}],
          "annotations": [
              {"id": 0, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "area": 2500,
               "iscrowd": 0},
              {"id": 5, "image_id": 2, "category_id": 1, "bbox": [0, 0, 50, 50], "area": 2500,
               "iscrowd": 0}]}
    res = [{"image_id": i, "category_id": 1, "bbox": [0, 0, 50, 50], "score": 0.9} for i in (1, 2)]
    ref = pycocotools_stats(gt, res)
    np.testing.assert_allclose(_ours(gt, res), ref, atol=TOL)
    assert ref[0] < 1.0


def test_no_ground_truth_gives_minus_one_and_empty_results_zero():
    gt = {"images": [{"id": 1}], "categories": [{"id": 1}], "annotations": []}
    res = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.3}]
    assert set(evaluate_coco(gt, res).values()) == {-1.0}
    gt2, _ = make_case(0)
    out = evaluate_coco(gt2, [])
    assert out["AP"] == 0.0 and out["AR100"] == 0.0


def test_files_and_per_image_records_merge(tmp_path):
    gt, res = make_case(21, big_image_prob=0.2, crowd_prob=0.2)
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(res))
    ref = pycocotools_stats(gt, res)
    np.testing.assert_allclose(np.array(list(evaluate_coco(str(gt_path), res_path).values())),
                               ref, atol=TOL)
    # Per-image records (as Beam workers would produce), pickled, shuffled and merged.
    g = C.load_coco_ground_truth(gt)
    d = C.load_coco_results(res, g)
    records = []
    for img in g["image_ids"]:
        gs, ds = g["image_id"] == img, d["image_id"] == img
        rec = C.match_image(int(img), g["bbox"][gs], g["category_id"][gs], d["bbox"][ds],
                            d["score"][ds], d["category_id"][ds], gt_areas=g["area"][gs],
                            gt_iscrowd=g["iscrowd"][gs], gt_ids=g["id"][gs])
        records.append(pickle.loads(pickle.dumps(rec)))
    rng = np.random.default_rng(0)
    records = [records[i] for i in rng.permutation(len(records))]
    half = len(records) // 2
    merged = C.merge_records([C.merge_records(records[:half]), C.merge_records(records[half:])])
    stats = C.summarize(C.accumulate(merged, category_ids=g["category_ids"]))
    np.testing.assert_allclose(stats, ref, atol=TOL)
    with pytest.raises(ValueError, match="more than once"):
        C.accumulate(records + records[:1])


def _batched(gt, res, img_ids, fmt):
    """Dense padded batch (data contract) for the given images, in ``fmt``."""
    def conv(b):
        b = np.asarray(b, np.float64).reshape(-1, 4)
        x, y, w, h = b.T
        return {"xywh": b, "yxyx": np.stack([y, x, y + h, x + w], -1),
                "xyxy": np.stack([x, y, x + w, y + h], -1)}[fmt]
    B = len(img_ids)
    ga = [[a for a in gt["annotations"] if a["image_id"] == i] for i in img_ids]
    da = [[r for r in res if r["image_id"] == i] for i in img_ids]
    M = max(1, max(len(a) for a in ga)) + 2
    K = max(1, max(len(a) for a in da)) + 3
    y_true = {"boxes": np.zeros((B, M, 4)), "labels": -np.ones((B, M), np.int32),
              "iscrowd": np.zeros((B, M), np.int32), "area": np.zeros((B, M))}
    y_pred = {"boxes": np.zeros((B, K, 4)), "scores": np.zeros((B, K)),
              "labels": -np.ones((B, K), np.int32), "num_detections": np.zeros((B,), np.int32)}
    for b in range(B):
        n = len(ga[b])
        if n:
            y_true["boxes"][b, :n] = conv([a["bbox"] for a in ga[b]])
            y_true["labels"][b, :n] = [a["category_id"] for a in ga[b]]
            y_true["iscrowd"][b, :n] = [a["iscrowd"] for a in ga[b]]
            y_true["area"][b, :n] = [a["area"] for a in ga[b]]
        n = len(da[b])
        if n:
            y_pred["boxes"][b, :n] = conv([r["bbox"] for r in da[b]])
            y_pred["scores"][b, :n] = [r["score"] for r in da[b]]
            y_pred["labels"][b, :n] = [r["category_id"] for r in da[b]]
        # A padded row with a valid label beyond num_detections must be ignored.
        y_pred["labels"][b, n] = 1
        y_pred["scores"][b, n] = 1.0
        y_pred["num_detections"][b] = n
    return y_true, y_pred


@pytest.mark.parametrize("fmt", ["xywh", "yxyx"])
def test_evaluator_matches_pycocotools(fmt):
    # Integer boxes are exact in float32, so the yxyx -> xywh conversion is exact.
    gt, res = make_case(31, num_images=24, integer_boxes=True, crowd_prob=0.2, big_image_prob=0.15)
    ids = [im["id"] for im in gt["images"]]
    ev = COCOEvaluator(bounding_box_format=fmt, category_ids=[c["id"] for c in gt["categories"]])
    for s in range(0, len(ids), 8):
        y_true, y_pred = _batched(gt, res, ids[s:s + 8], fmt)
        ev.update_state(y_true, y_pred)
    out = ev.result()
    assert list(out) == list(C.STAT_NAMES)
    # The evaluator numbers images in the order seen: remap to keep tie order.
    remap = {old: new for new, old in enumerate(ids)}
    gt2 = dict(gt, images=[{"id": remap[i["id"]]} for i in gt["images"]],
               annotations=[dict(a, image_id=remap[a["image_id"]]) for a in gt["annotations"]])
    res2 = [dict(r, image_id=remap[r["image_id"]]) for r in res]
    np.testing.assert_allclose(np.array(list(out.values())), pycocotools_stats(gt2, res2), atol=TOL)
    ev.reset_state()
    assert set(ev.result().values()) == {-1.0}


def test_evaluator_default_area_is_box_area():
    gt, res = make_case(32, num_images=10, area_noise=False, integer_boxes=True, crowd_prob=0.0)
    ids = [im["id"] for im in gt["images"]]
    y_true, y_pred = _batched(gt, res, ids, "xywh")
    del y_true["area"], y_true["iscrowd"]
    ev = COCOEvaluator(bounding_box_format="xywh")
    ev.update_state({"images": None, "bounding_boxes": y_true}, y_pred)
    remap = {old: new for new, old in enumerate(ids)}
    gt2 = dict(gt, images=[{"id": remap[i["id"]]} for i in gt["images"]],
               annotations=[dict(a, image_id=remap[a["image_id"]]) for a in gt["annotations"]])
    res2 = [dict(r, image_id=remap[r["image_id"]]) for r in res]
    np.testing.assert_allclose(np.array(list(ev.result().values())), pycocotools_stats(gt2, res2),
                               atol=TOL)


# ---------------------------------------------------------------- bad input

GOOD_GT = {"images": [{"id": 1}, {"id": 2}], "categories": [{"id": 1}, {"id": 2}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10],
                            "area": 100, "iscrowd": 0}]}


def _det(**kw):
    d = {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.5}
    d.update(kw)
    return d


@pytest.mark.parametrize(
    "results, pattern",
    [
        ([_det(), _det(image_id=99)], r"res\.json: results entry 1 has image_id 99"),
        ([_det(), _det(), _det(category_id=7)], r"res\.json: results entry 2 has category_id 7"),
        ([_det(bbox=[0, 0, -1, 5])], r"res\.json: results entry 0 has a bbox with negative width"),
        ([_det(), _det(bbox=[0, 0, 4, -0.5])], r"entry 1 has a bbox with negative width or height"),
        ({"annotations": []}, r"res\.json: a COCO results file must be a JSON list"),
        ([_det(), {"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}],
         r"entry 1 has no 'category_id'"),
        ([_det(bbox=[0, 0, 1])], r"entry 0 has a bbox that is not 4 numbers"),
        ([_det(score="high")], r"entry 0 has a non-numeric score"),
    ],
)
def test_bad_results_raise_clear_errors(tmp_path, results, pattern):
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps(GOOD_GT))
    res_path.write_text(json.dumps(results))
    with pytest.raises(ValueError, match=pattern):
        evaluate_coco(str(gt_path), str(res_path))


def test_bad_ground_truth_raises_clear_errors(tmp_path):
    res_path = tmp_path / "res.json"
    res_path.write_text(json.dumps([_det()]))
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps({"annotations": [], "categories": []}))
    msg = r"gt\.json: a COCO ground-truth file must be a JSON object with an 'images' list"
    with pytest.raises(ValueError, match=msg):
        evaluate_coco(str(gt_path), str(res_path))
    gt_path.write_text("[1, 2")
    with pytest.raises(ValueError, match=r"gt\.json' is not valid JSON"):
        evaluate_coco(str(gt_path), str(res_path))
    bad = dict(GOOD_GT, annotations=GOOD_GT["annotations"] * 2)
    gt_path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"annotation entry 1 repeats the annotation id 1"):
        evaluate_coco(str(gt_path), str(res_path))
    with pytest.raises(ValueError, match=r"Cannot read the ground-truth file"):
        evaluate_coco(str(tmp_path / "missing.json"), str(res_path))


def test_per_category_ap_matches_pycocotools_tables():
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, res = make_case(41, num_categories=4)
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = copy.deepcopy(gt)
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(copy.deepcopy(res)), "bbox")
        ev.evaluate()
        ev.accumulate()
    acc = C.evaluate_arrays(C.load_coco_ground_truth(gt), C.load_coco_results(res))
    np.testing.assert_array_equal(acc["precision"], ev.eval["precision"])
    np.testing.assert_array_equal(acc["recall"], ev.eval["recall"])
    per = C.per_category_ap(acc, iou_threshold=0.5)
    for k, cat in enumerate(sorted(c["id"] for c in gt["categories"])):
        p = ev.eval["precision"][0, :, k, 0, 2]
        if (p > -1).any():
            assert per[cat] == pytest.approx(np.mean(p[p > -1]), abs=TOL)
