"""COCO evaluation speed (bbox, segm, keypoints): keras_det vs pycocotools vs faster-coco-eval.

Generates a COCO-like ground truth (5,000 images, 80 categories, ~7 objects
per image with a realistic spread of sizes and ~1% crowds) and ~125,000
detections (jittered copies of the ground truth of varied quality plus false
positives), writes both as JSON files in a temporary folder and times, in the
same run, median of ``--repeats`` runs each:

* ``keras_det``: the steps of ``keras_det.metrics.evaluate_coco(gt_path,
  results_path)`` (file loading included), timed as load / match /
  accumulate+summarize;
* ``pycocotools``: ``COCO(gt)`` + ``loadRes`` (loading) and
  ``evaluate()`` + ``accumulate()`` + ``summarize()``;
* ``faster-coco-eval`` (if installed): the same two phases.

Repeats are round-robin (one run of each implementation per round) so that
all see the same machine load.

It also checks that the 12 numbers agree with pycocotools and writes
``benchmarks/results/eval_speed.json``.

``--iou-types bbox,segm,keypoints`` adds mask and keypoint rows (keras_det
``evaluate_coco(..., iou_type=...)`` phases vs pycocotools' ``COCOeval`` of
that type, same round-robin medians and per-round ratios) on a dataset made
from the box one (``--segm-images`` / ``--keypoint-images`` first images):
segm ground truth = 12-vertex polygons inscribed in the boxes (crowds
included), results = RLE of such polygons in the detection boxes;
keypoints = one category, 17 points on a fixed person template inside each
box (some unlabelled, some objects with none), results on the same template
in the detection boxes, jittered.

Usage::

    python benchmarks/eval_speed.py [--images 5000] [--repeats 3] [--iou-types bbox,segm,keypoints]
"""

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def make_dataset(num_images=5000, num_categories=80, gt_per_image=7.0, dets_per_image=25.0, seed=0):
    """COCO ground-truth dict and results list (see module docstring)."""
    rng = np.random.default_rng(seed)
    cat_ids = (np.arange(num_categories) + 1) * 1  # COCO-like ids 1..80
    cat_freq = rng.dirichlet(np.full(num_categories, 0.6))  # a few frequent categories
    images, anns, results = [], [], []
    ann_id = 1
    for img_id in range(1, num_images + 1):
        W, H = int(rng.integers(320, 641)), int(rng.integers(240, 481))
        images.append({"id": img_id, "width": W, "height": H, "file_name": f"{img_id:012d}.jpg"})
        n_gt = int(rng.poisson(gt_per_image))
        # Object size: log-uniform side from 4 to 400 px -> ~41% small, 34% medium, 25% large.
        side = np.exp(rng.uniform(np.log(4), np.log(400), n_gt))
        aspect = np.exp(rng.normal(0, 0.5, n_gt))
        w = np.minimum(side * np.sqrt(aspect), W - 1)
        h = np.minimum(side / np.sqrt(aspect), H - 1)
        x = rng.uniform(0, W - w)
        y = rng.uniform(0, H - h)
        cats = rng.choice(cat_ids, n_gt, p=cat_freq)
        crowd = rng.random(n_gt) < 0.01
        gts = []
        for j in range(n_gt):
            bbox = [round(float(v[j]), 2) for v in (x, y, w, h)]
            area = round(float(w[j] * h[j] * rng.uniform(0.55, 0.95)), 2)  # "segmentation" area
            anns.append({"id": ann_id, "image_id": img_id, "category_id": int(cats[j]),
                         "bbox": bbox, "area": area, "iscrowd": int(crowd[j])})
            gts.append((int(cats[j]), bbox))
            ann_id += 1
        n_det = int(rng.poisson(dets_per_image))
        for _ in range(n_det):
            if gts and rng.random() < 0.6:
                c, (gx, gy, gw, gh) = gts[int(rng.integers(len(gts)))]
                if rng.random() < 0.1:  # confused class
                    c = int(rng.choice(cat_ids, p=cat_freq))
                q = rng.choice([0.03, 0.08, 0.2])
                dx, dy, dw, dh = rng.normal(0, q, 4)
                bw, bh = gw * np.exp(dw), gh * np.exp(dh)
                bx, by = gx + dx * gw, gy + dy * gh
                score = float(np.clip(rng.normal(0.75 - 2 * q, 0.15), 0.001, 1.0))
            else:
                c = int(rng.choice(cat_ids, p=cat_freq))
                side = np.exp(rng.uniform(np.log(4), np.log(300)))
                bw, bh = side, side * np.exp(rng.normal(0, 0.4))
                bx, by = rng.uniform(0, W), rng.uniform(0, H)
                score = float(rng.uniform(0.001, 0.6))
            results.append({"image_id": img_id, "category_id": c,
                            "bbox": [round(float(bx), 2), round(float(by), 2),
                                     round(float(bw), 2), round(float(bh), 2)],
                            "score": round(score, 4)})
    gt = {"info": {"description": "synthetic"}, "images": images, "annotations": anns,
          "categories": [{"id": int(c), "name": f"class_{c}"} for c in cat_ids]}
    return gt, results


