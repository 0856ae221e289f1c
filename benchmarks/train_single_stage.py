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
``benchmarks/results/train_single_stage.json`` (key ``results``) and a
markdown table on stdout.

Speed at 320×320 (``--speed-only`` skips training; without it the speed part
runs after training unless ``--no-speed``):

    python benchmarks/train_single_stage.py --speed-only --torch-python /work/torchvenv/bin/python

Batch 1, random weights everywhere (speed does not depend on them), float32
images in 0..255. Every candidate is warmed up, then timed in
``--speed-rounds`` interleaved rounds of ``--speed-runs-per-round`` calls
(round-robin over all candidates, the torchvision peer included, so a change
in the machine's load hits all of them alike); medians over all timed calls.
Ratios are paired: the median over rounds of the ratio of the two candidates'
medians in that round.

* keras_det ``SSD(91, backbone="mobilenet_v2", image_size=(320, 320))``, the
  same with 20 classes (keras-cv's count) and with ``head="ssdlite"``, and ``YOLO(91,
  image_size=(320, 320))`` (multiscale) (MobileNetV2): end to end (preprocessing +
  forward + decoding + NMS) as a ``tf.function`` of ``model(x)`` and through
  ``model.predict_on_batch``; the raw forward pass
  (``tf.function(model.head_outputs)``: preprocessing + backbone + extra
  layers / neck + heads, no decoding); for SSD also the decoding split into
  its steps (softmax, box decoding + broadcast, top-k, NMS + gathers) to show
  where the end-to-end time over the raw pass goes.
* keras-cv ``YOLOV8Detector(num_classes=20, bounding_box_format="xyxy",
  fpn_depth=--kerascv-fpn-depth)`` on a ``YOLOV8Backbone`` built from the
  ``yolo_v8_xs_backbone`` preset's config (channels 32, 64, 128, 256, depths
  1, 2, 2, 1, rescaling inside; the presets download weights, so the config
  is written out here): ``predict`` (as documented), ``predict_on_batch``,
  a ``tf.function`` of ``call`` + ``decode_predictions``, and the raw call.
* torchvision ``ssdlite320_mobilenet_v3_large(weights=None,
  weights_backbone=None)`` (91 classes) in a subprocess of ``--torch-python``
  with ``torch.set_num_threads(--threads)`` and ``OMP_WAIT_POLICY=PASSIVE``
  (see ``--torch-omp-wait-policy``), end to end (transform + forward +
  postprocess) and raw (transform + backbone + head), under
  ``torch.no_grad()``; ``--torch-extra-threads 1`` adds a 1-thread peer.

The goal checked: SSD-MobileNetV2-320 end to end ≤ 1.3 × its raw forward
pass, and faster than keras-cv's ``predict``.

This is a skeleton for comparing the systems under one budget, not a tuned
benchmark: the numbers depend on the budget, the machine and its load.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import zoo  # noqa: E402
from keras_det import data as kd_data  # noqa: E402
from keras_det.metrics import COCOEvaluator  # noqa: E402
from keras_det.models.ssd import SSD  # noqa: E402
from keras_det.models.yolo import YOLO  # noqa: E402

MODELS = ("ssd", "ssdlite", "yolo_v1", "yolo_multiscale", "sliding_window")
FORMAT = zoo.FORMAT
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "train_single_stage.json")
SPEED_SIZE = 320
GOAL_RATIO = 1.3


