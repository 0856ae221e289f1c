"""The served ReLU6's two graph forms, timed: ``keras_det.layers.relu6`` "fused" against "split".

The served copies (`keras_det.models.inference_copy`) of the MobileNetV2
detectors at 320 px, each traced twice in one process -- every
``ServingReLU6`` as ``relu6(x)`` ("fused") and as ``min(relu(x), 6)``
("split") -- and timed interleaved at batch 1 and batch 8; medians, and the
paired ratio split / fused (< 1: split is faster). What
``relu6.RELU6_FORM = "auto"`` picks rests on this: run it as it is and with
``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN's AVX2 code) on an AVX-512 machine, or on
an AVX2 one.

    python benchmarks/relu6_forms.py --output benchmarks/results/relu6_forms.json
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/relu6_forms.py --output benchmarks/results/relu6_forms.json
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import peers  # noqa: E402
import zoo  # noqa: E402

SIZE = peers.SIZE
MODELS = ("ssdlite", peers.SSD_20, peers.YOLO_XS_20)  # peers.py's speed rows with MobileNetV2 backbones
FORMS = ("fused", "split")


def served(name, batch):
    """``(served copy, images [batch, 320, 320, 3])`` of one of `MODELS`, as peers.py builds it."""
    import numpy as np
    import tensorflow as tf

    from keras_det.models import inference_copy

    model = zoo.speed_detector(name, 91, SIZE) if name in zoo.DETECTORS else peers.speed_model(name)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, SIZE, SIZE, 3)).astype("float32"))
    model(images, training=False)
    return inference_copy(model, images), images


def measure(models=MODELS, batches=(1, 8), rounds=20, warmup=3):
    import numpy as np
    import tensorflow as tf

    from keras_det.layers import relu6

    rows = []
    for name in models:
        for batch in batches:
            net, images = served(name, batch)
            fns, outputs = {}, {}
            for form in FORMS:
                relu6.RELU6_FORM = form  # read when the function is traced
                fns[form] = tf.function(lambda t, net=net: net(t, training=False))
                outputs[form] = harness.fetch(fns[form](images))
            relu6.RELU6_FORM = "auto"
            same = all(np.array_equal(np.asarray(outputs["fused"][k]), np.asarray(outputs["split"][k]))
                       for k in outputs["fused"])
            times = {form: [] for form in FORMS}
            for r in range(warmup + rounds):
                for form, fn in fns.items():
                    start = time.perf_counter()
                    harness.fetch(fn(images))
                    if r >= warmup:
                        times[form].append(1000 * (time.perf_counter() - start))
            row = {"model": name, "batch": batch, "ms": {f: statistics.median(v) for f, v in times.items()},
                   "ratio_split_to_fused": statistics.median(s / f for s, f in zip(times["split"], times["fused"])),
                   "identical_outputs": same, "auto_picks": relu6.relu6_form(batch)}
            rows.append(row)
            print(f"{name} batch {batch}: fused {row['ms']['fused']:.1f} ms, split {row['ms']['split']:.1f} ms, "
                  f"split/fused {row['ratio_split_to_fused']:.2f}, identical outputs {same}, auto picks "
                  f"{row['auto_picks']}", flush=True)
    return {"rows": rows, "image_size": SIZE, "rounds": rounds, "machine": harness.machine_info()}


def run_key(machine):
    """The results file holds one run per kind of code: the CPU's widest SIMD, and the ISA limit if set
    (``"AVX-512"``, ``"AVX-512 restricted to AVX2"``, ``"AVX2"``)."""
    limit = (machine.get("isa_limit") or {}).get("ONEDNN_MAX_CPU_ISA")
    return f"{machine.get('simd') or '?'}" + (f" restricted to {limit}" if limit else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--output", default=None, help="a JSON file to write (default: print only)")
    args = parser.parse_args(argv)
    result = measure(args.models, args.batches, args.rounds)
    if args.output:
        payload = harness.read_json(args.output)
        payload[run_key(result["machine"])] = result
        harness.write_json(args.output, payload)
    return result


if __name__ == "__main__":
    main()
