"""Every keras_det detector next to keras-cv, keras-hub and torchvision: speed, FLOPs, accuracy.

    python benchmarks/peers.py [--part speed accuracy] [--torch-python PY]   # or: keras-det bench peers

**speed** — inference ms/image at batch 1, 320×320, end to end (preprocessing,
forward, box decoding and NMS; outputs fetched), all candidates in one run:
``--warmup`` untimed runs each, then ``--rounds`` interleaved rounds of
``--runs-per-round`` runs of every candidate (≥ 20 timed runs by default);
medians and IQRs, and *paired* ratios (median over rounds of the ratio of the
two medians in the round) against the nearest peer and against torchvision's
SSDLite. Candidates (random weights everywhere: speed does not depend on them):

* keras_det: the served model (`keras_det.models.inference_copy`: BatchNorms
  folded, as export serves it; ``--unfolded-too`` adds each model unfolded as
  ``<row>_unfolded``, its ratio taken against the folded row) of
  every detector of ``zoo.DETECTORS`` in its ImageNet-class
  configuration (``zoo.speed_detector``: MobileNetV3-Large Faster/Mask R-CNN
  configured like torchvision's 320 FPN model, MobileNetV2 for the others,
  91 classes); R-CNN and Fast R-CNN on ``--proposals`` selective-search
  proposals of a real photo (``skimage.data.astronaut``), whose time is
  timed as a candidate of its own (``selective_search_fast``);
* keras-cv ``YOLOV8Detector`` on the ``yolo_v8_xs_backbone`` preset's
  architecture (20 classes; presets download weights, so the config is
  written out), ``call`` + ``decode_predictions`` in one ``tf.function``;
* keras-hub ``RetinaNetObjectDetector`` on the ``retinanet_resnet50_fpn_coco``
  preset's architecture (ResNet-50 v1, P3–P7; 34.1 M parameters, 91 classes);
* torchvision ``ssdlite320_mobilenet_v3_large`` and
  ``fasterrcnn_mobilenet_v3_large_320_fpn`` (``weights=None``) in
  subprocesses of ``--torch-python`` (keras_det's environment has no torch),
  ``torch.no_grad()``, timed with each of ``--torch-threads`` (1 and 2); a peer's row is its
  fastest thread count.

GFLOPs are those of the convolutions and matrix products (2 per
multiply-accumulate): ``harness.graph_flops`` on the traced TensorFlow
function, ``torch.utils.flop_counter.FlopCounterMode`` for torchvision.
keras_det's two-stage rows are counted on the padded graph (all ``P``
proposal slots through the box head, ``padded_flops``), an upper bound of what
runs: inference skips the slots after the last valid proposal.
"% of peak" divides the attained FLOP/s (GFLOPs / time) by this CPU's
measured float32 matmul peak (and the nominal peak, in the JSON).

**train** (``--part train``, not in the default) — images/s of one training
step at 320×320, batch 8: keras_det's ``fit`` step (``model.train_function``)
of Faster R-CNN, SSD and SSDLite against torchvision's training step of
``fasterrcnn_mobilenet_v3_large_320_fpn`` / ``ssdlite320_mobilenet_v3_large``
and, for SSD, of the same SSD-MobileNetV2-320 layout composed from torchvision's
parts (torchvision ships none; ``harness._TORCH_COMPOSED``): ``model.train()``,
losses, ``backward``, SGD step, same thread counts. Every row is also set
against torchvision SSDLite.

**accuracy** — every keras_det detector (``zoo.shapes_detector``, tiny
backbone from scratch) and keras-cv's YOLOV8Detector (the same xs
architecture, from scratch) trained on the same ``shapes`` images (128 px)
for the same ``--budget`` of process CPU seconds, then COCO AP / AP50 on the
200 test images and ms/image at batch 1; Mask R-CNN also mask AP (COCO
``segm``), and ``mask_rcnn_keypoints`` (accuracy only) keypoint AP (COCO
``keypoints``, OKS with the ``shapes`` sigmas).

Writes ``benchmarks/results/peers.json`` (sections not re-measured are kept).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import zoo  # noqa: E402

SIZE = 320
DEFAULT_OUTPUT = os.path.join(harness.RESULTS, "peers.json")
KERASCV = "kerascv_yolov8_xs"
KERASHUB = "kerashub_retinanet_resnet50_fpn"
TV_SSD = "torchvision_ssdlite320_mobilenet_v3_large"
TV_FRCNN = "torchvision_fasterrcnn_mobilenet_v3_large_320_fpn"
# SSD-MobileNetV2-320 composed from torchvision's parts (harness._TORCH_COMPOSED): SSD's training peer.
TV_SSD_MNV2 = "torchvision_ssd_mobilenet_v2_320"
PEERS = (KERASCV, KERASHUB, TV_SSD, TV_FRCNN)
# the torchvision model (harness.TORCH_MODELS) behind each torch peer name "torchvision_<model>"
TORCH_MODEL = {f"torchvision_{model}": model for model in harness.TORCH_MODELS}
assert {TV_SSD, TV_FRCNN, TV_SSD_MNV2} <= set(TORCH_MODEL)
SELECTIVE_SEARCH = "selective_search_fast"
# Classification + localization predicts one object per image: it is also
# trained and evaluated on shapes images with a single object each.
ONE_OBJECT = "classify_localize_one_object"
# SSD-MobileNetV2-320 at keras-cv YOLOV8's class count (20): the issue's "same input and class count" pair.
SSD_20 = "ssd_20_classes"
# The multiscale YOLO at keras-cv YOLOV8 xs's GFLOPs (preset yolo_xs_320), same input and classes.
YOLO_XS_20 = "yolo_xs_20_classes"
# Random weights score every class about 1/92, below the two-stage 0.05 threshold: no detection is kept and the
# second stage's decoding, NMS and Mask R-CNN's mask branch are hardly timed. These rows keep the top KEPT
# detections on both sides (score threshold 0): keras_det score_threshold=0, max_detections=KEPT; torchvision
# box_score_thresh=0, box_detections_per_img=KEPT.
KEPT = 20
# keras_det rows time the served model (BatchNorms folded); ``--unfolded-too`` adds the training model as
# ``<row>_unfolded``, compared with its folded row (before / after in one run).
UNFOLDED = "_unfolded"
KEPT_SUFFIX = f"_{KEPT}_kept"
TV_FRCNN_KEPT = TV_FRCNN + KEPT_SUFFIX
# The peer each keras_det detector is compared with (the closest design).
NEAREST = {
    SSD_20: KERASCV, YOLO_XS_20: KERASCV,
    "faster_rcnn" + KEPT_SUFFIX: TV_FRCNN_KEPT, "mask_rcnn" + KEPT_SUFFIX: TV_FRCNN_KEPT,
    "classify_localize": KERASCV, "sliding_window": KERASCV, "yolo_v1": KERASCV, "yolo_multiscale": KERASCV,
    "ssd": TV_SSD, "ssdlite": TV_SSD,
    "rcnn": TV_FRCNN, "fast_rcnn": TV_FRCNN, "faster_rcnn": TV_FRCNN, "mask_rcnn": TV_FRCNN,
}
LABELS = {
    **zoo.LABELS, KERASCV: "keras-cv YOLOV8 xs", KERASHUB: "keras-hub RetinaNet R50-FPN",
    TV_SSD: "torchvision SSDLite320 MNv3", TV_FRCNN: "torchvision Faster R-CNN MNv3-320-FPN",
    TV_SSD_MNV2: "torchvision SSD-MNv2-320 (composed)",
    SELECTIVE_SEARCH: "selective search (fast)", ONE_OBJECT: "Classify+localize, 1 object/image",
    SSD_20: "SSD, 20 classes", YOLO_XS_20: "YOLO multiscale xs (YOLOV8 xs GFLOPs), 20 classes",
    "faster_rcnn" + KEPT_SUFFIX: f"Faster R-CNN, {KEPT} kept", "mask_rcnn" + KEPT_SUFFIX: f"Mask R-CNN, {KEPT} kept",
    TV_FRCNN_KEPT: f"torchvision Faster R-CNN MNv3-320-FPN, {KEPT} kept",
}
# keras-hub's "retinanet_resnet50_fpn_coco" preset architecture: ResNet-50 v1 + FPN P3-P7.
RESNET50 = dict(input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
                stackwise_num_blocks=[3, 4, 6, 3], stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block")


def photo(size=SIZE):
    import cv2
    import skimage.data

    return cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA).astype("float32")


def kerashub_retinanet(num_classes=91):
    import keras_hub

    encoder = keras_hub.models.ResNetBackbone(image_shape=(None, None, 3), **RESNET50)
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=7, use_p5=False,
                                                  image_shape=(None, None, 3))
    return keras_hub.models.RetinaNetObjectDetector(backbone=backbone, num_classes=num_classes, bounding_box_format="yxyx")


def decoded(model):
    """``x -> call + decode_predictions`` of a keras-cv / keras-hub detector (their ``predict`` path)."""
    return lambda x: model.decode_predictions(model(x, training=False), x)


# ---------------------------------------------------------------------------
# speed
# ---------------------------------------------------------------------------


def speed_model(row):
    """The keras_det model of the 20-class speed rows `SSD_20` and `YOLO_XS_20` (keras-cv's class count)."""
    if row == SSD_20:
        return zoo.speed_detector("ssd", 20, SIZE)
    if row == YOLO_XS_20:
        from keras_det import presets

        return presets.build("yolo_xs_320", 20, bounding_box_format=zoo.FORMAT, image_size=(SIZE, SIZE))
    raise ValueError(f"speed_model: no 20-class row {row!r}; the others are zoo.speed_detector(name, 91, size)")


def speed(args):
    import numpy as np
    import tensorflow as tf

    from keras_det.region_proposals import propose

    image = photo()
    batch = tf.constant(image[None])
    props = propose(image, "selective_search_fast", max_proposals=args.proposals)
    padded = np.zeros((1, args.proposals, 4), np.float32)
    padded[0, : len(props)] = props
    # The models take xyxy proposals (zoo.FORMAT); propose returns yxyx.
    padded = padded[..., [1, 0, 3, 2]]
    with_props = {"images": batch, "proposals": tf.constant(padded)}

    bench = harness.Interleaved(args.warmup, args.rounds, args.runs_per_round)
    info, flops = {}, {}
    bench.add(SELECTIVE_SEARCH, lambda n: [_timed(lambda: propose(image, "selective_search_fast",
                                                                 max_proposals=args.proposals)) for _ in range(n)])
    for name in [n for n in args.models if n in zoo.DETECTORS]:  # zoo.ACCURACY_ONLY: no speed configuration
        model = zoo.speed_detector(name, 91, SIZE)
        _add_ours(bench, info, flops, name, model, with_props if name in zoo.PROPOSAL_DETECTORS else batch, 91, args)
        print(f"{name}: {info[name]['params']:,} params, {flops[name]['flops'] / 1e9:.2f} GFLOPs", flush=True)
    for name in [n for n in ("faster_rcnn", "mask_rcnn") if n in args.models]:
        model = zoo.speed_detector(name, 91, SIZE, score_threshold=0.0, max_detections=KEPT)
        _add_ours(bench, info, flops, name + KEPT_SUFFIX, model, batch, 91, args, kept=True)
    if "ssd" in args.models and not args.no_kerascv:
        _add_ours(bench, info, flops, SSD_20, speed_model(SSD_20), batch, 20, args)
    if "yolo_multiscale" in args.models and not args.no_kerascv:
        _add_ours(bench, info, flops, YOLO_XS_20, speed_model(YOLO_XS_20), batch, 20, args)
    if not args.no_kerascv:
        _add_keras_peer(bench, info, flops, KERASCV, lambda: zoo.kerascv_yolov8(20), batch, "keras-cv", 20)
    if not args.no_kerashub:
        _add_keras_peer(bench, info, flops, KERASHUB, kerashub_retinanet, batch, "keras-hub", 91)
    torch_peers = []
    if args.torch_python:
        # Every thread count of --torch-threads is timed; the peer's row is its fastest (see summarize_speed).
        kept = {"box_score_thresh": 0.0, "box_detections_per_img": KEPT}
        for name, model, options in ((TV_SSD, TORCH_MODEL[TV_SSD], None), (TV_FRCNN, TORCH_MODEL[TV_FRCNN], None),
                                     (TV_FRCNN_KEPT, TORCH_MODEL[TV_FRCNN], kept)):
            if options and not {"faster_rcnn", "mask_rcnn"} & set(args.models):
                continue
            for threads in args.torch_threads:
                variant = f"{name}@{threads}t"
                try:
                    peer = harness.TorchPeer(args.torch_python, model, threads, args.warmup, SIZE,
                                             args.torch_omp_wait_policy, options)
                except Exception as e:  # noqa: BLE001 - a peer that cannot start is reported, not fatal
                    bench.errors[variant] = f"{type(e).__name__}: {e}"
                    print(f"{variant}: {bench.errors[variant]}", flush=True)
                    continue
                torch_peers.append(peer)
                bench.add(variant, peer.runner("e2e"))
                info[variant] = {**peer.info, "framework": "torchvision", "num_classes": 91}
                flops[variant] = {"flops": peer.info["flops"], "by_op": {}, "notes": ["torch FlopCounterMode"]}
    else:
        bench.errors["torchvision"] = "skipped: pass --torch-python (a Python with torch + torchvision)"
    print("measuring CPU peak ...", flush=True)
    peak = {"measured_gflops": harness.measured_peak_gflops(), "nominal": harness.nominal_peak_gflops()}
    bench.measure()
    for peer in torch_peers:
        peer.close()
    return summarize_speed(bench, info, flops, peak, args)


def _add_ours(bench, info, flops, key, model, x, num_classes, args, kept=False):
    """Times keras_det's served model (`keras_det.models.inference_copy`: BatchNorms folded, what export serves);
    with ``--unfolded-too`` also ``model`` itself as ``key + UNFOLDED`` (its ratio: unfolded over served)."""
    import tensorflow as tf

    from keras_det.models import inference_copy

    model(x, training=False)
    candidates = [(key, inference_copy(model, x))]
    if args.unfolded_too:
        candidates.append((key + UNFOLDED, model))
    for name, net in candidates:
        fn = tf.function(lambda t, m=net: m(t, training=False))
        out = harness.fetch(fn(x))
        bench.add(name, harness.timer(fn, x))
        info[name] = {"params": int(net.count_params()), "framework": "keras_det", "num_classes": num_classes,
                      "batch_norm_folded": net is not model}
        if kept:
            info[name]["detections"] = int(out["num_detections"][0])
        flops[name] = padded_flops(net, x)


def padded_flops(net, x):
    """``harness.graph_flops`` of ``net(x)`` with every box head on all its proposal slots.

    ``BoxRoIHead`` runs on a dynamic number of slots at inference (up to the
    last valid proposal), which a static count cannot see; traced with
    ``skip_padding`` off, the count covers all ``P`` slots.
    """
    from keras_det.layers import BoxRoIHead

    heads = {layer: layer.skip_padding for layer in net._flatten_layers() if isinstance(layer, BoxRoIHead)}
    for head in heads:
        head.skip_padding = False
    try:
        return harness.graph_flops(lambda t: net(t, training=False), x)
    finally:
        for head, skip in heads.items():
            head.skip_padding = skip


def _label(name):
    if name.endswith(UNFOLDED):
        return LABELS[name[: -len(UNFOLDED)]] + ", BatchNorm unfolded"
    return LABELS[name]


def _timed(fn):
    start = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - start)


def _add_keras_peer(bench, info, flops, name, make, batch, framework, num_classes):
    import tensorflow as tf

    try:
        model = make()
        fn = tf.function(decoded(model))
        harness.fetch(fn(batch))
        bench.add(name, harness.timer(fn, batch))
        info[name] = {"params": int(model.count_params()), "framework": framework, "num_classes": num_classes}
        flops[name] = harness.graph_flops(fn, batch)
    except Exception as e:  # noqa: BLE001 - report the peer's failure, keep measuring ours
        bench.errors[name] = f"{type(e).__name__}: {e}".splitlines()[0]
        print(f"{name}: {bench.errors[name]}", flush=True)


def best_variants(ms):
    """``{peer: fastest "peer@Nt" variant}`` of the torch peers timed with several thread counts."""
    best = {}
    for name in ms:
        if "@" in name:
            base = name.split("@")[0]
            if base not in best or ms[name] < ms[best[base]]:
                best[base] = name
    return best


def summarize_speed(bench, info, flops, peak, args):
    summary = bench.summary()
    ms = dict(summary["ms"])
    best = best_variants(ms)
    # A torch peer's row (and every ratio against it) is its fastest thread count.
    for base, variant in best.items():
        ms[base] = ms[variant]
        summary["iqr_ms"][base] = summary["iqr_ms"][variant]
        info[base] = {**info[variant], "variants_ms": {k: ms[k] for k in ms if k.startswith(base + "@")}}
        flops[base] = flops[variant]
        bench.times[base] = bench.times[variant]
    rows = {}
    for name in ms:
        if name == SELECTIVE_SEARCH or "@" in name:
            continue
        gflops = flops[name]["flops"] / 1e9
        attained = gflops / (ms[name] / 1000.0)
        row = {
            "label": _label(name) + (f" ({info[name]['threads']} thread{'s' if info[name]['threads'] > 1 else ''})"
                                     if info[name].get("framework") == "torchvision" else ""),
            **info[name],
            "ms": ms[name],
            "iqr_ms": summary["iqr_ms"][name],
            "gflops": gflops,
            "attained_gflops_per_s": attained,
            "fraction_of_measured_peak": attained / peak["measured_gflops"],
            "fraction_of_nominal_peak": attained / peak["nominal"]["gflops"] if peak["nominal"]["gflops"] else None,
            "flops_notes": flops[name]["notes"][:5],
        }
        if name in zoo.PROPOSAL_DETECTORS and SELECTIVE_SEARCH in ms:
            row["ms_with_proposals"] = ms[name] + ms[SELECTIVE_SEARCH]
        peer = name[: -len(UNFOLDED)] if name.endswith(UNFOLDED) else NEAREST.get(name)
        if peer in ms:
            row["nearest_peer"] = peer
            row["ratio_to_nearest_peer"] = bench.paired(name, peer)
        if TV_SSD in ms:
            row["ratio_to_torchvision_ssdlite"] = bench.paired(name, TV_SSD)
        rows[name] = row
    return {
        "image_size": SIZE,
        "batch": 1,
        "proposals": args.proposals,
        "protocol": summary["protocol"],
        "timed_runs": summary["timed_runs"],
        "cpu_steal_percent": summary["cpu_steal_percent"],
        "selective_search_ms": ms.get(SELECTIVE_SEARCH),
        "peak": peak,
        "rows": rows,
        "errors": summary["errors"],
        "torch_variants": best,
    }


# keras_det detector -> its torchvision peer for --part train (the closest design; SSD's is the same layout
# composed from torchvision's parts, as torchvision ships none). Every row is also set against torchvision SSDLite.
TRAIN_PEERS = {"faster_rcnn": TV_FRCNN, "ssdlite": TV_SSD, "ssd": TV_SSD_MNV2}
TRAIN_BATCH = 8


def train_batches(with_masks=False):
    """The timed training steps' data: 8 ``shapes`` images at 320 px (their boxes; masks if asked), repeated.

    The contract's string ``file_name`` is dropped (the steps do not read it, and XLA cannot take a string
    input), as ``keras-det train`` does under ``tf.distribute``.
    """
    import tensorflow as tf

    from keras_det import data

    images = data.load("shapes", "train", zoo.FORMAT, num_images=TRAIN_BATCH, image_size=SIZE, with_masks=with_masks,
                       seed=0)
    batches = data.pipeline(images.map(zoo._without("keypoints")), TRAIN_BATCH, max_boxes=16, cache=True,
                            drop_remainder=True).repeat()
    return batches.map(lambda b: {k: v for k, v in b.items() if getattr(v, "dtype", None) != tf.string})


def train(args):
    """Images/s of one training step at 320×320, batch 8: keras_det's ``fit`` step against torchvision's.

    keras_det: ``model.train_function`` (what ``fit`` runs per step: forward, the
    model's losses, gradients, SGD momentum 0.9 update) on 8 ``shapes`` images
    (320 px, their boxes, 91-class configurations of `zoo.speed_detector`).
    torchvision: `harness.TorchPeer` ``train`` — ``model.train()``, the sum of
    its loss dict, ``backward``, ``SGD(momentum=0.9).step()`` on 8 random images
    with 4 random boxes each (every trainable layer trains on both sides:
    ``weights=None`` gives torchvision trainable BatchNorms). Interleaved
    rounds, paired ratios as in ``speed``.
    """
    import keras
    import tensorflow as tf

    batches = train_batches()
    bench = harness.Interleaved(args.warmup, args.rounds, args.runs_per_round)
    info = {}
    for name in [n for n in TRAIN_PEERS if n in args.models]:
        model = zoo.speed_detector(name, 91, SIZE)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        model.fit(batches, steps_per_epoch=2, epochs=1, verbose=0)  # builds and traces model.train_function
        iterator = iter(batches)
        step = model.train_function

        def run(n, step=step, iterator=iterator):
            times = []
            for _ in range(n):
                start = time.perf_counter()
                harness.fetch(step(iterator))
                times.append(1000 * (time.perf_counter() - start))
            return times

        bench.add(name, run)
        # count_params() needs `built`, which fit does not set on these subclassed models: count the variables.
        info[name] = {"params": sum(int(tf.size(w)) for w in model.weights),
                      "trainable_params": sum(int(tf.size(w)) for w in model.trainable_weights), "framework": "keras_det",
                      # one image's inference forward, as the peer's "flops": what a step's compute scales with
                      "flops": padded_flops(model, tf.zeros((1, SIZE, SIZE, 3)))["flops"]}
    torch_peers = []
    if args.torch_python:
        for peer_name in sorted({TRAIN_PEERS[n] for n in info} | ({TV_SSD} if info else set())):
            model_name = TORCH_MODEL[peer_name]
            for threads in args.torch_threads:
                variant = f"{peer_name}@{threads}t"
                try:
                    peer = harness.TorchPeer(args.torch_python, model_name, threads, args.warmup, SIZE,
                                             args.torch_omp_wait_policy, train_batch=TRAIN_BATCH)
                except Exception as e:  # noqa: BLE001 - a peer that cannot start is reported, not fatal
                    bench.errors[variant] = f"{type(e).__name__}: {e}"
                    continue
                torch_peers.append(peer)
                bench.add(variant, peer.runner("train"))
                info[variant] = {**peer.info, "framework": "torchvision"}
    else:
        bench.errors["torchvision"] = "skipped: pass --torch-python (a Python with torch + torchvision)"
    bench.measure()
    for peer in torch_peers:
        peer.close()
    summary = bench.summary()
    ms = dict(summary["ms"])
    best = best_variants(ms)
    for base, variant in best.items():
        ms[base] = ms[variant]
        bench.times[base] = bench.times[variant]
        info[base] = {**info[variant], "variants_ms": {k: ms[k] for k in ms if k.startswith(base + "@")}}
        summary["iqr_ms"][base] = summary["iqr_ms"][variant]
    rows = {}
    for name in ms:
        if "@" in name:
            continue
        row = {"label": LABELS[name], **info[name], "ms_per_step": ms[name], "iqr_ms": summary["iqr_ms"][name],
               "images_per_s": TRAIN_BATCH * 1000.0 / ms[name]}
        peer = TRAIN_PEERS.get(name)
        if peer in ms:
            row["nearest_peer"] = peer
            # images/s ratio (> 1: keras_det trains faster) = the peer's time over ours, paired per round.
            row["images_per_s_ratio_to_peer"] = 1.0 / bench.paired(name, peer)
        if name in TRAIN_PEERS and TV_SSD in ms:
            row["images_per_s_ratio_to_torchvision_ssdlite"] = 1.0 / bench.paired(name, TV_SSD)
        rows[name] = row
    return {"image_size": SIZE, "batch": TRAIN_BATCH, "protocol": summary["protocol"],
            "timed_runs": summary["timed_runs"], "cpu_steal_percent": summary["cpu_steal_percent"],
            "rows": rows, "errors": summary["errors"], "torch_variants": best}


