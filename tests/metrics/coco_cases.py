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


def _polygon(rng, cx, cy, radius, n):
    """A random star-shaped polygon (flat ``[x1, y1, ...]``) around ``(cx, cy)``."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.4, 1.0, n)
    return np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).reshape(-1).tolist()


def make_segm_case(
    seed,
    num_images=16,
    num_categories=3,
    max_gt=6,
    max_det=12,
    crowd_prob=0.15,
    big_image_prob=0.15,
    empty_prob=0.15,
    rle_gt_prob=0.2,
    result_bbox=False,
    match_prob=0.7,
):
    """A random COCO segm ground truth (polygons, RLE, crowds as uncompressed RLE) and RLE results.

    Covers crowds, images without ground truth and/or results, a category
    without ground truth, > 100 results for some (image, category), every
    area range, multi-part polygons, tied scores; with ``result_bbox`` every
    result carries a ``bbox`` (pycocotools then uses box areas).
    Returns ``(gt, results, results_as_polygons)``: the last one is the same
    results with the polygons they were drawn from (``None`` for RLE ones).
    """
    from keras_det.metrics import masks as M

    rng = np.random.default_rng(seed)
    n_cat = num_categories + 1
    cat_ids = sorted(rng.choice(np.arange(1, 50), n_cat, replace=False).tolist())
    gt_cats = cat_ids[1:]
    images, anns, results, poly_results = [], [], [], []
    ann_id = 1
    img_ids = rng.choice(np.arange(1, 10 * num_images), num_images, replace=False).tolist()
    for img_id in img_ids:
        W, H = rng.integers(40, 300, 2).tolist()
        images.append({"id": img_id, "width": W, "height": H})
        gts = []
        if rng.random() > empty_prob:
            for _ in range(rng.integers(0, max_gt + 1)):
                radius = float(rng.choice([4, 12, 35, 140]))
                cx, cy = rng.uniform(0, W), rng.uniform(0, H)
                parts = [_polygon(rng, cx, cy, radius, int(rng.integers(3, 9)))]
                if rng.random() < 0.2:
                    parts.append(_polygon(rng, cx + radius, cy, radius / 2, int(rng.integers(3, 7))))
                c = int(rng.choice(gt_cats))
                crowd = int(rng.random() < crowd_prob)
                mask = M.masks_from_polygons([parts], [H], [W])
                if crowd:
                    seg = {"size": [H, W], "counts": mask.to_rle_counts(0).tolist()}
                elif rng.random() < rle_gt_prob:
                    seg = M.to_rle(mask)[0]
                else:
                    seg = parts
                area = float(mask.areas[0]) * (rng.uniform(0.8, 1.0) if rng.random() < 0.3 else 1.0)
                x0, y0, x1, y1 = mask.boxes()[0].tolist()
                anns.append({"id": ann_id, "image_id": img_id, "category_id": c, "segmentation": seg,
                             "area": area, "iscrowd": crowd,
                             "bbox": [x0, y0, max(0, x1 - x0 + 1), max(0, y1 - y0 + 1)]})
                gts.append((c, parts, radius))
                ann_id += 1
        if rng.random() < empty_prob:
            continue
        n_det = len(gts) + int(rng.integers(0, max_det + 1))
        many = rng.random() < big_image_prob
        if many:
            n_det = int(rng.integers(101, 130))
            many_cat = gts[0][0] if gts else cat_ids[1]
        for j in range(n_det):
            if j < len(gts) and rng.random() < match_prob:
                c = gts[j][0]  # most ground truth gets a detection of its class
            elif many:
                c = many_cat if rng.random() < 0.9 else cat_ids[0]
            else:
                c = int(rng.choice(cat_ids[:num_categories]))
            same = [g for g in gts if g[0] == c]
            if same and rng.random() < match_prob:
                _, parts, radius = same[rng.integers(len(same))]
                q = rng.choice([0.02, 0.08, 0.2]) * radius
                poly = [(np.asarray(p) + rng.normal(0, q, len(p))).tolist() for p in parts[:1]]
                cx, cy = np.mean(poly[0][0::2]), np.mean(poly[0][1::2])
            else:
                radius = float(rng.choice([4, 12, 35, 140]))
                cx, cy = rng.uniform(0, W), rng.uniform(0, H)
                poly = [_polygon(rng, cx, cy, radius, int(rng.integers(3, 9)))]
            seg = M.to_rle(M.masks_from_polygons([poly], [H], [W]))[0]
            score = float(rng.choice([0.5, 0.25])) if rng.random() < 0.2 else float(rng.random())
            r = {"image_id": img_id, "category_id": c, "segmentation": seg, "score": score}
            if result_bbox:
                r["bbox"] = [float(cx - radius), float(cy - radius), 2 * radius, 2 * radius]
            results.append(r)
            poly_results.append(dict(r, segmentation=poly))
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": c, "name": f"c{c}"} for c in cat_ids]}
    return gt, results, poly_results


def make_keypoints_case(
    seed,
    num_images=30,
    num_points=17,
    num_categories=1,
    max_gt=6,
    max_det=12,
    crowd_prob=0.1,
    unlabelled_prob=0.15,
    invisible_prob=0.3,
    big_image_prob=0.15,
    empty_prob=0.15,
    result_bbox=False,
    match_prob=0.75,
):
    """A random COCO keypoints ground truth and results (``num_points`` per object).

    Covers crowds, ground truth with no labelled keypoint (``num_keypoints``
    0: the box-extension rule), invisible points (``v = 0``) at ``(0, 0)``
    as COCO writes them, images without ground truth / results, > 20 results
    for some (image, category), every area range, tied scores; with
    ``result_bbox`` every result carries a (deliberately wrong) ``bbox``,
    whose area pycocotools then uses for the area ranges.
    """
    rng = np.random.default_rng(seed)
    cat_ids = sorted(rng.choice(np.arange(1, 30), num_categories, replace=False).tolist())
    images, anns, results = [], [], []
    ann_id = 1
    img_ids = rng.choice(np.arange(1, 10 * num_images), num_images, replace=False).tolist()
    for img_id in img_ids:
        W, H = rng.integers(100, 640, 2).tolist()
        images.append({"id": img_id, "width": W, "height": H})
        gts = []
        if rng.random() > empty_prob:
            for _ in range(rng.integers(0, max_gt + 1)):
                side = float(rng.choice([15, 40, 80, 200]))
                w, h = (side * rng.uniform(0.5, 1.5, 2)).tolist()
                x, y = rng.uniform(0, W), rng.uniform(0, H)
                kx, ky = rng.uniform(x, x + w, num_points), rng.uniform(y, y + h, num_points)
                v = rng.choice([1, 2], num_points)
                if rng.random() < unlabelled_prob:
                    v[:] = 0
                else:
                    v[rng.random(num_points) < invisible_prob] = 0
                kx, ky = np.where(v > 0, kx, 0.0), np.where(v > 0, ky, 0.0)
                kps = np.stack([kx, ky, v], 1).reshape(-1).tolist()
                c = int(rng.choice(cat_ids))
                area = w * h * rng.uniform(0.5, 1.0)
                anns.append({"id": ann_id, "image_id": img_id, "category_id": c, "bbox": [x, y, w, h],
                             "area": area, "iscrowd": int(rng.random() < crowd_prob),
                             "keypoints": kps, "num_keypoints": int((v > 0).sum())})
                gts.append((c, x, y, w, h, kx, ky, v))
                ann_id += 1
        if rng.random() < empty_prob:
            continue
        n_det = int(rng.integers(0, max_det + 1))
        if rng.random() < big_image_prob:
            n_det = int(rng.integers(21, 40))
        for _ in range(n_det):
            c = int(rng.choice(cat_ids))
            same = [g for g in gts if g[0] == c]
            if same and rng.random() < match_prob:
                _, x, y, w, h, kx, ky, v = same[rng.integers(len(same))]
                q = rng.choice([0.02, 0.06, 0.15])
                dx = np.where(v > 0, kx, rng.uniform(x, x + w, num_points)) + rng.normal(0, q * w, num_points)
                dy = np.where(v > 0, ky, rng.uniform(y, y + h, num_points)) + rng.normal(0, q * h, num_points)
            else:
                side = float(rng.choice([15, 40, 80, 200]))
                x, y = rng.uniform(0, W), rng.uniform(0, H)
                dx, dy = rng.uniform(x, x + side, num_points), rng.uniform(y, y + side, num_points)
            kps = np.stack([dx, dy, np.ones(num_points)], 1).reshape(-1).tolist()
            score = float(rng.choice([0.5, 0.25])) if rng.random() < 0.2 else float(rng.random())
            r = {"image_id": img_id, "category_id": c, "keypoints": kps, "score": score}
            if result_bbox:
                r["bbox"] = [float(dx.min()), float(dy.min()), float(np.ptp(dx)) * 0.5, float(np.ptp(dy))]
            results.append(r)
    gt = {"images": images, "annotations": anns,
          "categories": [{"id": c, "name": f"c{c}", "keypoints": [f"p{i}" for i in range(num_points)]}
                         for c in cat_ids]}
    return gt, results


def pycocotools_eval(gt, results, iou_type, sigmas=None):
    """pycocotools ``COCOeval(iou_type)`` after evaluate / accumulate / summarize, silenced."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev
