"""Two revisions of keras_det side by side: fixed-step shapes accuracy and 320-px latency per detector.

    python benchmarks/revisions.py --old 337a6de [--new .] [--steps 150] [--rounds 3]
    keras-det bench revisions --old REV ...

The check a behaviour-preserving refactor needs. ``--old`` is a git revision
(checked out in a temporary worktree) or a folder; ``--new`` a folder (this
checkout by default). Each revision runs in its own processes with its own
``benchmarks/zoo.py`` and ``keras_det`` (``PYTHONPATH`` at its root), so both
sides build the detectors from their own configurations.

* accuracy: per detector, ``keras.utils.set_random_seed(0)``, the revision's
  ``zoo.shapes_detector``, ``--steps`` steps of ``fit`` on ``shapes``
  (the recipe of `zoo.RECIPES`; R-CNN two thirds fine-tuning, one third
  SVMs) and COCO AP / AP50 on the test split. A fixed step count instead of
  the CPU budget of ``peers.py``: the number of steps then does not depend on
  the machine's load; with TensorFlow's deterministic kernels
  (``enable_op_determinism``, off with ``--nondeterministic``) equal code
  gives equal numbers, so a difference is a change of behaviour.
* speed: per detector, the revision's ``zoo.speed_detector`` (320x320,
  91 classes, random weights), batch 1 ``tf.function`` calls with outputs
  fetched; ``--rounds`` rounds, each one process per revision (old, new
  alternating); ratio new / old per round, median over rounds.

Writes ``benchmarks/results/revisions.json`` and prints a markdown table.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUTPUT = os.path.join(HERE, "results", "revisions.json")
DETECTORS = (
    "classify_localize", "sliding_window", "rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn",
    "ssd", "ssdlite", "yolo_v1", "yolo_multiscale",
)


# ---------------------------------------------------------------------------
# Child: runs inside one revision's checkout
# ---------------------------------------------------------------------------


def _child_accuracy(zoo, models, steps, num_train, num_test, seed=0):
    import keras

    task = zoo.ShapesTask(num_train=num_train, num_test=num_test,
                          need_proposals=any(m in zoo.PROPOSAL_DETECTORS for m in models),
                          need_masks="mask_rcnn" in models)
    rows = {}
    for name in models:
        keras.utils.set_random_seed(seed)
        model = zoo.shapes_detector(name, len(task.class_names), task.train_wh)
        recipe = zoo.RECIPES[zoo.FAMILY[name]]
        train = task.batches(name, training=True)
        start = time.perf_counter()
        if name == "rcnn":
            stages = (("finetune", steps * 2 // 3), ("svm", steps - steps * 2 // 3))
        else:
            stages = ((None, steps),)
        for stage, n in stages:
            if stage is not None:
                model.stage = stage
            model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"]))
            history = model.fit(train, epochs=1, steps_per_epoch=n, verbose=0)
        wall = time.perf_counter() - start
        metrics = zoo.evaluate(model, task.batches(name, training=False))
        rows[name] = {"AP": metrics["AP"], "AP50": metrics["AP50"], "final_loss": float(history.history["loss"][-1]),
                      "train_wall_s": wall, "steps": steps}
        print(f"{name}: AP {metrics['AP']:.4f} AP50 {metrics['AP50']:.4f} ({wall:.0f} s)", file=sys.stderr, flush=True)
    return rows


def _child_speed(zoo, models, warmup, runs):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    rows = {}
    for name in models:
        model = zoo.speed_detector(name)
        image = tf.constant(rng.uniform(0, 255, (1, 320, 320, 3)).astype("float32"))
        inputs = image
        if name in zoo.PROPOSAL_DETECTORS:
            x, y = np.sort(rng.uniform(0, 320, (2, 200, 2)), axis=-1)  # xyxy proposals (zoo.FORMAT)
            boxes = np.stack([x[:, 0], y[:, 0], x[:, 1] + 1, y[:, 1] + 1], -1)[None]
            inputs = {"images": image, "proposals": tf.constant(boxes.astype("float32"))}
        fn = tf.function(lambda x: model(x, training=False))
        for _ in range(warmup):
            tf.nest.map_structure(lambda t: t.numpy(), fn(inputs))
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), fn(inputs))
            times.append(1000 * (time.perf_counter() - start))
        rows[name] = statistics.median(times)
        print(f"{name}: {rows[name]:.1f} ms", file=sys.stderr, flush=True)
    return rows


def child(args):
    root = os.path.abspath(args.root)
    sys.path.insert(0, os.path.join(root, "benchmarks"))
    sys.path.insert(0, root)
    import keras_det
    import zoo

    if args.child == "accuracy" and not args.nondeterministic:
        import tensorflow as tf

        # Deterministic kernels and tf.data order: equal code then gives equal numbers, so any
        # difference between the revisions is a change of behaviour, not run-to-run noise.
        tf.config.experimental.enable_op_determinism()

    if not os.path.abspath(keras_det.__file__).startswith(root + os.sep):
        raise SystemExit(f"revisions: keras_det imported from {keras_det.__file__}, not from {root}")
    if args.child == "accuracy":
        out = _child_accuracy(zoo, args.models, args.steps, args.train_images, args.test_images, args.seed)
    else:
        out = _child_speed(zoo, args.models, args.warmup, args.runs)
    with open(args.child_output, "w") as f:
        json.dump(out, f)


# ---------------------------------------------------------------------------
# Parent: prepares the checkouts, alternates the processes, pairs the results
# ---------------------------------------------------------------------------


def checkout(revision, work):
    """A folder holding ``revision``: the folder itself, or a detached git worktree of it."""
    if os.path.isdir(revision):
        return os.path.abspath(revision)
    path = os.path.join(work, "old")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-f", path, revision], check=True,
                   stdout=subprocess.DEVNULL)
    return path


def run_child(root, kind, args, work, tag):
    output = os.path.join(work, f"{tag}.json")
    command = [sys.executable, os.path.abspath(__file__), "--child", kind, "--root", root, "--child-output", output,
               "--models", *args.models, "--steps", str(args.steps), "--train-images", str(args.train_images),
               "--test-images", str(args.test_images), "--warmup", str(args.warmup), "--runs", str(args.runs),
               "--seed", str(args.seed)]
    if args.nondeterministic:
        command.append("--nondeterministic")
    env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(command, check=True, env=env, cwd=root)
    with open(output) as f:
        return json.load(f)


def table(result):
    lines = ["| detector | AP old | AP new | AP50 old | AP50 new | loss old | loss new | ms old | ms new | new/old |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    acc, speed = result.get("accuracy", {}), result.get("speed", {})
    for name in result["settings"]["models"]:
        a_old, a_new = acc.get("old", {}).get(name, {}), acc.get("new", {}).get(name, {})
        s = speed.get(name, {})

        def f(row, key, digits=3):
            return f"{row[key]:.{digits}f}" if key in row else ""

        ms = (f"{s['old_ms']:.1f} | {s['new_ms']:.1f} | {s['ratio']:.3f}" if s else " | | ")
        lines.append(f"| {name} | {f(a_old, 'AP')} | {f(a_new, 'AP')} | {f(a_old, 'AP50')} | {f(a_new, 'AP50')} | "
                     f"{f(a_old, 'final_loss')} | {f(a_new, 'final_loss')} | {ms} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", help="git revision or folder of the old code")
    p.add_argument("--new", default=ROOT, help="folder of the new code (default: this checkout)")
    p.add_argument("--part", nargs="+", choices=("accuracy", "speed"), default=["accuracy", "speed"])
    p.add_argument("--models", nargs="+", choices=DETECTORS, default=list(DETECTORS))
    p.add_argument("--steps", type=int, default=150, help="accuracy: training steps per detector")
    p.add_argument("--train-images", type=int, default=300)
    p.add_argument("--test-images", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3, help="speed: rounds (one process per revision each)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=7, help="speed: timed calls per detector and process")
    p.add_argument("--seed", type=int, default=0, help="accuracy: keras.utils.set_random_seed before each detector "
                   "(other seeds of one revision give the seed-to-seed spread a difference is judged against)")
    p.add_argument("--nondeterministic", action="store_true",
                   help="accuracy: TensorFlow's default kernels (faster; equal code then differs run to run)")
    p.add_argument("--output", default=DEFAULT_OUTPUT)
    p.add_argument("--child", choices=("accuracy", "speed"), help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    p.add_argument("--child-output", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    if not args.old:
        p.error("--old REV is required")
    with tempfile.TemporaryDirectory() as work:
        old = checkout(args.old, work)
        try:
            roots = {"old": old, "new": os.path.abspath(args.new)}
            result = {"settings": {**{k: v for k, v in vars(args).items() if not k.startswith("child") and k != "root"},
                                   "old_root": args.old, "new_root": roots["new"]}}
            sys.path.insert(0, HERE)
            import harness

            result["machine"] = harness.machine_info()
            if "accuracy" in args.part:
                result["accuracy"] = {side: run_child(roots[side], "accuracy", args, work, f"acc-{side}")
                                      for side in ("old", "new")}
            if "speed" in args.part:
                rounds = []
                for r in range(args.rounds):
                    order = ("old", "new") if r % 2 == 0 else ("new", "old")
                    rounds.append({side: run_child(roots[side], "speed", args, work, f"speed-{side}-{r}")
                                   for side in order})
                result["speed"] = {
                    name: {"old_ms": statistics.median(x["old"][name] for x in rounds),
                           "new_ms": statistics.median(x["new"][name] for x in rounds),
                           "ratio": statistics.median(x["new"][name] / x["old"][name] for x in rounds),
                           "rounds": [[x["old"][name], x["new"][name]] for x in rounds]}
                    for name in args.models}
            result["load_average_1min_end"] = os.getloadavg()[0]
        finally:
            if old != os.path.abspath(args.old):
                subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", old], check=False)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
