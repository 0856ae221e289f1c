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

The models, data and budget loop are those of ``zoo.py`` (shared with
``ladder.py`` and ``peers.py``, which supersede this script's tables).

Results go to ``benchmarks/results/train_two_stage.json``.
"""

import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import zoo  # noqa: E402


def train_and_evaluate(name, task, budget):
    """``zoo.train_on_shapes`` (the demo configuration, ``budget`` process CPU-s) as this script's row."""
    row, _ = zoo.train_on_shapes(name, task, budget)
    return {k: row[k] for k in ("budget_cpu_s", "wall_s", "steps", "train_images_per_s", "AP", "AP50")}


def inference_speed(runs):
    """Median ms of keras_det's Faster R-CNN (``zoo.speed_detector``) on a 320×320 image, batch 1."""
    import tensorflow as tf

    model = zoo.speed_detector("faster_rcnn", 91, 320)
    image = tf.random.uniform([1, 320, 320, 3], 0, 255)
    run = harness.timer(tf.function(lambda x: model(x, training=False)), image)
    run(5)
    return statistics.median(run(runs))


def torchvision_speed(python, runs):
    try:
        peer = harness.TorchPeer(python, "fasterrcnn_mobilenet_v3_large_320_fpn", os.cpu_count() or 1, warmup=5)
    except Exception as e:  # noqa: BLE001 - report the peer's failure
        return {"error": str(e)}
    ms = statistics.median(peer.runner("e2e")(runs))
    peer.close()
    return {"ms": ms, "torch": peer.info["torch"], "torchvision": peer.info["torchvision"]}


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
        task = zoo.ShapesTask(1000, 200, need_proposals=True, need_masks=False)
        results["faster_rcnn_shapes"] = train_and_evaluate("faster_rcnn", task, args.budget)
        results["selective_search"] = {"seconds_per_image": task.proposal_info["ms_per_image_median"] / 1000,
                                       "median_proposals": task.proposal_info["median_proposals"]}
        print(f"selective search (fast) on shapes: {task.proposal_info['ms_per_image_median']:.0f} ms/image, "
              f"median {task.proposal_info['median_proposals']:.0f} proposals")
        results["fast_rcnn_selective_search_shapes"] = train_and_evaluate("fast_rcnn", task, args.budget)
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
    harness.write_json(args.output, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
