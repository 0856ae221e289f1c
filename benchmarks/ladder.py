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

    from keras_det.proposals import propose

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


def fmt_seconds(v):
    return "—" if v is None else (f"{v:.3f} s" if v < 1 else f"{v:.2f} s")


def fmt_speedup(v):
    return "—" if v is None else f"{v:.0f}x" if v >= 10 else f"{v:.1f}x"


def table(result):
    """The ladder as markdown, in the seed's layout (our numbers, then the seed's)."""
    ours, seed = result["table"], SEED
    budget = result["settings"]["budget"]
    cols = " | ".join(zoo.LABELS[n] for n in LADDER)
    fmt_s, fmt_x = fmt_seconds, fmt_speedup

    lines = [
        f"| this machine ({result['machine']['cpus']} CPU cores, shapes 128 px, tiny backbone) | {cols} |",
        "|---|---|---|---|",
        "| Test time per image (with proposals) | " + " | ".join(fmt_s(ours["test_s_with_proposals"][n]) for n in LADDER) + " |",
        "| (Speedup) | " + " | ".join(fmt_x(ours["speedup_with_proposals"][n]) for n in LADDER) + " |",
        "| Test time per image (without proposals) | "
        + " | ".join(fmt_s(ours["test_s_without_proposals"][n]) for n in LADDER) + " |",
        "| (Speedup) | " + " | ".join(fmt_x(ours["speedup_without_proposals"][n]) for n in LADDER) + " |",
        f"| AP50 (%) on shapes test, after {budget:g} CPU-s of training | "
        + " | ".join(f"{100 * ours['AP50'][n]:.1f}" for n in LADDER) + " |",
        "| AP (%, IoU 0.5:0.95) | " + " | ".join(f"{100 * ours['AP'][n]:.1f}" for n in LADDER) + " |",
        "| Training images / s | " + " | ".join(f"{ours['train_images_per_s'][n]:.1f}" for n in LADDER) + " |",
        "",
        f"| the seed (VGG16, GPU, VOC 2007) | {cols} |",
        "|---|---|---|---|",
        "| Test time per image (with proposals) | " + " | ".join(fmt_s(seed["test_s_with_proposals"].get(n)) for n in LADDER) + " |",
        "| (Speedup) | " + " | ".join(fmt_x(seed["speedup_with_proposals"].get(n)) for n in LADDER) + " |",
        "| Test time per image (without proposals) | "
        + " | ".join(fmt_s(seed["test_s_without_proposals"].get(n)) for n in LADDER) + " |",
        "| (Speedup) | " + " | ".join(fmt_x(seed["speedup_without_proposals"].get(n)) for n in LADDER) + " |",
        "| mAP (VOC 2007) | " + " | ".join(f"{seed['mAP_voc2007'][n]:.1f}" for n in LADDER) + " |",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="training budget per detector, process CPU seconds")
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=200)
    parser.add_argument("--timing-images", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2, help="timing passes over the timing images")
    parser.add_argument("--steps-per-call", type=int, default=50, help="training steps between budget checks")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

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
    times = time_ladder(models, task, min(args.timing_images, args.test_images), args.passes)
    ss = statistics.median(times["selective_search"])
    without = {n: statistics.median(times[n]) for n in LADDER}
    with_props = {n: without[n] + (ss if n in zoo.PROPOSAL_DETECTORS else 0.0) for n in LADDER}
    result = {
        "machine": harness.machine_info(),
        "settings": vars(args),
        "proposals": task.proposal_info,
        "table": {
            "test_s_with_proposals": with_props,
            "speedup_with_proposals": {n: with_props["rcnn"] / with_props[n] for n in LADDER},
            "test_s_without_proposals": without,
            "speedup_without_proposals": {n: without["rcnn"] / without[n] for n in LADDER},
            "selective_search_s": ss,
            "AP50": {n: rows[n]["AP50"] for n in LADDER},
            "AP": {n: rows[n]["AP"] for n in LADDER},
            "train_images_per_s": {n: rows[n]["train_images_per_s"] for n in LADDER},
        },
        "per_image_s": times,
        "models": rows,
        "seed": SEED,
        "total_wall_s": time.perf_counter() - start,
    }
    harness.write_json(args.output, result)
    print()
    print(table(result))
    return result


if __name__ == "__main__":
    main()