def build(name, num_classes, image_size, backbone, train_boxes_wh):
    """The benchmark configuration of a single-stage detector (``zoo.shapes_detector``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {MODELS}")
    return zoo.shapes_detector(name, num_classes, train_boxes_wh, backbone=backbone, image_size=image_size)


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


# ---------------------------------------------------------------------------
# Speed at 320×320, batch 1, interleaved with the peers.
# ---------------------------------------------------------------------------

_timer = harness.timer  # run(n) -> n times in ms, outputs fetched


def ssd_decode_steps(model):
    """SSD's decoding (``SSD.call`` after ``head_outputs``) split into cumulative
    steps, each a ``tf.function`` of (logits, deltas); the steps replicate
    ``DetectionDecoder.call`` with the library's own ops."""
    from keras_det.ops import boxes as box_ops
    from keras_det.ops import nms as nms_ops

    dec = model.decoder
    image_shape = tf.constant(model.image_size)
    references = tf.constant(model.default_boxes, tf.float32)

    def softmax(logits, deltas):
        return tf.nn.softmax(logits, axis=-1)[..., 1:], deltas

    def boxes(logits, deltas):
        scores, deltas = softmax(logits, deltas)
        batch = tf.shape(scores)[0]
        refs = tf.broadcast_to(references[None], tf.concat([[batch], tf.shape(references)], 0))
        b = box_ops.BoxCoder(dec.box_coder_weights).decode(deltas[:, :, None, :], refs[:, :, None, :])
        b = box_ops.clip(b, image_shape)
        b = tf.broadcast_to(b, tf.concat([tf.shape(scores), [4]], 0))
        labels = tf.broadcast_to(tf.range(tf.shape(scores)[2], dtype=tf.int32), tf.shape(scores))
        return (tf.reshape(b, [batch, -1, 4]), tf.reshape(scores, [batch, -1]), tf.reshape(labels, [batch, -1]))

    def topk(logits, deltas):
        flat_boxes, flat_scores, flat_labels = boxes(logits, deltas)
        k = tf.minimum(dec.pre_nms_topk, tf.shape(flat_scores)[1])
        top_scores, top_idx = tf.math.top_k(flat_scores, k=k)
        return (tf.gather(flat_boxes, top_idx, batch_dims=1), top_scores, tf.gather(flat_labels, top_idx, batch_dims=1))

    def nms(logits, deltas):
        top_boxes, top_scores, top_labels = topk(logits, deltas)
        keep, num = nms_ops.padded_nms(top_boxes, top_scores, dec.iou_threshold, dec.max_detections,
                                       score_threshold=dec.score_threshold, class_ids=top_labels)
        return keep, num

    def full(logits, deltas):
        scores, deltas = softmax(logits, deltas)
        return dec(references, deltas, scores, image_shape)

    # The NMS alone on fixed top-k candidates (no re-computation of the steps before it).
    def nms_only(top_boxes, top_scores, top_labels):
        return nms_ops.padded_nms(top_boxes, top_scores, dec.iou_threshold, dec.max_detections,
                                  score_threshold=dec.score_threshold, class_ids=top_labels)

    def topk_only(flat_scores):
        return tf.math.top_k(flat_scores, k=tf.minimum(dec.pre_nms_topk, tf.shape(flat_scores)[1]))

    steps = {
        "softmax": softmax, "+box_decode_broadcast": boxes, "+top_k_gather": topk, "+nms": nms,
        "decoder_total": full,
    }
    return {k: tf.function(v) for k, v in steps.items()}, tf.function(nms_only), tf.function(topk_only), topk, boxes