def run_keras_det(gt_path, res_path):
    """One timed run: (load s, match s, accumulate+summarize s, total s, stats)."""
    from keras_det.metrics import coco

    t0 = time.perf_counter()
    gt = coco.load_coco_ground_truth(gt_path)
    dt = coco.load_coco_results(res_path, gt)
    t1 = time.perf_counter()
    img, cat = gt["image_ids"], gt["category_ids"]
    rec = coco.match_images(
        np.searchsorted(img, gt["image_id"]), np.searchsorted(cat, gt["category_id"]),
        gt["bbox"],
        np.searchsorted(img, dt["image_id"]), np.searchsorted(cat, dt["category_id"]),
        dt["bbox"],
        dt["score"], gt_areas=gt["area"], gt_iscrowd=gt["iscrowd"], gt_ids=gt["id"],
        image_ids=np.arange(len(img)))
    t2 = time.perf_counter()
    stats = coco.summarize(coco.accumulate(rec, category_ids=np.arange(len(cat))))
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, t3 - t0, stats


def run_cocoapi(module_coco, module_eval, gt_path, res_path, iou_type="bbox", **eval_kwargs):
    """One timed run of a pycocotools-compatible API: (load s, eval s, stats)."""
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = module_coco(gt_path)
        dt = gt.loadRes(res_path)
        t1 = time.perf_counter()
        ev = module_eval(gt, dt, iou_type, **eval_kwargs)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, np.asarray(ev.stats, dtype=np.float64)


def run_keras_det_typed(gt_path, res_path, iou_type):
    """One timed run of ``evaluate_coco(..., iou_type)`` in phases: (load s, eval s, total s, stats)."""
    from keras_det.metrics import coco

    t0 = time.perf_counter()
    gt = coco.load_coco_ground_truth(gt_path, iou_type=iou_type)
    dt = coco.load_coco_results(res_path, gt, iou_type=iou_type)
    t1 = time.perf_counter()
    stats = coco.summarize(coco.evaluate_arrays(gt, dt, iou_type))
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, t2 - t0, stats


def _ellipse(box, n=12, phase=0.0):
    x, y, w, h = box
    a = np.linspace(0, 2 * np.pi, n, endpoint=False) + phase
    return np.stack([x + w / 2 * (1 + np.cos(a)), y + h / 2 * (1 + np.sin(a))], 1).round(2).reshape(-1).tolist()


