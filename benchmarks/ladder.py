"""The seed's R-CNN → Fast R-CNN → Faster R-CNN table, measured on this machine.

    python benchmarks/ladder.py [--budget 300]        # or: keras-det bench ladder

Same backbone (keras_det's ``"tiny"`` CNN, from scratch), same images
(``shapes``, 128 px: 1,000 train / 200 test), same training budget in
process CPU seconds for the three detectors (R-CNN: two thirds fine-tuning,
one third SVMs + box regressors). R-CNN and Fast R-CNN use the same 300
selective-search (fast) proposals per image, computed before training;
Faster R-CNN proposes with its RPN.

Test time per image: batch 1 on ``--timing-images`` test images, each image
through all three detectors and selective search back to back (so that the
machine's load hits all alike), ``--passes`` times; medians. "With
proposals" adds the selective-search time of the image to R-CNN's and Fast
R-CNN's; Faster R-CNN's proposals are part of its forward pass. Speed-ups are
ratios of medians relative to R-CNN. AP50 / AP: COCO evaluation of the 200
test images.

The seed's numbers (VGG16 on a GPU, PASCAL VOC 2007; Girshick, "Fast R-CNN",
ICCV 2015, Table 4, and Ren et al., "Faster R-CNN", NIPS 2015, as summarised
in Stanford CS231n 2016, lecture 8) are printed beside ours.

A second, speed-only table puts the three at the seed's scale on this CPU
(`seed_scale_speed`: MobileNetV2, 480×640 real photos, up to 2,000
selective-search proposals; ``--part shapes`` skips it).

Writes ``benchmarks/results/ladder.json`` and prints the table.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import zoo  # noqa: E402

LADDER = ("rcnn", "fast_rcnn", "faster_rcnn")
DEFAULT_OUTPUT = os.path.join(harness.RESULTS, "ladder.json")
SEED = {
    "source": ("Girshick, Fast R-CNN (ICCV 2015) Table 4; Ren et al., Faster R-CNN (NIPS 2015); as tabulated in "
               "Stanford CS231n (2016) lecture 8. VGG16, one GPU, PASCAL VOC 2007 test."),
    "test_s_with_proposals": {"rcnn": 50.0, "fast_rcnn": 2.0, "faster_rcnn": 0.2},
    "speedup_with_proposals": {"rcnn": 1.0, "fast_rcnn": 25.0, "faster_rcnn": 250.0},
    "test_s_without_proposals": {"rcnn": 47.0, "fast_rcnn": 0.32},
    "speedup_without_proposals": {"rcnn": 1.0, "fast_rcnn": 146.0},
    "mAP_voc2007": {"rcnn": 66.0, "fast_rcnn": 66.9, "faster_rcnn": 66.9},
}


def time_ladder(models, task, num_images, passes):
    """Per-image test times (s) of selective search and of each model, interleaved image by image."""
    import tensorflow as tf

    from keras_det.region_proposals import propose

    fns = {name: tf.function(lambda x, m=model: m(x, training=False)) for name, model in models.items()}
    rows = list(task.batches("rcnn", training=False).unbatch().batch(1).take(num_images))
    plain = [r["images"] for r in rows]
    for name, fn in fns.items():  # tracing outside the clock
        harness.fetch(fn(zoo.model_inputs(rows[0]) if name in zoo.PROPOSAL_DETECTORS else plain[0]))
    times = {"selective_search": [], **{name: [] for name in fns}}
    for _ in range(passes):
        for row, image in zip(rows, plain):
            start = time.perf_counter()
            propose(image[0].numpy(), "selective_search_fast", max_proposals=zoo.NUM_PROPOSALS, min_size=4)
            times["selective_search"].append(time.perf_counter() - start)
            for name, fn in fns.items():
                x = zoo.model_inputs(row) if name in zoo.PROPOSAL_DETECTORS else image
                start = time.perf_counter()
                harness.fetch(fn(x))
                times[name].append(time.perf_counter() - start)
    return times


SCALE_PHOTOS = ("astronaut", "coffee", "rocket")


def ladder_rows(times):
    """The seed's rows from per-image times (s): medians, + selective search for R-CNN / Fast R-CNN, speed-ups."""
    ss = statistics.median(times["selective_search"])
    without = {n: statistics.median(times[n]) for n in LADDER}
    with_p = {n: without[n] + (ss if n in zoo.PROPOSAL_DETECTORS else 0.0) for n in LADDER}
    return {
        "test_s_with_proposals": with_p,
        "speedup_with_proposals": {n: with_p["rcnn"] / with_p[n] for n in LADDER},
        "test_s_without_proposals": without,
        "speedup_without_proposals": {n: without["rcnn"] / without[n] for n in LADDER},
        "selective_search_s": ss,
    }


