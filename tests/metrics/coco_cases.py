"""Random COCO ground-truth / results generators and a pycocotools reference."""

import contextlib
import copy
import io

import numpy as np


def make_case(
    seed,
    num_images=40,
    num_categories=5,
    max_gt=12,
    max_det=30,
    crowd_prob=0.1,
    big_image_prob=0.1,
    empty_prob=0.1,
    integer_boxes=False,
    extra_categories=1,
    area_noise=True,
    zero_id=False,
    match_prob=0.7,
):
    """A random COCO ground-truth dict and results list.

    Covers: crowd GT, images with no GT and/or no detections, categories
    without GT or without detections, > 100 detections for some (image,
    category), tiny/medium/large boxes, GT ``area`` differing from box area,
    duplicated GT boxes and tied scores.
    """
    rng = np.random.default_rng(seed)
    n_cat = num_categories + extra_categories
    cat_ids = sorted(rng.choice(np.arange(1, 100), n_cat, replace=False).tolist())
    det_cats = cat_ids[: num_categories]  # the extra categories never get detections
    gt_cats = cat_ids[1:] if extra_categories else cat_ids  # cat_ids[0] has no GT
    images, anns, results = [], [], []
    ann_id = 0 if zero_id else 1
    img_ids = rng.choice(np.arange(1, 10 * num_images), num_images, replace=False)
    for img_id in img_ids.tolist():
        W, H = rng.integers(64, 640, 2).tolist()
        images.append({"id": img_id, "width": W, "height": H})
        gts = []
        if rng.random() > empty_prob:
            for _ in range(rng.integers(0, max_gt + 1)):
                scale = rng.choice([8, 30, 70, 200])
                w, h = (rng.uniform(0.3, 1.5, 2) * scale).tolist()
                x, y = rng.uniform(0, W), rng.uniform(0, H)
                if integer_boxes:
                    x, y = float(int(x)), float(int(y))
                    w, h = float(max(1, int(w))), float(max(1, int(h)))
                c = int(rng.choice(gt_cats))
                crowd = int(rng.random() < crowd_prob)
                area = w * h * (rng.uniform(0.5, 1.0) if area_noise and rng.random() < 0.5 else 1.0)
                gts.append((c, [x, y, w, h]))
                anns.append({"id": ann_id, "image_id": img_id, "category_id": c,
                             "bbox": [x, y, w, h], "area": area, "iscrowd": crowd})
                ann_id += 1
                if rng.random() < 0.05:  # exact duplicate GT box
                    anns.append({"id": ann_id, "image_id": img_id, "category_id": c,
                                 "bbox": [x, y, w, h], "area": area, "iscrowd": 0})
                    ann_id += 1
        if rng.random() < empty_prob:
            continue  # no detections for this image
        n_det = rng.integers(0, max_det + 1)
        if rng.random() < big_image_prob:
            n_det = rng.integers(101, 160)
            many_cat = int(rng.choice(det_cats))
        else:
            many_cat = None
        for j in range(n_det):
            if many_cat is not None and rng.random() < 0.9:
                c = many_cat
            else:
                c = int(rng.choice(det_cats))
            same = [b for cc, b in gts if cc == c]
            if same and rng.random() < match_prob:
                x, y, w, h = same[rng.integers(len(same))]
                jit = rng.normal(0, rng.choice([0.01, 0.05, 0.15]), 4) * np.array([w, h, w, h])
                x, y, w, h = (np.array([x, y, w, h]) + jit).tolist()
                w, h = abs(w), abs(h)
            else:
                scale = rng.choice([8, 30, 70, 200])
                w, h = (rng.uniform(0.3, 1.5, 2) * scale).tolist()
                x, y = rng.uniform(0, W), rng.uniform(0, H)
            if integer_boxes:
                x, y, w, h = float(int(x)), float(int(y)), float(int(w)), float(int(h))
            if rng.random() < 0.2:  # tied scores
                score = float(rng.choice([0.5, 0.25, 0.9]))
            else:
                score = float(rng.random())
            results.append({"image_id": img_id, "category_id": c, "bbox": [x, y, w, h],
                            "score": score})
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": c, "name": f"c{c}"} for c in cat_ids]}
    return gt, results


def pycocotools_stats(gt, results, return_eval=False):
    """pycocotools COCOeval(bbox).stats, silenced (and ``.eval`` if asked)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = np.asarray(ev.stats, dtype=np.float64)
    return (stats, ev.eval) if return_eval else stats
