"""Two-stage detectors: accuracy after a fixed CPU budget, training and inference speed.

    python benchmarks/train_two_stage.py [--budget 600] [--torch-python /path/to/python]

1. Faster R-CNN (the demo configuration: tiny backbone, stride-8 features)
   trained on `shapes` (128 px) for ``--budget`` seconds of process CPU time
   (all threads; 600 CPU-s ≈ 5 minutes on 2 idle cores); prints
   COCO AP/AP50 on the 200-image test split and training images/s; then the
   same for Fast R-CNN on selective-search (fast) proposals (300 per image,
   computed first; their time per image is reported separately).
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


def selective_search(split, num_images, max_proposals):
    """``{image_id: {"boxes", "image_shape"}}`` from selective search (fast) on a shapes split."""
    from keras_det import data
    from keras_det.proposals import propose

    out, start = {}, time.perf_counter()
    for element in data.load("shapes", split, num_images=num_images, with_masks=False):
        image = element["images"].numpy()
        boxes = propose(image, "selective_search_fast", max_proposals=max_proposals, min_size=4)
        out[str(int(element["image_id"]))] = {"boxes": boxes, "image_shape": image.shape[:2]}
    seconds = time.perf_counter() - start
    counts = [len(v["boxes"]) for v in out.values()]
    return out, {"seconds_per_image": seconds / num_images, "median_proposals": float(np.median(counts))}


def train_and_evaluate(budget, model_name="faster_rcnn", proposals=None):
    import keras

    from keras_det import data
    from keras_det.cli import DEMO_MODEL, evaluate_model
    from keras_det.models import FastRCNN, FasterRCNN

    keras.utils.set_random_seed(0)
    batch_size = 8
    train = data.load("shapes", "train", num_images=1000, with_masks=False)
    test = data.load("shapes", "test", num_images=200, with_masks=False)
    if model_name == "fast_rcnn":
        train = data.join_proposals(train, proposals["train"], "xyxy", num_proposals=300)
        test = data.join_proposals(test, proposals["test"], "xyxy", num_proposals=300)
        rpn_args = ("anchor_sizes", "aspect_ratios", "rpn_filters") + tuple(k for k in DEMO_MODEL if k.startswith("rpn_"))
        kwargs = {k: v for k, v in DEMO_MODEL.items() if k not in rpn_args}
        model = FastRCNN(5, bounding_box_format="xyxy", **kwargs)
    else:
        model = FasterRCNN(5, bounding_box_format="xyxy", **DEMO_MODEL)
    train = data.pipeline(train, batch_size, shuffle=1000, cache=True, drop_remainder=True, seed=0).repeat()
    test = data.batch(test, 16)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(train, steps_per_epoch=5, epochs=1, verbose=0)  # trace + fill the cache outside the clock
    # The budget is process CPU time (all threads), not wall time, so that a
    # busy machine does not shrink it.
    steps, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.process_time() - cpu_start < budget:
        model.fit(train, steps_per_epoch=50, epochs=1, verbose=0)
        steps += 50
    seconds = time.perf_counter() - start
    if model_name == "fast_rcnn":
        from keras_det.metrics import COCOEvaluator

        evaluator = COCOEvaluator(bounding_box_format="xyxy")
        for batch in test:
            evaluator.update_state(batch["bounding_boxes"], model.predict_on_batch({"images": batch["images"], "proposals": batch["proposals"]}))
        metrics = {k: float(v) for k, v in evaluator.result().items()}
    else:
        metrics = evaluate_model(model, test)
    return {
        "budget_cpu_s": budget,
        "wall_s": seconds,
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
    # Without a passive OpenMP wait policy, torch's 2 spinning threads stall
    # for seconds whenever another process holds a core.
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    out = subprocess.run(
        [python, "-c", TORCH_SCRIPT, str(os.cpu_count() or 1), str(runs)], capture_output=True, text=True, timeout=1800, env=env
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=600, help="training budget in process CPU seconds")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--torch-python", default=os.environ.get("KERAS_DET_TORCH_PYTHON"))
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "train_two_stage.json"))
    args = parser.parse_args(argv)

    results = {"cpu_count": os.cpu_count()}
    if not args.skip_train:
        results["faster_rcnn_shapes"] = train_and_evaluate(args.budget)
        ss_train, ss_info = selective_search("train", 1000, 300)
        ss_test, _ = selective_search("test", 200, 300)
        results["selective_search"] = ss_info
        print(f"selective search (fast) on shapes: {1000 * ss_info['seconds_per_image']:.0f} ms/image, "
              f"median {ss_info['median_proposals']:.0f} proposals")
        results["fast_rcnn_selective_search_shapes"] = train_and_evaluate(
            args.budget, "fast_rcnn", {"train": ss_train, "test": ss_test}
        )
        for key, name in (("faster_rcnn_shapes", "Faster R-CNN"), ("fast_rcnn_selective_search_shapes", "Fast R-CNN + selective search")):
            r = results[key]
            print(f"{name} on shapes after {r['budget_cpu_s']:.0f} CPU-s ({r['wall_s']:.0f} s wall): AP {r['AP']:.3f} "
                  f"AP50 {r['AP50']:.3f}, {r['train_images_per_s']:.1f} training images/s ({r['steps']} steps)")
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