# The dense part of each model kind, images -> raw tensors (no decoding, no NMS): what XLA can compile whole.
DENSE_PARTS = ("head_outputs", "heads", "features")


def dense_forward(model):
    """``(name, fn)``: the model's dense forward -- single-stage ``head_outputs`` (backbone, neck, heads),
    classify+localize ``heads``, the R-CNN family's ``features`` (backbone + FPN) -- or ``(None, None)``."""
    for attr in DENSE_PARTS:
        if hasattr(model, attr):
            return attr, getattr(model, attr)
    return None, None


def _first_error(e):
    text = f"{type(e).__name__}: {e}".strip()
    for key in ("Detected unsupported operations", "requires", "No registered"):
        for line in text.splitlines():
            if key in line:
                return (f"{type(e).__name__}: " + line.strip())[:300]
    return text.splitlines()[0][:300]


def _max_rel_diff(a, b):
    """Largest ``|a - b| / max(|a|, 1)`` over every float tensor of two nested outputs (ints: any mismatch = inf)."""
    import numpy as np
    import tensorflow as tf

    worst = 0.0
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            return float("inf")
        if not np.issubdtype(x.dtype, np.floating):
            if not np.array_equal(x, y):
                return float("inf")
            continue
        if x.size:
            worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1.0))))
    return worst