def seed_scale_speed(num_proposals=2000, image_hw=(480, 640), backbone="mobilenet_v2", passes=1):
    """Test times at the seed's scale: real photos, an ImageNet backbone, 2,000 proposals (speed only).

    The three detectors are built with ``backbone`` (random weights: speed
    does not depend on them) for ``image_hw`` photos (``skimage.data``,
    resized): R-CNN warps each of the ``num_proposals`` selective-search
    proposals to 224×224 (the paper: 2,000 warps of 227×227), Fast R-CNN
    pools the same proposals from the stride-16 C4 map, Faster R-CNN keeps
    the paper's 6,000 → 300 RPN proposals at test time. One warm-up on the
    first photo, then each photo through selective search and the three
    detectors back to back, ``passes`` times.

    Returns:
        dict with the settings, per-image times and the ladder rows (s).
    """
    import cv2
    import numpy as np
    import skimage.data
    import tensorflow as tf

    from keras_det import models
    from keras_det.region_proposals import propose

    h, w = image_hw
    photos = [cv2.resize(getattr(skimage.data, n)(), (w, h), interpolation=cv2.INTER_AREA).astype("float32")
              for n in SCALE_PHOTOS]
    built = {
        "rcnn": models.RCNN(20, backbone=backbone, bounding_box_format="yxyx", inference_chunk=100),
        "fast_rcnn": models.FastRCNN(20, backbone=backbone, feature_tap="C4", bounding_box_format="yxyx"),
        "faster_rcnn": models.FasterRCNN(20, backbone=backbone, feature_tap="C4", rpn_pre_nms_topk_test=6000,
                                         rpn_post_nms_topk_test=300, bounding_box_format="yxyx"),
    }
    fns = {n: tf.function(lambda x, m=m: m(x, training=False)) for n, m in built.items()}

    def inputs(photo):
        start = time.perf_counter()
        boxes = propose(photo, "selective_search_fast", max_proposals=num_proposals)
        seconds = time.perf_counter() - start
        padded = np.zeros((1, num_proposals, 4), np.float32)
        padded[0, : len(boxes)] = boxes
        image = tf.constant(photo[None])
        return seconds, len(boxes), {"images": image, "proposals": tf.constant(padded)}, image

    _, _, with_props, image = inputs(photos[0])
    for n, fn in fns.items():  # tracing + warm-up outside the clock
        harness.fetch(fn(with_props if n in zoo.PROPOSAL_DETECTORS else image))
    times = {"selective_search": [], **{n: [] for n in fns}}
    counts = []
    ticks = harness.cpu_ticks()
    for _ in range(passes):
        for photo in photos:
            seconds, count, with_props, image = inputs(photo)
            times["selective_search"].append(seconds)
            counts.append(count)
            for n, fn in fns.items():
                start = time.perf_counter()
                harness.fetch(fn(with_props if n in zoo.PROPOSAL_DETECTORS else image))
                times[n].append(time.perf_counter() - start)
    return {
        "settings": {"backbone": backbone, "image_hw": list(image_hw), "photos": list(SCALE_PHOTOS),
                     "max_proposals": num_proposals, "passes": passes},
        "median_proposals": float(np.median(counts)),
        "cpu_steal_percent": harness.steal_percent(ticks, harness.cpu_ticks()),
        "params": {n: int(m.count_params()) for n, m in built.items()},
        **ladder_rows(times),
        "per_image_s": times,
    }


def fmt_seconds(v):
    return "—" if v is None else (f"{v:.3f} s" if v < 1 else f"{v:.2f} s")


def fmt_speedup(v):
    return "—" if v is None else f"{v:.0f}x" if v >= 10 else f"{v:.1f}x"


def _time_rows(t):
    """The seed's four timing rows from a dict with ``test_s_*`` / ``speedup_*`` per detector (missing: —)."""
    rows = []
    for kind in ("with", "without"):
        rows.append(f"| Test time per image ({kind} proposals) | "
                    + " | ".join(fmt_seconds(t[f"test_s_{kind}_proposals"].get(n)) for n in LADDER) + " |")
        rows.append("| (Speedup) | " + " | ".join(fmt_speedup(t[f"speedup_{kind}_proposals"].get(n)) for n in LADDER) + " |")
    return rows


