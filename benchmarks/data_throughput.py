"""Input-pipeline throughput of keras_det.data (images/s, median of repeats).

Measures:
  * ``shapes`` generation (NumPy/OpenCV, images/s) and iteration of
    ``load("shapes")`` batched, with and without augmentation;
  * a COCO folder of ~200 JPEGs (written to a temp dir from scikit-image
    photos) read with ``load(folder)``: plain, cached, augmented; and, as the
    in-run reference, a bare ``tf.data`` read + ``decode_jpeg`` of the same
    files (the ratio shows the reader's overhead).

Usage::

    python benchmarks/data_throughput.py [--repeats 3] [--images 200] [--json out.json]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_det import data as kd  # noqa: E402
from keras_det.data import shapes  # noqa: E402

BATCH = 32
SIZE = 128


def _rate(make_dataset, num_images, repeats):
    """Median images/s over ``repeats`` full passes (after one warm-up pass)."""
    ds = make_dataset()
    for _ in ds:  # warm-up: tracing, cache fill
        pass
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in ds:
            pass
        rates.append(num_images / (time.perf_counter() - start))
    return statistics.median(rates)


def _write_coco(root, num_images):
    """A COCO folder of ``num_images`` JPEGs (photos resized to 160-480 px), random boxes."""
    import skimage.data

    photos = [getattr(skimage.data, n)() for n in ("chelsea", "astronaut", "coffee", "rocket")]
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "images", "train"))
    os.makedirs(os.path.join(root, "annotations"))
    images, anns = [], []
    for i in range(num_images):
        p = photos[i % len(photos)]
        h, w = (int(v) for v in rng.integers(160, 480, 2))
        img = cv2.resize(p, (w, h), interpolation=cv2.INTER_AREA)
        name = f"{i:06d}.jpg"
        cv2.imwrite(os.path.join(root, "images", "train", name), img[..., ::-1])
        images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
        for _ in range(int(rng.integers(1, 8))):
            bw, bh = float(rng.uniform(10, w / 2)), float(rng.uniform(10, h / 2))
            x, y = float(rng.uniform(0, w - bw)), float(rng.uniform(0, h - bh))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": int(rng.integers(1, 4)),
                    "bbox": [x, y, bw, bh],
                    "iscrowd": 0,
                    "area": bw * bh,
                }
            )
    cats = [{"id": k, "name": n} for k, n in ((1, "a"), (2, "b"), (3, "c"))]
    with open(os.path.join(root, "annotations", "instances_train.json"), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return [os.path.join(root, "images", "train", im["file_name"]) for im in images]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=200, help="JPEGs in the temp COCO folder")
    parser.add_argument("--shapes-images", type=int, default=1000)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    results = {
        "cpus": os.cpu_count(),
        "batch_size": BATCH,
        "image_size": SIZE,
        "repeats": args.repeats,
    }

    n = args.shapes_images
    gen = []
    for r in range(args.repeats):
        start = time.perf_counter()
        shapes.generate(n, SIZE, seed=1000 + r, split="bench")
        gen.append(n / (time.perf_counter() - start))
    results["shapes_generate"] = statistics.median(gen)

    def shapes_ds(augment):
        ds = kd.load("shapes", "train", "xyxy", num_images=n, image_size=SIZE)
        aug = kd.default_augmentation(SIZE, "xyxy", seed=0) if augment else None
        return kd.pipeline(ds, BATCH, augment=aug, image_size=SIZE, bounding_box_format="xyxy")

    results["shapes_plain"] = _rate(lambda: shapes_ds(False), n, args.repeats)
    results["shapes_augmented"] = _rate(lambda: shapes_ds(True), n, args.repeats)

    with tempfile.TemporaryDirectory() as root:
        files = _write_coco(root, args.images)
        m = len(files)

        def decode_only():
            ds = tf.data.Dataset.from_tensor_slices(files).map(
                lambda f: tf.image.resize(
                    tf.cast(tf.io.decode_jpeg(tf.io.read_file(f), 3), tf.float32), (SIZE, SIZE)
                ),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
            return ds.batch(BATCH).prefetch(tf.data.AUTOTUNE)

        def coco(cache, augment):
            ds = kd.load(root, "train", "xyxy")
            aug = kd.default_augmentation(SIZE, "xyxy", seed=0) if augment else None
            return kd.pipeline(
                ds, BATCH, augment=aug, image_size=SIZE, bounding_box_format="xyxy", cache=cache
            )

        start = time.perf_counter()
        kd.load(root, "train", "xyxy")
        results["coco_load_seconds"] = time.perf_counter() - start
        results["decode_only_reference"] = _rate(decode_only, m, args.repeats)
        results["coco_plain"] = _rate(lambda: coco(False, False), m, args.repeats)
        results["coco_cached"] = _rate(lambda: coco(True, False), m, args.repeats)
        results["coco_augmented"] = _rate(lambda: coco(False, True), m, args.repeats)
        results["coco_cached_augmented"] = _rate(lambda: coco(True, True), m, args.repeats)

    ref = results["decode_only_reference"]
    print(f"CPUs: {results['cpus']}, batch {BATCH}, output {SIZE}x{SIZE}, median of {args.repeats}")
    print(f"{'pipeline':<34}{'images/s':>10}{'vs decode-only':>16}")
    for key, value in results.items():
        if key in ("cpus", "batch_size", "image_size", "repeats"):
            continue
        if key == "coco_load_seconds":
            print(f"{'coco annotation parse + checks (s)':<34}{value:>10.3f}")
            continue
        ratio = f"{value / ref:>16.2f}" if key.startswith(("coco", "decode")) else ""
        print(f"{key:<34}{value:>10.0f}{ratio}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