def speed(args):
    """Interleaved speed measurement; returns the ``speed`` section of the results."""
    keras.utils.set_random_seed(0)
    size = (SPEED_SIZE, SPEED_SIZE)
    image = tf.random.uniform([1, SPEED_SIZE, SPEED_SIZE, 3], 0, 255, seed=0)
    timers, info, errors = {}, {}, {}

    ours = {
        "keras_det_ssd_mobilenet_v2": lambda: SSD(91, backbone="mobilenet_v2", image_size=size),
        "keras_det_ssd_mobilenet_v2_20cls": lambda: SSD(20, backbone="mobilenet_v2", image_size=size),
        "keras_det_ssdlite_mobilenet_v2": lambda: SSD(91, backbone="mobilenet_v2", image_size=size, head="ssdlite"),
        "keras_det_yolo_multiscale_mobilenet_v2": lambda: YOLO(91, backbone="mobilenet_v2", image_size=size),
    }
    ssd_model = None
    for name, make in ours.items():
        model = make()
        model(image)  # builds the model (count_params)
        e2e = tf.function(lambda x, m=model: m(x, training=False))
        raw = tf.function(lambda x, m=model: m.head_outputs(x, training=False))
        timers[f"{name}/e2e_tf_function"] = _timer(e2e, image)
        timers[f"{name}/e2e_predict_on_batch"] = _timer(model.predict_on_batch, image)
        timers[f"{name}/raw_forward"] = _timer(raw, image)
        info[name] = {"params": int(model.count_params()), "num_classes": 20 if name.endswith("_20cls") else 91}
        if hasattr(model, "default_boxes") and name == "keras_det_ssd_mobilenet_v2":
            info[name]["default_boxes"] = int(len(model.default_boxes))
            info[name]["feature_map_sizes"] = [list(s) for s in model.feature_map_sizes]
            ssd_model = model

    if ssd_model is not None:
        logits, deltas = ssd_model.head_outputs(image)
        steps, nms_only, topk_only, topk_fn, boxes_fn = ssd_decode_steps(ssd_model)
        for step, fn in steps.items():
            timers[f"keras_det_ssd_mobilenet_v2/decode:{step}"] = _timer(lambda x, f=fn: f(logits, deltas), image)
        top = topk_fn(logits, deltas)
        flat_scores = boxes_fn(logits, deltas)[1]
        timers["keras_det_ssd_mobilenet_v2/decode:nms_only"] = _timer(lambda x: nms_only(*top), image)
        timers["keras_det_ssd_mobilenet_v2/decode:top_k_only"] = _timer(lambda x: topk_only(flat_scores), image)
        info["keras_det_ssd_mobilenet_v2"]["candidates"] = {
            "scores_before_top_k": int(flat_scores.shape[1]),
            "above_score_threshold_in_top_k": int(tf.reduce_sum(tf.cast(top[1] > ssd_model.decoder.score_threshold,
                                                                        tf.int32))),
            "detections": int(ssd_model(image)["num_detections"][0]),
        }

    if not args.no_kerascv:
        try:
            import keras_cv

            kcv = zoo.kerascv_yolov8(20, fpn_depth=args.kerascv_fpn_depth)
            backbone = kcv.backbone
            kcv_e2e = tf.function(lambda x: kcv.decode_predictions(kcv(x, training=False), x))
            kcv_raw = tf.function(lambda x: kcv(x, training=False))
            timers["kerascv_yolo_v8_xs/predict"] = _timer(lambda x: kcv.predict(x, verbose=0), image)
            timers["kerascv_yolo_v8_xs/predict_on_batch"] = _timer(kcv.predict_on_batch, image)
            timers["kerascv_yolo_v8_xs/e2e_tf_function"] = _timer(kcv_e2e, image)
            timers["kerascv_yolo_v8_xs/raw_forward"] = _timer(kcv_raw, image)
            info["kerascv_yolo_v8_xs"] = {"keras_cv": keras_cv.__version__, "params": int(kcv.count_params()),
                                          "backbone_params": int(backbone.count_params()), "num_classes": 20,
                                          "fpn_depth": args.kerascv_fpn_depth, "backbone_config": zoo.YOLO_V8_XS}
        except Exception as e:  # noqa: BLE001 - report the peer's failure, keep measuring ours
            errors["kerascv"] = f"{type(e).__name__}: {e}"
            print(f"keras-cv: {errors['kerascv']}", flush=True)

    peers = []
    if args.torch_python:
        tv = "torchvision_ssdlite320_mobilenet_v3_large"
        for threads in [args.threads] + [t for t in args.torch_extra_threads if t != args.threads]:
            suffix = "" if threads == args.threads else f"_{threads}thread"
            try:
                peer = harness.TorchPeer(args.torch_python, "ssdlite320_mobilenet_v3_large", threads, args.speed_warmup,
                                         SPEED_SIZE, args.torch_omp_wait_policy)
                peers.append(peer)
                timers[f"{tv}{suffix}/e2e"] = peer.runner("e2e")
                timers[f"{tv}{suffix}/raw_forward"] = peer.runner("raw")
                info[f"{tv}{suffix}"] = peer.info
            except Exception as e:  # noqa: BLE001
                errors[f"torchvision{suffix}"] = f"{type(e).__name__}: {e}"
                print(f"torchvision{suffix}: {errors[f'torchvision{suffix}']}", flush=True)

    for k, run in list(timers.items()):  # warm-up (tracing) outside the clock
        try:
            run(args.speed_warmup)
        except Exception as e:  # noqa: BLE001 - a peer's way of calling may not work; report it
            msg = f"{type(e).__name__}: {e}".strip().splitlines()
            errors[k] = msg[0] if len(msg) == 1 else f"{msg[0]} ... {msg[-1]}"
            print(f"{k}: {errors[k]}", flush=True)
            del timers[k]
    rounds = {k: [] for k in timers}
    for r in range(args.speed_rounds):
        for k, run in timers.items():
            rounds[k].append(run(args.speed_runs_per_round))
    times = {k: [t for chunk in v for t in chunk] for k, v in rounds.items()}

    def paired(a, b):
        """Median over rounds of (median of ``a`` / median of ``b`` in the same round): the two were timed
        back to back, so a change of the machine's load between rounds cancels out."""
        return round(statistics.median(statistics.median(x) / statistics.median(y)
                                       for x, y in zip(rounds[a], rounds[b])), 3)
    for peer in peers:
        peer.close()

    ms = {k: round(statistics.median(v), 2) for k, v in times.items()}
    spread = {k: [round(float(np.percentile(v, 25)), 2), round(float(np.percentile(v, 75)), 2)] for k, v in times.items()}
    ratios = {}
    for name in ours:
        ratios[f"{name}: e2e_tf_function / raw_forward"] = paired(f"{name}/e2e_tf_function", f"{name}/raw_forward")
        ratios[f"{name}: e2e_predict_on_batch / raw_forward"] = paired(f"{name}/e2e_predict_on_batch", f"{name}/raw_forward")
    ssd = "keras_det_ssd_mobilenet_v2"
    goal = {"max_ratio": GOAL_RATIO, "e2e_over_raw_tf_function": ratios[f"{ssd}: e2e_tf_function / raw_forward"],
            "e2e_over_raw_predict_on_batch": ratios[f"{ssd}: e2e_predict_on_batch / raw_forward"]}
    goal["e2e_within_1.3x_raw"] = goal["e2e_over_raw_tf_function"] <= GOAL_RATIO
    if "kerascv_yolo_v8_xs/predict" in ms:
        kp = ms["kerascv_yolo_v8_xs/predict"]
        kpk = "kerascv_yolo_v8_xs/predict"
        goal["ssd_e2e_tf_function_over_kerascv_predict"] = paired(f"{ssd}/e2e_tf_function", kpk)
        goal["ssd_predict_on_batch_over_kerascv_predict"] = paired(f"{ssd}/e2e_predict_on_batch", kpk)
        goal["ssd_e2e_over_kerascv_e2e_tf_function"] = paired(f"{ssd}/e2e_tf_function", "kerascv_yolo_v8_xs/e2e_tf_function")
        goal["faster_than_kerascv_predict"] = ms[f"{ssd}/e2e_predict_on_batch"] < kp and ms[f"{ssd}/e2e_tf_function"] < kp
        ssd20 = "keras_det_ssd_mobilenet_v2_20cls"  # same class count as the keras-cv model
        goal["ssd_20cls_e2e_tf_function_over_kerascv_predict"] = paired(f"{ssd20}/e2e_tf_function", kpk)
        goal["ssd_20cls_predict_on_batch_over_kerascv_predict"] = paired(f"{ssd20}/e2e_predict_on_batch", kpk)
        goal["ssd_20cls_e2e_over_kerascv_e2e_tf_function"] = paired(f"{ssd20}/e2e_tf_function",
                                                                    "kerascv_yolo_v8_xs/e2e_tf_function")
        goal["ssd_20cls_faster_than_kerascv_predict"] = (ms[f"{ssd20}/e2e_predict_on_batch"] < kp
                                                         and ms[f"{ssd20}/e2e_tf_function"] < kp)
        ratios["kerascv_yolo_v8_xs: e2e_tf_function / raw_forward"] = paired("kerascv_yolo_v8_xs/e2e_tf_function",
                                                                             "kerascv_yolo_v8_xs/raw_forward")
        ratios["kerascv_yolo_v8_xs: predict / raw_forward"] = paired(kpk, "kerascv_yolo_v8_xs/raw_forward")
    goal["ssd_20cls_e2e_over_raw_tf_function"] = ratios["keras_det_ssd_mobilenet_v2_20cls: e2e_tf_function / raw_forward"]
    tv = "torchvision_ssdlite320_mobilenet_v3_large"
    if f"{tv}/e2e" in ms:
        ratios[f"{tv}: e2e / raw_forward"] = paired(f"{tv}/e2e", f"{tv}/raw_forward")
        for name in ours:
            ratios[f"{name} e2e_tf_function / {tv} e2e"] = paired(f"{name}/e2e_tf_function", f"{tv}/e2e")
        if "kerascv_yolo_v8_xs/predict" in ms:
            ratios[f"kerascv_yolo_v8_xs predict / {tv} e2e"] = paired("kerascv_yolo_v8_xs/predict", f"{tv}/e2e")
    return {
        "image_size": SPEED_SIZE,
        "batch": 1,
        "timed_runs_per_candidate": args.speed_rounds * args.speed_runs_per_round,
        "warmup_runs": args.speed_warmup,
        "protocol": ("interleaved rounds over all candidates; ms: median (and IQR) of all timed runs, outputs "
                     "fetched to numpy; ratios: median over rounds of the ratio of the two candidates' medians "
                     "in that round (timed back to back)"),
        "ms_per_image": ms,
        "iqr_ms": spread,
        "ratios": ratios,
        "goal": goal,
        "models": info,
        "errors": errors,
    }


