"""Region proposals at scale: Beam worker scaling, R-CNN vs Fast R-CNN, proposal recall.

    python benchmarks/proposals_scaling.py [--images 24] [--rcnn_proposals 200] [--quick]

Three measurements, written to benchmarks/results/proposals_scaling.json:

1. **Pipeline scaling**: ``keras_det.beam.proposals`` (selective search fast,
   max side 500) over the same ``--images`` real photos (scikit-image's
   ``skimage.data``, cycled) with ``--direct_running_mode=multi_processing``
   and 1 then 2 workers; images/s from the pipeline's summary (wall clock of
   the whole run, worker start-up included) and the ratio (target ≥ 1.8 on
   2 cores). The same work in a plain ``multiprocessing`` pool is measured
   as a control: if it does not scale either, the cores are busy with other
   processes (the 1-minute load average is recorded too).
2. **R-CNN vs Fast R-CNN inference**: seconds per image for ``RCNN`` (every
   proposal warped to 224×224 and through the CNN) and ``FastRCNN`` (one
   CNN pass on the image, RoI pooling) with the same backbone
   (``--backbone``, MobileNetV2 by default; random weights — speed does not
   depend on them) and the same ``--rcnn_proposals`` selective-search
   proposals per image, median of ``--repeats`` runs after a warm-up. R-CNN's
   cost is linear in the number of proposals; the JSON also gives the
   extrapolation to 2,000 proposals (the paper's setting; the seed quotes
   47 s vs 0.32 s per image for VGG16 on a GPU).
3. **Proposal recall** at IoU 0.5 / 0.7 of selective search (fast,
   quality), and the sliding-window baseline, against GT boxes of
   ``shapes`` validation images and hand-placed boxes on ``skimage.data``
   photos (the cat in ``chelsea()``, the astronaut's face and body, ...).
"""

import argparse
import glob
import json
import os
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
import skimage.data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Hand-placed boxes (absolute yxyx) on skimage.data photos.
PHOTO_BOXES = {
    "chelsea": [[0, 25, 300, 395]],  # the cat
    "astronaut": [
        [20, 150, 190, 300],  # face
        [140, 20, 512, 365],  # body (suit)
        [345, 275, 512, 500],  # helmet
        [0, 355, 285, 470],  # shuttle model
    ],
    "coffee": [[15, 170, 300, 410], [60, 75, 390, 480], [65, 325, 325, 425]],  # cup, saucer, spoon
    "rocket": None,  # used for timing only
}
PHOTOS = ("chelsea", "astronaut", "coffee", "rocket")


def photo(name):
    return getattr(skimage.data, name)()


def _propose_file(args):
    path, max_proposals = args
    from keras_det.region_proposals import propose

    t = time.perf_counter()
    propose(cv2.imread(path)[:, :, ::-1], max_proposals=max_proposals, num_threads=1)
    return time.perf_counter() - t


def bench_pool(files, workers, max_proposals):
    """The same work in a plain process pool (no Beam): does the machine give N× with N processes?"""
    import multiprocessing

    out = {}
    for n in workers:
        with multiprocessing.get_context("spawn").Pool(n) as pool:
            pool.map(_propose_file, [(files[0], max_proposals)] * n)  # start-up and imports, not timed
            t = time.perf_counter()
            per_image = pool.map(_propose_file, [(f, max_proposals) for f in files], chunksize=1)
            wall = time.perf_counter() - t
        out[str(n)] = {"images_per_second": round(len(files) / wall, 4),
                       "mean_seconds_per_image_in_worker": round(float(np.mean(per_image)), 3)}
        print(f"process pool workers={n}: {out[str(n)]['images_per_second']:.2f} images/s, "
              f"{out[str(n)]['mean_seconds_per_image_in_worker']:.2f} s per image inside a worker", flush=True)
    if "1" in out and "2" in out:
        out["speedup_2_vs_1"] = round(out["2"]["images_per_second"] / out["1"]["images_per_second"], 3)
        print(f"process pool speed-up 2 vs 1: {out['speedup_2_vs_1']:.2f}x", flush=True)
    return out


def bench_pipeline(num_images, workers, max_proposals):
    from keras_det.beam import proposals as pipeline

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in")
        os.makedirs(src)
        for i in range(num_images):
            cv2.imwrite(os.path.join(src, f"img{i:04d}.png"), photo(PHOTOS[i % len(PHOTOS)])[:, :, ::-1])
        for n in workers:
            out = os.path.join(tmp, f"out{n}")
            summary = pipeline.run([
                "--input", os.path.join(src, "*.png"), "--output", out, "--max_proposals", str(max_proposals),
                "--direct_running_mode=multi_processing", f"--direct_num_workers={n}",
            ])
            results[n] = {"seconds": summary["seconds"], "images_per_second": summary["images_per_second"],
                          "images": summary["images"], "p50_proposals": summary["proposals_per_image"]["p50"],
                          # Other processes on the machine distort the ratio: record the load.
                          "load_average_1min_after": round(os.getloadavg()[0], 2)}
            print(f"pipeline workers={n}: {summary['images']} images in {summary['seconds']:.1f} s "
                  f"= {summary['images_per_second']:.2f} images/s", flush=True)
        results["process_pool"] = bench_pool(sorted(glob.glob(os.path.join(src, "*.png"))), workers, max_proposals)
    if 1 in results and 2 in results:
        results["speedup_2_vs_1"] = round(results[2]["images_per_second"] / results[1]["images_per_second"], 3)
        print(f"speed-up 2 vs 1 workers: {results['speedup_2_vs_1']:.2f}x", flush=True)
    # Per-image proposal time in this process (the work a worker does), for reference.
    from keras_det.region_proposals import propose

    times = []
    for name in PHOTOS:
        t = time.perf_counter()
        propose(photo(name), max_proposals=max_proposals, num_threads=1)
        times.append(time.perf_counter() - t)
    results["selective_search_fast_seconds_per_image"] = round(statistics.median(times), 3)
    return {str(k): v for k, v in results.items()}


