"""Trains the single-stage detectors on ``shapes`` for a fixed CPU budget and
reports COCO AP / AP50 and inference time.

    python benchmarks/train_single_stage.py --budget 300 --models ssd yolo_v1 yolo_multiscale sliding_window

For each model: train from scratch (``tiny`` backbone by default, no
pretrained weights) on the ``shapes`` train split (``--augment``: the
data module's default or SSD augmentation) until ``--budget`` seconds
of wall time have passed (checked after every batch), evaluate on the
validation split with ``keras_det.metrics.COCOEvaluator`` and time inference
at batch 1 (median over ``--timing-runs``; backbone + head + decoding + NMS,
one compiled ``tf.function``). Results go to
``benchmarks/results/single_stage.json`` and a markdown table on stdout.

This is a skeleton for comparing the systems under one budget, not a tuned
benchmark: the numbers depend on the budget, the machine and its load.
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_det import data as kd_data  # noqa: E402
from keras_det.metrics import COCOEvaluator  # noqa: E402
from keras_det.models.sliding_window import SlidingWindowDetector  # noqa: E402
from keras_det.models.ssd import SSD  # noqa: E402
from keras_det.models.yolo import YOLO, priors_per_level  # noqa: E402
from keras_det.ops.anchors import kmeans_anchors  # noqa: E402

MODELS = ("ssd", "ssdlite", "yolo_v1", "yolo_multiscale", "sliding_window")
FORMAT = "xyxy"


def build(name, num_classes, image_size, backbone, train_boxes_wh):
    size = (image_size, image_size)
    if name in ("ssd", "ssdlite"):
        return SSD(num_classes, backbone=backbone, image_size=size, head="ssdlite" if name == "ssdlite" else "ssd",
                   extra_filters=128, bounding_box_format=FORMAT)
    if name == "yolo_v1":
        return YOLO(num_classes, backbone=backbone, variant="v1", image_size=size, grid_size=7, head_filters=128,
                    fc_dim=512, bounding_box_format=FORMAT)
    if name == "yolo_multiscale":
        priors = priors_per_level(kmeans_anchors(train_boxes_wh, 9, seed=0))
        return YOLO(num_classes, backbone=backbone, variant="multiscale", image_size=size, priors=priors,
                    head_filters=64, neck_filters=64, bounding_box_format=FORMAT)
    if name == "sliding_window":
        return SlidingWindowDetector(num_classes, backbone=backbone, feature_tap="C3", window_sizes=(16, 32, 64),
                                     aspect_ratios=(0.5, 1.0, 2.0), hidden_dim=64, bounding_box_format=FORMAT)
    raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")


class TimeBudget(keras.callbacks.Callback):
    """Stops training once ``seconds`` of wall time have passed after the
    first step (whose time, mostly graph tracing, is kept apart)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.steps = 0
        self.first_step_seconds = None

    def on_train_begin(self, logs=None):
        self.begin = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        now = time.perf_counter()
        if self.first_step_seconds is None:
            self.first_step_seconds = now - self.begin
            self.start = now
        if now - self.start > self.seconds:
            self.model.stop_training = True


def boxes_wh(dataset):
    wh = []
    for element in dataset:
        b = element["bounding_boxes"]["boxes"].numpy()
        wh.append(b[:, 2:] - b[:, :2])
    wh = np.concatenate(wh)
    return wh[(wh > 0).all(-1)]


def evaluate(model, dataset):
    evaluator = COCOEvaluator(bounding_box_format=FORMAT)
    for batch in dataset:
        evaluator.update_state(batch["bounding_boxes"], model.predict_on_batch(batch["images"]))
    return evaluator.result()


def time_inference(model, image, runs):
    infer = tf.function(lambda x: model(x, training=False))
    for _ in range(3):
        tf.nest.map_structure(lambda t: t.numpy(), infer(image))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), infer(image))
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per model")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--val-images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--augment", default="default", choices=("none", "default", "ssd"),
                        help="training augmentation: keras_det.data.default_augmentation / ssd_augmentation")
    parser.add_argument("--timing-runs", type=int, default=30)
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "single_stage.json"))
    args = parser.parse_args(argv)

    common = dict(bounding_box_format=FORMAT, image_size=args.image_size, with_masks=False)
    train, info = kd_data.load("shapes", "train", num_images=args.train_images, with_info=True, **common)
    val = kd_data.load("shapes", "validation", num_images=args.val_images, **common)
    num_classes = len(info.class_names)
    augment = {
        "none": None,
        "default": lambda: kd_data.default_augmentation(args.image_size, FORMAT, seed=0),
        "ssd": lambda: kd_data.ssd_augmentation(args.image_size, FORMAT, seed=0),
    }[args.augment]
    train_batches = kd_data.pipeline(
        train, args.batch_size, augment=augment() if augment else None, max_boxes=16, shuffle=512, cache=True, seed=0,
    ).repeat()
    val_batches = kd_data.batch(val, args.batch_size, max_boxes=16)
    wh = boxes_wh(train)
    image = tf.zeros((1, args.image_size, args.image_size, 3))

    results = []
    for name in args.models:
        keras.utils.set_random_seed(0)
        model = build(name, num_classes, args.image_size, args.backbone, wh)
        model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
        budget = TimeBudget(args.budget)
        history = model.fit(train_batches, steps_per_epoch=50, epochs=100000, callbacks=[budget], verbose=0).history
        train_seconds = time.perf_counter() - budget.start
        metrics = evaluate(model, val_batches)
        row = {
            "model": name,
            "train_seconds": round(train_seconds, 1),
            "train_steps": budget.steps,
            "first_step_seconds": round(budget.first_step_seconds, 1),
            "final_loss": float(history["loss"][-1]),
            "AP": float(metrics["AP"]),
            "AP50": float(metrics["AP50"]),
            "infer_ms_per_image": round(time_inference(model, image, args.timing_runs), 2),
            "params": int(model.count_params()),
        }
        results.append(row)
        print(json.dumps(row), flush=True)

    payload = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__},
        "settings": vars(args),
        "results": results,
    }
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(payload, f, indent=2)
    print("\n| model | steps | train s | AP | AP50 | ms/image (batch 1) | params |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['train_steps']} | {r['train_seconds']} | {r['AP']:.3f} | {r['AP50']:.3f} "
              f"| {r['infer_ms_per_image']} | {r['params']:,} |")


if __name__ == "__main__":
    main()