def table(result):
    """The ladder as markdown, in the seed's layout: ours on shapes, ours at the seed's scale, the seed's."""
    ours = result["table"]
    cols = " | ".join(zoo.LABELS[n] for n in LADDER)
    lines = [
        f"| this machine ({result['machine']['cpus']} CPU cores, shapes 128 px, tiny backbone) | {cols} |",
        "|---|---|---|---|",
        *_time_rows(ours),
        f"| AP50 (%) on shapes test, after {result['settings']['budget']:g} CPU-s of training | "
        + " | ".join(f"{100 * ours['AP50'][n]:.1f}" for n in LADDER) + " |",
        "| AP (%, IoU 0.5:0.95) | " + " | ".join(f"{100 * ours['AP'][n]:.1f}" for n in LADDER) + " |",
        "| Training images / s | " + " | ".join(f"{ours['train_images_per_s'][n]:.1f}" for n in LADDER) + " |",
    ]
    scale = result.get("seed_scale")
    if scale:
        st = scale["settings"]
        lines += [
            "",
            f"| this machine at the seed's scale ({st['backbone']}, {st['image_hw'][0]}×{st['image_hw'][1]} photos, "
            f"≤{st['max_proposals']} proposals; speed only) | {cols} |",
            "|---|---|---|---|",
            *_time_rows(scale),
        ]
    lines += [
        "",
        f"| the seed (VGG16, GPU, VOC 2007) | {cols} |",
        "|---|---|---|---|",
        *_time_rows(SEED),
        "| mAP (VOC 2007) | " + " | ".join(f"{SEED['mAP_voc2007'][n]:.1f}" for n in LADDER) + " |",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=("shapes", "scale"), default=["shapes", "scale"],
                        help="shapes: train + time on shapes; scale: the seed-scale speed table (a section that is "
                             "not re-measured is kept from --output)")
    parser.add_argument("--budget", type=float, default=300.0, help="training budget per detector, process CPU seconds")
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=200)
    parser.add_argument("--timing-images", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2, help="timing passes over the timing images")
    parser.add_argument("--steps-per-call", type=int, default=50, help="training steps between budget checks")
    parser.add_argument("--scale-proposals", type=int, default=2000, help="scale: proposals per photo")
    parser.add_argument("--scale-image-size", type=int, nargs=2, default=[480, 640], metavar=("H", "W"))
    parser.add_argument("--scale-backbone", default="mobilenet_v2")
    parser.add_argument("--scale-passes", type=int, default=1)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    result = harness.read_json(args.output)
    result.update({"machine": harness.machine_info(), "seed": SEED})
    if "shapes" in args.part:
        result.update(shapes_ladder(args))
        result["settings"] = {k: v for k, v in vars(args).items() if not k.startswith("scale_")}
        harness.write_json(args.output, result)
    if "scale" in args.part:
        scale = seed_scale_speed(args.scale_proposals, tuple(args.scale_image_size), args.scale_backbone, args.scale_passes)
        print(f"seed scale: R-CNN {scale['test_s_without_proposals']['rcnn']:.1f} s/image without proposals, "
              f"selective search {scale['selective_search_s']:.2f} s", flush=True)
        result["seed_scale"] = scale
        harness.write_json(args.output, result)
    if "table" in result:
        print()
        print(table(result))
    return result


def shapes_ladder(args):
    """Trains the three on shapes for the same budget, times them; the ``table``/``models`` sections."""
    start = time.perf_counter()
    task = zoo.ShapesTask(args.train_images, args.test_images, need_proposals=True, need_masks=False)
    print(f"selective search (fast, ≤{zoo.NUM_PROPOSALS}): {task.proposal_info['ms_per_image_median']:.0f} ms/image, "
          f"median {task.proposal_info['median_proposals']:.0f} proposals", flush=True)
    rows, models = {}, {}
    for name in LADDER:
        rows[name], models[name] = zoo.train_on_shapes(name, task, args.budget, steps_per_call=args.steps_per_call)
        r = rows[name]
        print(f"{zoo.LABELS[name]}: {r['steps']} steps in {r['cpu_s']:.0f} CPU-s ({r['wall_s']:.0f} s wall), "
              f"AP {r['AP']:.3f} AP50 {r['AP50']:.3f}", flush=True)
    ticks = harness.cpu_ticks()
    times = time_ladder(models, task, min(args.timing_images, args.test_images), args.passes)
    steal = harness.steal_percent(ticks, harness.cpu_ticks())
    return {
        "timing_cpu_steal_percent": steal,
        "proposals": task.proposal_info,
        "table": {
            **ladder_rows(times),
            "AP50": {n: rows[n]["AP50"] for n in LADDER},
            "AP": {n: rows[n]["AP"] for n in LADDER},
            "train_images_per_s": {n: rows[n]["train_images_per_s"] for n in LADDER},
        },
        "per_image_s": times,
        "models": rows,
        "total_wall_s": time.perf_counter() - start,
    }


if __name__ == "__main__":
    main()
