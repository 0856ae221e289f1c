"""Two-stage detectors: accuracy after a fixed CPU budget, training and inference speed.

    python benchmarks/train_two_stage.py [--budget 300] [--torch-python /path/to/python]

1. Faster R-CNN (the demo configuration: tiny backbone, stride-8 features)
   trained on `shapes` (128 px) for ``--budget`` seconds of wall time; prints
   COCO AP/AP50 on the 200-image test split and training images/s.
2. Inference ms/image (median of ``--runs`` after warm-up, batch 1, 320×320,
   RPN + RoI head + decoding + NMS included) of keras_det's Faster R-CNN on a
   MobileNetV3-Large backbone configured like torchvision's
   ``fasterrcnn_mobilenet_v3_large_320_fpn`` (150 test proposals), next to that
   torchvision model measured in the same run (a subprocess of the Python
   given by ``--torch-python``, since keras_det's environment has no torch;
   weights random on both sides — speed does not depend on them).

Results go to ``benchmarks/results/train_two_stage.json``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

TORCH_SCRIPT = textwrap.dedent(
    """
    import json, statistics, sys, time
    import torch, torchvision
    torch.set_num_threads(int(sys.argv[1]))
    runs = int(sys.argv[2])
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None, num_classes=91).eval()
    x = [torch.rand(3, 320, 320)]
    with torch.no_grad():
        for _ in range(5):
            model(x)
        times = []
        for _ in range(runs):
            t = time.perf_counter(); model(x); times.append(time.perf_counter() - t)
    print(json.dumps({"ms": 1000 * statistics.median(times), "torch": torch.__version__,
                      "torchvision": torchvision.__version__}))
    """
)


def median_ms(fn, runs, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def train_and_evaluate(budget):
    import keras

    from keras_det import data
    from keras_det.cli import DEMO_MODEL, evaluate_model
    from keras_det.models import FasterRCNN

    keras.utils.set_random_seed(0)
    batch_size = 8
    train = data.pipeline(
        data.load("shapes", "train", num_images=1000, with_masks=False), batch_size, shuffle=1000, cache=True, drop_remainder=True, seed=0
    ).repeat()
    test = data.batch(data.load("shapes", "test", num_images=200, with_masks=False), 16)
    model = FasterRCNN(5, bounding_box_format="xyxy", **DEMO_MODEL)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(train, steps_per_epoch=5, epochs=1, verbose=0)  # trace + fill the cache outside the clock
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        model.fit(train, steps_per_epoch=50, epochs=1, verbose=0)
        steps += 50
    seconds = time.perf_counter() - start
    metrics = evaluate_model(model, test)
    return {
        "budget_s": budget,
        "steps": steps,
        "train_images_per_s": steps * batch_size / seconds,
        "AP": metrics["AP"],
        "AP50": metrics["AP50"],
    }


def inference_speed(runs):
    import tensorflow as tf

    from keras_det.models import FasterRCNN

    model = FasterRCNN(
        91,
        backbone="mobilenet_v3_large",
        feature_tap="C4",
        anchor_sizes=(32, 64, 128, 256, 512),
        rpn_pre_nms_topk_test=150,
        rpn_post_nms_topk_test=150,
        bounding_box_format="xyxy",
    )
    image = tf.random.uniform([1, 320, 320, 3], 0, 255)
    predict = tf.function(lambda x: model(x, training=False))
    return median_ms(lambda: predict(image)["boxes"].numpy(), runs)


def torchvision_speed(python, runs):
    out = subprocess.run(
        [python, "-c", TORCH_SCRIPT, str(os.cpu_count() or 1), str(runs)], capture_output=True, text=True, timeout=1800
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=300, help="training wall-clock seconds")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--torch-python", default=os.environ.get("KERAS_DET_TORCH_PYTHON"))
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "train_two_stage.json"))
    args = parser.parse_args(argv)

    results = {"cpu_count": os.cpu_count()}
    if not args.skip_train:
        results["faster_rcnn_shapes"] = train_and_evaluate(args.budget)
        r = results["faster_rcnn_shapes"]
        print(f"Faster R-CNN on shapes after {r['budget_s']:.0f} s: AP {r['AP']:.3f} AP50 {r['AP50']:.3f}, "
              f"{r['train_images_per_s']:.1f} training images/s ({r['steps']} steps)")
    ours = inference_speed(args.runs)
    results["inference_ms_320"] = {"keras_det_faster_rcnn_mobilenet_v3_large": ours}
    print(f"keras_det Faster R-CNN MobileNetV3-Large 320x320: {ours:.1f} ms/image (median of {args.runs})")
    if args.torch_python:
        tv = torchvision_speed(args.torch_python, args.runs)
        results["inference_ms_320"]["torchvision_fasterrcnn_mobilenet_v3_large_320_fpn"] = tv
        if "ms" in tv:
            print(f"torchvision fasterrcnn_mobilenet_v3_large_320_fpn: {tv['ms']:.1f} ms/image; "
                  f"ratio keras_det / torchvision = {ours / tv['ms']:.2f}")
        else:
            print(f"torchvision: {tv['error']}")
    else:
        print("torchvision: skipped (pass --torch-python with a Python that has torch + torchvision)")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