def xla(args):
    """``jit_compile`` (XLA) measured for every detector: inference and the training step, against the default graph.

    Per detector (the 320-px configurations of `zoo.speed_detector`, 91 classes, served copies for inference):

    * ``e2e``: ``tf.function(jit_compile=True)`` of the whole model call (decode and NMS included);
    * ``dense``: the dense forward alone (`dense_forward`: backbone, neck and heads, no decoding), XLA
      against the default graph -- the part XLA could take over if the rest cannot be compiled;
    * ``train``: ``compile(jit_compile=True)``'s ``fit`` step (8 ``shapes`` images at 320 px, SGD) against
      ``jit_compile=False``, both models built from the same seed; the first step's losses are compared.

    A configuration XLA cannot compile is reported with the op it stopped at. Times: interleaved rounds,
    paired ratios XLA / default (< 1: XLA faster); ``max_rel_diff``: the largest relative difference of the
    outputs (losses for ``train``).
    """
    import keras
    import tensorflow as tf

    from keras_det.models import inference_copy

    batch = tf.constant(photo()[None])
    bench = harness.Interleaved(args.warmup, args.rounds, args.runs_per_round)
    rows, pairs = {}, {}
    for name in [n for n in args.models if n in zoo.DETECTORS and n not in zoo.PROPOSAL_DETECTORS]:
        row = rows.setdefault(name, {"label": LABELS[name]})
        keras.utils.set_random_seed(0)
        model = zoo.speed_detector(name, 91, SIZE)
        model(batch, training=False)
        served = inference_copy(model, batch)
        candidates = {"e2e": lambda t, m=served: m(t, training=False)}
        part, fn = dense_forward(served)
        if part:
            candidates["dense"] = lambda t, f=fn: f(t, training=False)
            row["dense_part"] = part
        for kind, call in candidates.items():
            plain, jitted = tf.function(call), tf.function(call, jit_compile=True)
            reference = harness.fetch(plain(batch))
            try:
                compiled = harness.fetch(jitted(batch))
            except Exception as e:  # noqa: BLE001 - what XLA cannot compile is the result
                row[kind] = {"compiles": False, "error": _first_error(e)}
                print(f"xla {name} {kind}: {row[kind]['error']}", flush=True)
                continue
            row[kind] = {"compiles": True, "max_rel_diff": _max_rel_diff(reference, compiled)}
            bench.add(f"{name}/{kind}", harness.timer(plain, batch))
            bench.add(f"{name}/{kind}@xla", harness.timer(jitted, batch))
            pairs[(name, kind)] = (f"{name}/{kind}@xla", f"{name}/{kind}")
        # Training: two models from the same seed, one step each on the same batch.
        steps, losses = {}, {}
        batches = train_batches(name in zoo.MASK_DETECTORS)
        first = next(iter(batches))
        for jit in (False, True):
            keras.utils.set_random_seed(0)
            m = zoo.speed_detector(name, 91, SIZE)
            m.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), jit_compile=jit)
            try:
                losses[jit] = {k: float(v) for k, v in m.train_on_batch(first, return_dict=True).items()}
                m.fit(batches, steps_per_epoch=1, epochs=1, verbose=0)  # traces model.train_function
            except Exception as e:  # noqa: BLE001
                row["train"] = {"compiles": False, "error": _first_error(e)}
                print(f"xla {name} train: {row['train']['error']}", flush=True)
                break
            steps[jit] = (m.train_function, iter(batches))
        else:
            row["train"] = {"compiles": True, "max_rel_diff": _max_rel_diff(
                [losses[False][k] for k in sorted(losses[False])], [losses[True][k] for k in sorted(losses[False])])}
            for jit, (step, iterator) in steps.items():
                bench.add(f"{name}/train" + ("@xla" if jit else ""),
                          lambda n, step=step, iterator=iterator: harness.timer(lambda: step(iterator))(n))
            pairs[(name, "train")] = (f"{name}/train@xla", f"{name}/train")
    bench.measure()
    summary = bench.summary()
    for (name, kind), (jitted, plain) in pairs.items():
        if jitted in summary["ms"] and plain in summary["ms"]:
            rows[name][kind].update(ms=summary["ms"][plain], xla_ms=summary["ms"][jitted],
                                    xla_ratio=bench.paired(jitted, plain))
        else:
            rows[name][kind]["error"] = summary["errors"].get(jitted) or summary["errors"].get(plain)
    return {"image_size": SIZE, "train_batch": TRAIN_BATCH, "protocol": summary["protocol"],
            "timed_runs": summary["timed_runs"], "cpu_steal_percent": summary["cpu_steal_percent"], "rows": rows,
            "skipped": {n: "takes external proposals (the RoI stage is CropAndResize / gathers, as Fast R-CNN)"
                        for n in zoo.PROPOSAL_DETECTORS if n in args.models}}


