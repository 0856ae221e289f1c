"""Where a detector's time goes: TensorFlow profiler trace of its inference or training step, summed per op type.

    python benchmarks/profile_ops.py --model ssdlite --mode train        # one fit step, 320 px, batch 8
    python benchmarks/profile_ops.py --model mask_rcnn --mode predict --kept 20

Runs ``--steps`` steps under ``tf.profiler.experimental`` (after warm-up),
reads the trace it writes (the ``XSpace`` protobuf of ``*.xplane.pb``) and sums
the durations of the TensorFlow op events on the host threads by op type
(``Conv2D``, ``DepthwiseConv2dNativeBackpropFilter``, ``TopKV2`` ...) and by
op name. Threads run ops in parallel, so the sums are CPU time across
threads, not wall time; their shares say where to optimise. The models are the
320-px configurations of `zoo.speed_detector` (91 classes, random weights;
``--kept N``: score threshold 0 and N detections kept, so that the second
stage and the mask branch run), and training runs on ``shapes`` images as
``peers.py --part train``.
"""

import argparse
import collections
import glob
import os
import tempfile
import time

import harness
import zoo


def read_trace(logdir):
    """``{(op_name, op_type): total µs}`` of the TF op events in the newest ``*.xplane.pb`` under ``logdir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = max(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "")
                # TF op events are named "op_name:OpType" (executor) -- the rest are runtime / Python events.
                if ":" not in name or name.count(":") != 1 or " " in name:
                    continue
                op_name, op_type = name.split(":")
                if op_type and op_type.lstrip("_")[:1].isupper():
                    totals[(op_name, op_type)] += event.duration_ps / 1e6
    return totals


def summarize(totals, top=15):
    """``{"total_ms", "by_type": [[type, ms, share]], "by_name": [[name, type, ms, share]]}``."""
    totals = collections.Counter(totals)
    total = sum(totals.values()) or 1.0
    by_type = collections.Counter()
    for (_, op_type), us in totals.items():
        by_type[op_type] += us
    return {
        "total_ms": total / 1e3,
        "by_type": [[t, us / 1e3, us / total] for t, us in by_type.most_common(top)],
        "by_name": [[n, t, us / 1e3, us / total] for (n, t), us in totals.most_common(top)],
    }


def step_function(name, mode, kept=None, num_classes=91, preset=None):
    """A no-argument callable running one inference call (batch 1, the served copy) or one ``fit`` step of the
    speed configuration of ``name`` with ``num_classes`` classes, or of the 320-px preset ``preset`` (e.g.
    ``yolo_xs_320``, peers' ``yolo_xs_20_classes`` row) when given."""
    import keras
    import tensorflow as tf

    from keras_det.models import inference_copy

    import peers

    keras.utils.set_random_seed(0)
    overrides = dict(score_threshold=0.0, max_detections=kept) if kept else {}
    if preset:
        from keras_det import presets

        model = presets.build(preset, num_classes, bounding_box_format=zoo.FORMAT,
                              image_size=(peers.SIZE, peers.SIZE), **overrides)
    else:
        model = zoo.speed_detector(name, num_classes, peers.SIZE, **overrides)
    if mode == "predict":
        batch = tf.constant(peers.photo()[None])
        model(batch, training=False)
        served = inference_copy(model, batch)
        fn = tf.function(lambda t: served(t, training=False))
        return lambda: fn(batch)
    batches = peers.train_batches(name in zoo.MASK_DETECTORS)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(batches, steps_per_epoch=2, epochs=1, verbose=0)
    iterator = iter(batches)
    return lambda: model.train_function(iterator)


def profile(name, mode, steps=3, kept=None, warmup=2, logdir=None, num_classes=91, preset=None):
    import tensorflow as tf

    run = step_function(name, mode, kept, num_classes, preset)
    for _ in range(warmup):
        harness.fetch(run())
    logdir = logdir or tempfile.mkdtemp(prefix="keras_det_profile_")
    wall = []
    tf.profiler.experimental.start(logdir)
    for _ in range(steps):
        start = time.perf_counter()
        harness.fetch(run())
        wall.append(1000 * (time.perf_counter() - start))
    tf.profiler.experimental.stop()
    out = summarize(read_trace(logdir))
    out.update(model=name, mode=mode, kept=kept, steps=steps, wall_ms_per_step=sorted(wall)[len(wall) // 2],
               op_ms_per_step=out["total_ms"] / steps, logdir=logdir)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=zoo.DETECTORS)
    p.add_argument("--mode", choices=("predict", "train"), default="predict")
    p.add_argument("--kept", type=int, default=None, help="predict: score threshold 0, keep this many detections")
    p.add_argument("--num-classes", type=int, default=91, help="20: peers' ssd_20_classes row (with --model ssd)")
    p.add_argument("--preset", default=None,
                   help="build this 320-px preset instead of --model's speed configuration (yolo_xs_320: peers' "
                        "yolo_xs_20_classes row, with --model yolo_multiscale --num-classes 20)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--output", default=None, help="also write the summary as JSON here")
    args = p.parse_args(argv)
    out = profile(args.model, args.mode, args.steps, args.kept, num_classes=args.num_classes, preset=args.preset)
    steps = args.steps
    print(f"{args.model} {args.mode}: {out['wall_ms_per_step']:.0f} ms per step (wall, median), "
          f"{out['op_ms_per_step']:.0f} ms of op time per step")
    for t, ms, share in out["by_type"][: args.top]:
        print(f"  {share:6.1%} {ms / steps:9.1f} ms  {t}")
    print("  -- by op --")
    for n, t, ms, share in out["by_name"][: args.top]:
        print(f"  {share:6.1%} {ms / steps:9.1f} ms  {t:<28} {n[-90:]}")
    if args.output:
        harness.write_json(args.output, out)
    return out


if __name__ == "__main__":
    main()