def make_segm_dataset(gt, results, num_images):
    """The first ``num_images`` images of the box dataset as polygon ground truth and RLE results."""
    from keras_det.metrics import masks

    keep = {im["id"] for im in gt["images"][:num_images]}
    sizes = {im["id"]: (im["height"], im["width"]) for im in gt["images"]}
    anns = [dict(a, segmentation=[_ellipse(a["bbox"])]) for a in gt["annotations"] if a["image_id"] in keep]
    res = [r for r in results if r["image_id"] in keep]
    hw = np.array([sizes[r["image_id"]] for r in res]).reshape(-1, 2)
    ms = masks.masks_from_polygons([[_ellipse(r["bbox"], phase=0.1)] for r in res], hw[:, 0], hw[:, 1])
    rles = masks.to_rle(ms)
    res = [{k: v for k, v in r.items() if k != "bbox"} | {"segmentation": rle} for r, rle in zip(res, rles)]
    return dict(gt, images=gt["images"][:num_images], annotations=anns), res


_TEMPLATE = np.array([[.5, .08], [.45, .06], [.55, .06], [.4, .08], [.6, .08], [.3, .25], [.7, .25],
                      [.2, .42], [.8, .42], [.15, .58], [.85, .58], [.38, .6], [.62, .6], [.36, .8],
                      [.64, .8], [.35, .97], [.65, .97]])


def make_keypoint_dataset(gt, results, num_images, seed=0):
    """The first ``num_images`` images as one-category keypoint ground truth and results."""
    rng = np.random.default_rng(seed)
    keep = {im["id"] for im in gt["images"][:num_images]}
    anns = []
    for a in gt["annotations"]:
        if a["image_id"] not in keep:
            continue
        x, y, w, h = a["bbox"]
        pts = np.array([x, y]) + _TEMPLATE * [w, h] + rng.normal(0, 0.02, (17, 2)) * [w, h]
        v = np.where(rng.random(17) < 0.25, 0, 2)
        if rng.random() < 0.08:
            v[:] = 0
        pts[v == 0] = 0
        kps = np.concatenate([pts.round(2), v[:, None]], 1).reshape(-1).tolist()
        anns.append(dict(a, category_id=1, keypoints=kps, num_keypoints=int((v > 0).sum())))
    res = []
    for r in results:
        if r["image_id"] not in keep:
            continue
        x, y, w, h = r["bbox"]
        pts = np.array([x, y]) + _TEMPLATE * [w, h] + rng.normal(0, 0.04, (17, 2)) * [w, h]
        kps = np.concatenate([pts.round(2), np.ones((17, 1))], 1).reshape(-1).tolist()
        res.append({"image_id": r["image_id"], "category_id": 1, "keypoints": kps, "score": r["score"]})
    cats = [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}]
    return dict(gt, images=gt["images"][:num_images], annotations=anns, categories=cats), res