def _short_xla_error(error):
    """``"no XLA kernel: CropAndResize"`` / ``"NMS needs pad_to_max_output_size"`` from a compile error."""
    import re

    ops = re.findall(r"XLA_CPU_JIT: (\w+)", error)
    if ops:
        return "no XLA kernel for " + ", ".join(dict.fromkeys(ops))
    if "pad_to_max_output_size" in error:
        return "unpadded NMS (XLA needs pad_to_max_output_size)"
    return error.split(": ", 1)[-1][:90]


def xla_table(x):
    """Markdown table of the xla section (XLA / default time ratios; < 1: XLA faster)."""
    lines = ["| detector | e2e (decode + NMS) | dense forward | training step |", "|---|---|---|---|"]

    def cell(c):
        if not c:
            return "–"
        if not c.get("compiles"):
            return "does not compile: " + _short_xla_error(c["error"]).replace("|", "/")
        if "xla_ratio" not in c:
            return f"compiles; not timed ({c.get('error')})"
        return f"{c['xla_ratio']:.2f}× ({c['ms']:.0f} → {c['xla_ms']:.0f} ms, diff {c['max_rel_diff']:.1e})"

    for r in x["rows"].values():
        lines.append(f"| {r['label']} | {cell(r.get('e2e'))} | {cell(r.get('dense'))} | {cell(r.get('train'))} |")
    return "\n".join(lines)


