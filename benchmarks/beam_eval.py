"""COCO box evaluation: the Beam pipeline (keras_det.beam.evaluate) vs pycocotools vs keras_det.

Generates the synthetic COCO set of ``benchmarks/eval_speed.py`` (its
``make_dataset``; default 5,000 images / ~125k detections), writes GT and
results JSON files to a temporary folder and times, round-robin per repeat
(so all see the same machine load), wall-clock seconds each:

* ``beam (in-process, 1 worker)``: ``keras_det.beam.evaluate.run`` with the default
  DirectRunner options, in this process;
* ``beam (multi_processing, 2 workers)``: the same with
  ``--direct_running_mode=multi_processing --direct_num_workers=2``;
* ``pycocotools``: ``COCO(gt)`` + ``loadRes`` + ``evaluate/accumulate/summarize``;
* ``keras_det.metrics.evaluate_coco(gt_path, results_path)``.

All include file loading. Checks the 12 stats are identical across all four
and writes ``benchmarks/results/beam_eval.json``.

Usage::

    python benchmarks/beam_eval.py [--images 5000] [--repeats 3]
"""

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from eval_speed import make_dataset, run_cocoapi  # noqa: E402


def run_beam(gt_path, res_path, out_dir, extra_args):
    from keras_det.beam import evaluate

    shutil.rmtree(out_dir, ignore_errors=True)
    t0 = time.perf_counter()
    summary = evaluate.run(["--gt", gt_path, "--detections", res_path, "--output", out_dir] + list(extra_args))
    seconds = time.perf_counter() - t0
    return seconds, np.array(list(summary["stats"].values()), dtype=np.float64), summary


def run_evaluate_coco(gt_path, res_path):
    from keras_det.metrics import evaluate_coco

    t0 = time.perf_counter()
    stats = evaluate_coco(gt_path, res_path)
    return time.perf_counter() - t0, np.array(list(stats.values()), dtype=np.float64)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "beam_eval.json"))
    args = parser.parse_args(argv)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)

    gt, results = make_dataset(args.images, seed=args.seed)
    tmp = tempfile.mkdtemp(prefix="beam_eval_")
    gt_path, res_path = os.path.join(tmp, "gt.json"), os.path.join(tmp, "results.json")
    with open(gt_path, "w") as f:
        json.dump(gt, f)
    with open(res_path, "w") as f:
        json.dump(results, f)
    print(f"{len(gt['images'])} images, {len(gt['annotations'])} GT boxes, {len(gt['categories'])} categories, "
          f"{len(results)} detections; repeats={args.repeats}; data in {tmp}", flush=True)

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    mp_args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={args.workers}"]
    names = ["beam in-process (1 worker)", f"beam multi_processing ({args.workers} workers)",
             "pycocotools", "keras_det.evaluate_coco"]
    runs = {n: [] for n in names}
    stats = {}
    for r in range(args.repeats):
        s, st, _ = run_beam(gt_path, res_path, os.path.join(tmp, "out1"), ["--direct_num_workers=1"])
        runs[names[0]].append(s); stats[names[0]] = st
        s, st, _ = run_beam(gt_path, res_path, os.path.join(tmp, "outmp"), mp_args)
        runs[names[1]].append(s); stats[names[1]] = st
        load, ev, st = run_cocoapi(COCO, COCOeval, gt_path, res_path)
        runs[names[2]].append(load + ev); stats[names[2]] = st
        s, st = run_evaluate_coco(gt_path, res_path)
        runs[names[3]].append(s); stats[names[3]] = st
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{n} {runs[n][-1]:.2f}s" for n in names), flush=True)

    med = statistics.median
    ref = stats["pycocotools"]
    rows = {}
    print()
    print(f"{'implementation':<36}{'median s':>10}{'vs pycocotools':>16}{'identical stats':>17}")
    for n in names:
        m = med(runs[n])
        identical = bool(np.array_equal(stats[n], ref))
        rows[n] = {"median_s": m, "runs_s": runs[n], "speedup_vs_pycocotools": med(runs["pycocotools"]) / m,
                   "stats": stats[n].tolist(), "identical_to_pycocotools": identical,
                   "max_abs_diff_vs_pycocotools": float(np.max(np.abs(stats[n] - ref)))}
        print(f"{n:<36}{m:>10.2f}{rows[n]['speedup_vs_pycocotools']:>15.2f}x{str(identical):>17}")
    all_identical = all(r["identical_to_pycocotools"] for r in rows.values())
    print(f"\nall 12 stats identical across implementations: {all_identical}  (AP={ref[0]:.4f}, AP50={ref[1]:.4f})")

    out = {
        "benchmark": "COCO bbox evaluation: Beam pipeline vs pycocotools vs keras_det (synthetic, eval_speed.make_dataset)",
        "images": len(gt["images"]), "gt_boxes": len(gt["annotations"]),
        "categories": len(gt["categories"]), "detections": len(results),
        "repeats": args.repeats, "statistic": "median wall-clock seconds incl. file loading",
        "note": None if args.repeats >= 3 else f"only {args.repeats} repeat(s)",
        "commands": {names[0]: "python -m keras_det.beam.evaluate --gt GT --detections DETS --output DIR --direct_num_workers=1",
                     names[1]: "python -m keras_det.beam.evaluate --gt GT --detections DETS --output DIR " + " ".join(mp_args)},
        "platform": {"python": sys.version.split()[0], "machine": platform.machine(),
                     "cpu_count": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
        "results": rows,
        "all_stats_identical": all_identical,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {args.output}")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


if __name__ == "__main__":
    main()