def print_speed(s):
    print(f"\n| candidate | ms/image (median, batch 1, {s['image_size']}×{s['image_size']}) | IQR |")
    print("|---|---|---|")
    for k, v in s["ms_per_image"].items():
        lo, hi = s["iqr_ms"][k]
        print(f"| {k} | {v} | {lo}–{hi} |")
    print("\n| ratio | value |\n|---|---|")
    for k, v in s["ratios"].items():
        print(f"| {k} | {v} |")
    print("\ngoal:", json.dumps(s["goal"]))
    if s["errors"]:
        print("errors:", json.dumps(s["errors"]))


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
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="JSON file; sections not re-measured in this run are kept")
    parser.add_argument("--speed-only", action="store_true", help="skip training; only the 320x320 speed comparison")
    parser.add_argument("--no-speed", action="store_true", help="skip the 320x320 speed comparison")
    parser.add_argument("--speed-rounds", type=int, default=5)
    parser.add_argument("--speed-runs-per-round", type=int, default=5)
    parser.add_argument("--speed-warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads of the peer")
    parser.add_argument("--torch-python", default=os.environ.get("KERAS_DET_TORCH_PYTHON"),
                        help="Python with torch + torchvision for the torchvision peer")
    parser.add_argument("--torch-extra-threads", type=int, nargs="*", default=[],
                        help="also time the torchvision peer with these thread counts (diagnostic)")
    parser.add_argument("--torch-omp-wait-policy", default="PASSIVE",
                        help="OMP_WAIT_POLICY of the torch subprocess ('' = OpenMP's default). With the default "
                             "(active spinning) and 2 threads on 2 cores shared with other jobs, torch's ops stall "
                             "for whole scheduler slices (~1 s per image instead of ~50 ms)")
    parser.add_argument("--no-kerascv", action="store_true")
    parser.add_argument("--kerascv-fpn-depth", type=int, default=1)
    args = parser.parse_args(argv)

    payload = {}
    if os.path.exists(args.output):
        with open(args.output) as f:
            payload = json.load(f)
    payload["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "tensorflow": tf.__version__,
                          "keras": keras.__version__, "python": sys.version.split()[0]}
    if args.speed_only:
        payload["speed"] = speed(args)
        payload["speed_settings"] = vars(args)
        write(args.output, payload)
        print_speed(payload["speed"])
        return

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
    wh = zoo.boxes_wh(train)
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

    payload["settings"] = vars(args)
    payload["results"] = results
    if not args.no_speed:
        payload["speed"] = speed(args)
    write(args.output, payload)
    print("\n| model | steps | train s | AP | AP50 | ms/image (batch 1) | params |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['train_steps']} | {r['train_seconds']} | {r['AP']:.3f} | {r['AP50']:.3f} "
              f"| {r['infer_ms_per_image']} | {r['params']:,} |")
    if "speed" in payload and not args.no_speed:
        print_speed(payload["speed"])


def write(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