def time_iou_type(iou_type, gt, results, repeats, tmp):
    """Round-robin medians and per-round ratios of keras_det vs pycocotools for one iou type."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_path, res_path = os.path.join(tmp, f"gt_{iou_type}.json"), os.path.join(tmp, f"res_{iou_type}.json")
    with open(gt_path, "w") as f:
        json.dump(gt, f)
    with open(res_path, "w") as f:
        json.dump(results, f)
    print(f"\n[{iou_type}] {len(gt['images'])} images, {len(gt['annotations'])} GT, {len(results)} results")
    kd, pc = [], []
    for r in range(repeats):
        kd.append(run_keras_det_typed(gt_path, res_path, iou_type))
        pc.append(run_cocoapi(COCO, COCOeval, gt_path, res_path, iou_type))
        print(f"repeat {r + 1}/{repeats}: keras_det {kd[-1][2]:.2f}s, pycocotools {sum(pc[-1][:2]):.2f}s")
    med = statistics.median
    ratios = [(p[0] + p[1]) / k[2] for k, p in zip(kd, pc)]
    row = {
        "images": len(gt["images"]), "gt": len(gt["annotations"]), "results": len(results),
        "keras_det": {"load": med(r[0] for r in kd), "eval": med(r[1] for r in kd),
                      "total": med(r[2] for r in kd), "runs_total": [r[2] for r in kd]},
        "pycocotools": {"load": med(r[0] for r in pc), "eval": med(r[1] for r in pc),
                        "total": med(r[0] + r[1] for r in pc), "runs_total": [r[0] + r[1] for r in pc]},
        "ratios_per_round": ratios,
        "median_ratio_per_round": med(ratios),
        "max_abs_diff_vs_pycocotools": float(np.max(np.abs(kd[-1][3] - pc[-1][2]))),
    }
    print(f"[{iou_type}] keras_det {row['keras_det']['total']:.3f}s (load {row['keras_det']['load']:.3f}, "
          f"eval {row['keras_det']['eval']:.3f}) | pycocotools {row['pycocotools']['total']:.3f}s "
          f"(load {row['pycocotools']['load']:.3f}, eval {row['pycocotools']['eval']:.3f}) | "
          f"per-round ratio median {row['median_ratio_per_round']:.2f}x | max |diff| "
          f"{row['max_abs_diff_vs_pycocotools']:.3g}")
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--categories", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "eval_speed.json"))
    parser.add_argument("--skip-faster", action="store_true", help="do not run faster-coco-eval")
    parser.add_argument("--iou-types", default="bbox",
                        help="comma-separated: bbox (the full table), segm, keypoints (extra rows)")
    parser.add_argument("--segm-images", type=int, default=1000)
    parser.add_argument("--keypoint-images", type=int, default=1000)
    args = parser.parse_args(argv)
    iou_types = [t.strip() for t in args.iou_types.split(",") if t.strip()]

    gt, results = make_dataset(args.images, args.categories, seed=args.seed)
    tmp = tempfile.mkdtemp(prefix="eval_speed_")
    gt_path, res_path = os.path.join(tmp, "gt.json"), os.path.join(tmp, "results.json")
    with open(gt_path, "w") as f:
        json.dump(gt, f)
    with open(res_path, "w") as f:
        json.dump(results, f)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} GT boxes, "
          f"{len(gt['categories'])} categories, {len(results)} detections; repeats={args.repeats}")

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    fast = None
    if not args.skip_faster:
        try:
            import faster_coco_eval
            from faster_coco_eval import COCO as FCOCO, COCOeval_faster
        except ImportError:
            print("faster-coco-eval not installed (pip install faster-coco-eval); skipped")
        else:
            fast = (f"faster-coco-eval {faster_coco_eval.__version__}", FCOCO, COCOeval_faster)

    # Round-robin repeats so that every implementation sees the same machine load.
    kd_runs, pc_runs, fc_runs = [], [], []
    for r in range(args.repeats):
        kd_runs.append(run_keras_det(gt_path, res_path))
        pc_runs.append(run_cocoapi(COCO, COCOeval, gt_path, res_path))
        if fast is not None:
            fc_runs.append(run_cocoapi(fast[1], fast[2], gt_path, res_path,
                                       print_function=lambda *a: None))
        print(f"repeat {r + 1}/{args.repeats}: keras_det {kd_runs[-1][3]:.2f}s, "
              f"pycocotools {sum(pc_runs[-1][:2]):.2f}s"
              + (f", faster-coco-eval {sum(fc_runs[-1][:2]):.2f}s" if fc_runs else ""))

    from keras_det.metrics import evaluate_coco

    e2e = np.array(list(evaluate_coco(gt_path, res_path).values()))
    assert np.array_equal(e2e, kd_runs[-1][4]), "evaluate_coco differs from its phases"
    med = statistics.median
    kd_stats, pc_stats = kd_runs[-1][4], pc_runs[-1][2]
    fc_stats = fc_runs[-1][2] if fc_runs else None
    kd_load, kd_match = med(r[0] for r in kd_runs), med(r[1] for r in kd_runs)
    kd_acc, kd_total = med(r[2] for r in kd_runs), med(r[3] for r in kd_runs)
    rows = {"keras_det": {"load": kd_load, "eval": med(r[1] + r[2] for r in kd_runs),
                          "total": kd_total, "match": kd_match, "accumulate_summarize": kd_acc,
                          "runs_total": [r[3] for r in kd_runs]}}
    for name, runs in [("pycocotools", pc_runs)] + ([(fast[0], fc_runs)] if fc_runs else []):
        rows[name] = {"load": med(r[0] for r in runs), "eval": med(r[1] for r in runs),
                      "total": med(r[0] + r[1] for r in runs),
                      "runs_total": [r[0] + r[1] for r in runs]}

    # Ratios within each round (same machine load), then their median.
    per_round = {"pycocotools_over_keras_det": [
        (p[0] + p[1]) / k[3] for k, p in zip(kd_runs, pc_runs)]}
    if fc_runs:
        per_round["faster_coco_eval_over_keras_det"] = [
            (f[0] + f[1]) / k[3] for k, f in zip(kd_runs, fc_runs)]
        per_round["pycocotools_over_faster_coco_eval"] = [
            (p[0] + p[1]) / (f[0] + f[1]) for p, f in zip(pc_runs, fc_runs)]

    max_diff = float(np.max(np.abs(kd_stats - pc_stats)))
    print()
    print(f"{'implementation':<26}{'load s':>9}{'eval s':>9}{'total s':>9}{'vs pycocotools':>16}")
    for name, r in rows.items():
        ratio = rows["pycocotools"]["total"] / r["total"]
        r["speedup_vs_pycocotools_total"] = ratio
        r["speedup_vs_pycocotools_eval"] = rows["pycocotools"]["eval"] / r["eval"]
        print(f"{name:<26}{r['load']:>9.3f}{r['eval']:>9.3f}{r['total']:>9.3f}{ratio:>15.2f}x")
    print(f"\nkeras_det split: load {kd_load:.3f}s, match {kd_match:.3f}s, "
          f"accumulate+summarize {kd_acc:.3f}s")
    for name, r in rows.items():
        if name.startswith("faster"):
            kd = rows["keras_det"]
            print(f"keras_det vs {name}: total {r['total'] / kd['total']:.2f}x, "
                  f"eval only {r['eval'] / kd['eval']:.2f}x (>1 = keras_det faster)")
    for name, ratios in per_round.items():
        print(f"per-round {name}: median {med(ratios):.2f}x "
              f"(rounds: {', '.join(f'{x:.1f}' for x in ratios)})")
    print(f"max |keras_det - pycocotools| over the 12 stats: {max_diff:.3g}")
    if fc_stats is not None:
        fc_diff = float(np.max(np.abs(fc_stats - pc_stats)))
        print(f"max |faster-coco-eval - pycocotools|: {fc_diff:.3g}")

    out = {
        "benchmark": "COCO bbox evaluation, synthetic",
        "images": len(gt["images"]), "gt_boxes": len(gt["annotations"]),
        "categories": len(gt["categories"]), "detections": len(results),
        "repeats": args.repeats, "statistic": "median seconds",
        "platform": {"python": sys.version.split()[0], "machine": platform.machine(),
                     "cpu_count": os.cpu_count(), "numpy": np.__version__,
                     "load_average_at_end": list(os.getloadavg())},
        "results": rows,
        "ratios_per_round": per_round,
        "median_ratio_per_round": {k: med(v) for k, v in per_round.items()},
        "stats": {"keras_det": kd_stats.tolist(), "pycocotools": pc_stats.tolist(),
                  "faster_coco_eval": None if fc_stats is None else fc_stats.tolist()},
        "max_abs_diff_vs_pycocotools": max_diff,
    }
    extra = {}
    if "segm" in iou_types:
        extra["segm"] = time_iou_type("segm", *make_segm_dataset(gt, results, args.segm_images), args.repeats, tmp)
    if "keypoints" in iou_types:
        extra["keypoints"] = time_iou_type(
            "keypoints", *make_keypoint_dataset(gt, results, args.keypoint_images), args.repeats, tmp)
    if extra:
        out["iou_types"] = extra
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.output}")
    return out


if __name__ == "__main__":
    main()