def bench_rcnn_vs_fast(backbone, num_proposals, repeats):
    import tensorflow as tf

    from keras_det.models.fast_rcnn import FastRCNN
    from keras_det.models.rcnn import RCNN
    from keras_det.region_proposals import propose

    image = cv2.resize(photo("astronaut"), (480, 480)).astype(np.float32)
    props = propose(image, max_proposals=num_proposals)
    padded = np.zeros((1, num_proposals, 4), np.float32)
    padded[0, : len(props)] = props
    inputs = {"images": image[None], "proposals": tf.constant(padded)}
    out = {"backbone": backbone, "proposals": num_proposals, "image_size": [480, 480]}
    for name, model in (
        ("fast_rcnn", FastRCNN(20, backbone=backbone, bounding_box_format="yxyx", feature_tap="C4")),
        ("rcnn", RCNN(20, backbone=backbone, bounding_box_format="yxyx", inference_chunk=50)),
    ):
        fn = tf.function(lambda x, m=model: m(x, training=False))
        fn(inputs)  # trace + warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            result = fn(inputs)
            _ = result["boxes"].numpy()
            times.append(time.perf_counter() - t)
        out[f"{name}_seconds_per_image"] = round(statistics.median(times), 4)
        print(f"{name}: {out[f'{name}_seconds_per_image']:.3f} s/image ({num_proposals} proposals, {backbone})", flush=True)
    out["ratio_rcnn_over_fast_rcnn"] = round(out["rcnn_seconds_per_image"] / out["fast_rcnn_seconds_per_image"], 1)
    out["rcnn_seconds_per_image_at_2000_proposals_extrapolated"] = round(out["rcnn_seconds_per_image"] * 2000 / num_proposals, 2)
    print(f"R-CNN / Fast R-CNN: {out['ratio_rcnn_over_fast_rcnn']}x; R-CNN at 2000 proposals ≈ "
          f"{out['rcnn_seconds_per_image_at_2000_proposals_extrapolated']} s/image", flush=True)
    return out


def bench_recall(num_shapes, max_proposals):
    from keras_det import data as kd_data
    from keras_det.region_proposals import propose, recall

    methods = ("selective_search_fast", "selective_search_quality", "sliding_window")
    ds = kd_data.load("shapes", "validation", "yxyx", num_images=num_shapes, image_size=128, with_masks=False)
    shapes = [(el["images"].numpy(), el["bounding_boxes"]["boxes"].numpy()) for el in ds]
    photos = [(photo(n), np.array(b, np.float32)) for n, b in PHOTO_BOXES.items() if b]
    out = {}
    for method in methods:
        row = {}
        for set_name, items in (("shapes", shapes), ("photos", photos)):
            props = [propose(img, method, max_proposals=max_proposals, min_size=4) for img, _ in items]
            r = recall(props, [gt for _, gt in items])
            row[set_name] = {"recall@0.5": round(r[0.5], 3), "recall@0.7": round(r[0.7], 3), "num_gt": r["num_gt"],
                             "mean_proposals": round(float(np.mean([len(p) for p in props])), 1)}
        out[method] = row
        print(f"recall {method}: shapes {row['shapes']}, photos {row['photos']}", flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--max_proposals", type=int, default=2000)
    p.add_argument("--backbone", default="mobilenet_v2")
    p.add_argument("--rcnn_proposals", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--shapes_images", type=int, default=30)
    p.add_argument("--skip", nargs="*", default=(), choices=("pipeline", "rcnn", "recall"))
    p.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results", "proposals_scaling.json"))
    args = p.parse_args(argv)
    results = {"cpu_count": os.cpu_count(), "load_average_1min_at_start": round(os.getloadavg()[0], 2)}
    if "recall" not in args.skip:
        results["recall"] = bench_recall(args.shapes_images, args.max_proposals)
    if "pipeline" not in args.skip:
        results["pipeline"] = bench_pipeline(args.images, (1, 2), args.max_proposals)
    if "rcnn" not in args.skip:
        results["rcnn_vs_fast_rcnn"] = bench_rcnn_vs_fast(args.backbone, args.rcnn_proposals, args.repeats)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