def train_table(t):
    """Markdown table of the train section."""
    lines = [
        f"| detector | params | GFLOPs (forward, 1 image) | ms per step (batch {t['batch']}, median, IQR) | images/s | "
        "images/s ratio to peer | images/s ratio to torchvision SSDLite |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(t["rows"].items(), key=lambda kv: kv[1]["ms_per_step"]):
        lo, hi = r["iqr_ms"]
        ratio = (f"{r['images_per_s_ratio_to_peer']:.2f}× {LABELS[r['nearest_peer']]}"
                 if "images_per_s_ratio_to_peer" in r else "—")
        label = r["label"] + (f" ({r['threads']} thread{'s' if r['threads'] > 1 else ''})"
                              if r.get("framework") == "torchvision" else "")
        gflops = f"{r['flops'] / 1e9:.2f}" if r.get("flops") else "—"
        ssd = (f"{r['images_per_s_ratio_to_torchvision_ssdlite']:.2f}×"
               if "images_per_s_ratio_to_torchvision_ssdlite" in r else "—")
        lines.append(f"| {label} | {r['params'] / 1e6:.1f} M | {gflops} | {r['ms_per_step']:.0f} ({lo:.0f}–{hi:.0f}) | "
                     f"{r['images_per_s']:.2f} | {ratio} | {ssd} |")
    return "\n".join(lines)


def speed_table(s):
    """Markdown table of the speed section."""
    peak = s["peak"]["measured_gflops"]
    lines = [
        f"| detector | params | GFLOPs | ms/image (median, IQR) | GFLOP/s | % of peak ({peak:.0f} GFLOP/s) "
        "| ratio to nearest peer | ratio to torchvision SSDLite |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(s["rows"].items(), key=lambda kv: kv[1]["ms"]):
        lo, hi = r["iqr_ms"]
        ms = f"{r['ms']:.1f} ({lo:.1f}–{hi:.1f})"
        if "ms_with_proposals" in r:
            ms += f"; {r['ms_with_proposals']:.0f} with proposals"
        near = f"{r['ratio_to_nearest_peer']:.2f}× {LABELS[r['nearest_peer']]}" if "ratio_to_nearest_peer" in r else "—"
        ssd = f"{r['ratio_to_torchvision_ssdlite']:.2f}×" if "ratio_to_torchvision_ssdlite" in r else "—"
        lines.append(f"| {r['label']} | {r['params'] / 1e6:.1f} M | {r['gflops']:.2f} | {ms} | "
                     f"{r['attained_gflops_per_s']:.1f} | {100 * r['fraction_of_measured_peak']:.1f} % | {near} | {ssd} |")
    if s.get("selective_search_ms") is not None:
        lines.append(f"\nSelective search (fast) on the 320×320 photo: {s['selective_search_ms']:.0f} ms; R-CNN and "
                     f"Fast R-CNN run on {s['proposals']} of its proposals.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# accuracy
# ---------------------------------------------------------------------------


def kerascv_batches(task):
    """The single-stage training batches of ``task`` in keras-cv's ``(images, {"boxes", "classes"})`` form."""
    import tensorflow as tf

    def convert(batch):
        boxes = batch["bounding_boxes"]
        return batch["images"], {"boxes": boxes["boxes"], "classes": tf.cast(boxes["labels"], tf.float32)}

    return task.batches("ssd", training=True).map(convert)


class _Decoded:
    """A keras-cv detector seen through the keras_det prediction contract (for zoo.evaluate)."""

    def __init__(self, model):
        import tensorflow as tf

        self.model = model
        self.fn = tf.function(decoded(model))

    def predict_on_batch(self, images):
        out = self.fn(images)
        return {"boxes": out["boxes"], "scores": out["confidence"], "labels": out["classes"],
                "num_detections": out["num_detections"]}

    def __call__(self, images, training=False):
        return self.fn(images)


def train_kerascv(task, budget, timing_runs, steps_per_call=50):
    import keras

    keras.utils.set_random_seed(0)
    model = zoo.kerascv_yolov8(len(task.class_names), confidence_threshold=0.01)
    recipe = zoo.RECIPES["single_stage"]
    # keras-cv's YOLOV8 example clips the global gradient norm at 10.
    model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"], global_clipnorm=10.0),
                  classification_loss="binary_crossentropy", box_loss="ciou")
    run = harness.train_for_cpu_seconds(model, kerascv_batches(task), budget, steps_per_call)
    wrapped = _Decoded(model)
    metrics = zoo.evaluate(wrapped, task.batches("ssd", training=False))
    return {
        "model": KERASCV, "budget_cpu_s": budget, "recipe": recipe, **run,
        "train_images_per_s": run["steps"] * recipe["batch_size"] / run["wall_s"],
        "AP": metrics["AP"], "AP50": metrics["AP50"], "coco": metrics, "params": int(model.count_params()),
        "infer_ms": zoo.inference_ms(wrapped, task, "ssd", timing_runs),
    }


def accuracy(args):
    task = zoo.ShapesTask(args.train_images, args.test_images, need_proposals=bool(set(args.models) & set(zoo.PROPOSAL_DETECTORS)),
                          need_masks=bool(set(args.models) & set(zoo.MASK_DETECTORS)),
                          need_keypoints=bool(set(args.models) & set(zoo.KEYPOINT_DETECTORS)))
    rows = {}
    for name in args.models:
        rows[name], _ = zoo.train_on_shapes(name, task, args.budget, steps_per_call=args.steps_per_call)
        _log_row(rows[name])
    if "classify_localize" in args.models:
        single = zoo.ShapesTask(args.train_images, args.test_images, need_proposals=False, need_masks=False,
                                max_objects=1)
        rows[ONE_OBJECT], _ = zoo.train_on_shapes("classify_localize", single, args.budget,
                                                  steps_per_call=args.steps_per_call)
        rows[ONE_OBJECT]["data"] = "shapes with max_objects=1"
        _log_row(rows[ONE_OBJECT], ONE_OBJECT)
    if not args.no_kerascv:
        rows[KERASCV] = train_kerascv(task, args.budget, 30, args.steps_per_call)
        _log_row(rows[KERASCV])
    out = {"budget_cpu_s": args.budget, "train_images": args.train_images, "test_images": args.test_images,
           "image_size": zoo.SHAPES_SIZE, "rows": rows}
    if task.proposals is not None:
        out["proposals"] = task.proposal_info
    return out


def _instance_scores(r):
    """`` mask AP 0.123 (AP50 0.456) keypoint AP ...`` of a row's ``segm`` / ``keypoints`` entries."""
    return "".join(f", {what} AP {r[t]['AP']:.3f} (AP50 {r[t]['AP50']:.3f})"
                   for t, what in (("segm", "mask"), ("keypoints", "keypoint")) if t in r)


def _log_row(r, key=None):
    print(f"{LABELS[key or r['model']]}: {r['steps']} steps in {r['cpu_s']:.0f} CPU-s ({r['wall_s']:.0f} s wall), "
          f"AP {r['AP']:.3f} AP50 {r['AP50']:.3f}{_instance_scores(r)}, {r['infer_ms']:.1f} ms/image", flush=True)


def _ap_cells(r, iou_type):
    """``AP50 / AP`` of a row's ``segm`` or ``keypoints`` entry, ``–`` without it."""
    return f"{r[iou_type]['AP50']:.3f} / {r[iou_type]['AP']:.3f}" if iou_type in r else "–"


def merge_accuracy(old, fresh):
    """``fresh`` accuracy results, plus ``old``'s rows of detectors not re-trained now and its
    hand-written ``notes`` when both ran with the same budget and data (else ``fresh`` alone)."""
    if any(old.get(k) != fresh[k] for k in ("budget_cpu_s", "train_images", "test_images")):
        return fresh
    merged = {**fresh, "rows": {**old.get("rows", {}), **fresh["rows"]}}
    if old.get("notes") and "notes" not in fresh:
        merged["notes"] = old["notes"]
    return merged


def accuracy_table(a):
    lines = [
        f"| detector | AP50 | AP | mask AP50 / AP | keypoint AP50 / AP (OKS) | training steps | training images/s "
        f"| ms/image ({a['image_size']} px, batch 1) | params |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(a["rows"].items(), key=lambda kv: -kv[1]["AP50"]):
        ms = f"{r['infer_ms']:.1f}" + (f" + {r['proposal_ms']:.0f} selective search" if "proposal_ms" in r else "")
        lines.append(f"| {LABELS[name]} | {r['AP50']:.3f} | {r['AP']:.3f} | {_ap_cells(r, 'segm')} "
                     f"| {_ap_cells(r, 'keypoints')} | {r['steps']} | {r['train_images_per_s']:.1f} "
                     f"| {ms} | {r['params'] / 1e6:.2f} M |")
    stalled = [LABELS[n] for n, r in a["rows"].items() if r["AP50"] < 0.05]
    if stalled:
        lines.append(f"\nBelow AP50 0.05, i.e. not yet learned within {a['budget_cpu_s']:g} CPU-s from scratch: "
                     + ", ".join(stalled) + ".")
    # Hand-written remarks on particular rows, kept in the JSON so the report regenerates them.
    lines.extend("\n" + note for note in a.get("notes", ()))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=("speed", "train", "xla", "accuracy"), default=["speed", "accuracy"],
                        help="train (not in the default): one training step's images/s against torchvision; "
                             "xla (not in the default): jit_compile against the default graph, per detector")
    parser.add_argument("--models", nargs="+", choices=zoo.DETECTORS + zoo.ACCURACY_ONLY,
                        default=list(zoo.DETECTORS + zoo.ACCURACY_ONLY),
                        help="zoo.ACCURACY_ONLY detectors (mask_rcnn_keypoints) are skipped by --part speed")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs-per-round", type=int, default=4)
    parser.add_argument("--proposals", type=int, default=200, help="speed: proposals per image for R-CNN / Fast R-CNN")
    parser.add_argument("--torch-python", default=os.environ.get("KERAS_DET_TORCH_PYTHON"),
                        help="a Python with torch + torchvision for the torchvision peers")
    parser.add_argument("--torch-threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}),
                        help="thread counts to time each torchvision peer with; its row is the fastest")
    parser.add_argument("--torch-omp-wait-policy", default="",
                        help="OMP_WAIT_POLICY of the torch subprocesses ('' = OpenMP's default: spin briefly, then "
                             "sleep). PASSIVE made 2-thread SSDLite 1.6x slower here (a wake-up per parallel region)")
    parser.add_argument("--unfolded-too", action="store_true",
                        help="speed: also time every keras_det model with its BatchNorms unfolded (<row>_unfolded)")
    parser.add_argument("--no-kerascv", action="store_true")
    parser.add_argument("--no-kerashub", action="store_true")
    parser.add_argument("--budget", type=float, default=300.0, help="accuracy: training budget, process CPU seconds")
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--test-images", type=int, default=200)
    parser.add_argument("--steps-per-call", type=int, default=50, help="accuracy: training steps between budget checks")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    payload = harness.read_json(args.output)
    payload["machine"] = harness.machine_info()
    if "speed" in args.part:
        payload["speed"] = {**speed(args), "machine": payload["machine"]}
        payload["speed_settings"] = vars(args)
        harness.write_json(args.output, payload)
        print(speed_table(payload["speed"]))
    if "train" in args.part:
        payload["train"] = {**train(args), "machine": payload["machine"]}
        payload["train_settings"] = vars(args)
        harness.write_json(args.output, payload)
        print(train_table(payload["train"]))
    if "xla" in args.part:
        payload["xla"] = {**xla(args), "machine": payload["machine"]}
        payload["xla_settings"] = vars(args)
        harness.write_json(args.output, payload)
        print(xla_table(payload["xla"]))
    if "accuracy" in args.part:
        payload["accuracy"] = {**merge_accuracy(payload.get("accuracy", {}), accuracy(args)), "machine": payload["machine"]}
        payload["accuracy_settings"] = vars(args)
        harness.write_json(args.output, payload)
        print(accuracy_table(payload["accuracy"]))
    return payload


if __name__ == "__main__":
    main()
