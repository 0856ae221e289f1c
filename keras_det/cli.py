"""The ``keras-det`` command line.

    keras-det demo                       train → evaluate → export → predict on `shapes`
    keras-det train   --model faster_rcnn --data shapes --output-dir runs/train
    keras-det evaluate --gt gt.json --results dets.json      (or --model M --data D)
    keras-det export  runs/train/model.keras saved_models/shapes --image-size 128
    keras-det predict saved_models/shapes/1 image.jpg folder/ ... --output runs/pred

    keras-det proposals --input 'images/*.jpg' --output runs/proposals   (Beam)
    keras-det bench ladder | peers | report [--run]                       (benchmarks/)

Progress bars are Keras' own; without a terminal (CI, pipes) they print one
line per epoch. See docs/cli.md.
"""

import argparse
import json
import os
import sys
import time

# The demo's detector: a Faster R-CNN sized for 128-px `shapes` images on 2 CPU
# cores. Objects are 8-77 px, so it pools from the stride-8 map (C3) with
# 4 anchor sizes x 3 ratios; on the paper's stride-16 map AP50 stayed at 0.26
# after 3 CPU-minutes against 0.63 here.
DEMO_MODEL = dict(
    backbone="tiny",
    feature_tap="C3",
    anchor_sizes=(12, 24, 48, 96),
    aspect_ratios=(0.5, 1.0, 2.0),
    rpn_filters=64,
    fc_dims=(256, 256),
    rpn_pre_nms_topk_train=1000,
    rpn_post_nms_topk_train=300,
    rpn_pre_nms_topk_test=500,
    rpn_post_nms_topk_test=100,
    roi_batch_size_per_image=128,
    max_detections=50,
)


def _verbose():
    return 1 if sys.stdout.isatty() and not os.environ.get("CI") else 2


def _say(message):
    print(f"[keras-det] {message}", flush=True)


def _shapes_data(image_size, num_train, num_eval, batch_size, seed):
    from keras_det import data

    train, info = data.load("shapes", "train", num_images=num_train, image_size=image_size, with_masks=False, with_info=True, seed=seed)
    test = data.load("shapes", "test", num_images=num_eval, image_size=image_size, with_masks=False, seed=seed)
    train_batches = data.pipeline(train, batch_size, shuffle=1000, cache=True, drop_remainder=True, seed=seed).repeat()
    return train_batches, data.batch(test, 16), info


def evaluate_model(model, dataset, bounding_box_format="xyxy"):
    """COCO metrics of ``model`` on a batched data-contract ``dataset``."""
    from keras_det.metrics import COCOEvaluator

    evaluator = COCOEvaluator(bounding_box_format=bounding_box_format)
    for batch in dataset:
        evaluator.update_state(batch["bounding_boxes"], model.predict_on_batch(batch["images"]))
    return {k: float(v) for k, v in evaluator.result().items()}


def _print_metrics(metrics):
    line = "  ".join(f"{k} {v:.3f}" for k, v in metrics.items())
    _say(f"COCO metrics: {line}")


def cmd_demo(args):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_det.export import export_saved_model
    from keras_det.models.faster_rcnn import FasterRCNN
    from keras_det.visualize import draw_detections, save_png

    keras.utils.set_random_seed(args.seed)
    size = args.image_size
    _say(f"data: embedded `shapes` set, {args.train_images} training / {args.eval_images} test images of {size}x{size}")
    train, test, info = _shapes_data(size, args.train_images, args.eval_images, args.batch_size, args.seed)
    model = FasterRCNN(len(info.class_names), bounding_box_format="xyxy", **DEMO_MODEL)
    model.image_size = (size, size)
    total_steps = args.epochs * args.steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=total_steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    _say(f"train: Faster R-CNN (tiny backbone), {args.epochs} epochs x {args.steps_per_epoch} steps, batch {args.batch_size}")
    start = time.time()
    model.fit(train, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, verbose=_verbose())
    _say(f"trained in {time.time() - start:.0f} s")

    metrics = evaluate_model(model, test)
    _print_metrics(metrics)
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)

    export_path = export_saved_model(model, args.export_dir, image_size=(size, size), class_names=list(info.class_names))
    _say(f"exported SavedModel: {export_path}")

    batch = next(iter(test))
    images = batch["images"][:4].numpy().astype(np.uint8)
    serving = tf.saved_model.load(export_path).signatures["serving_default"]
    out = serving(images=tf.constant([tf.io.encode_png(image).numpy() for image in images]))
    tiles, kept = [], 0
    zoom = 3  # draw on 3x enlarged images so that labels stay readable
    for i, image in enumerate(images):
        n = int(out["num_detections"][i])
        image = np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1)
        prediction = {
            "boxes": out["detection_boxes"][i, :n].numpy() * size * zoom,  # normalized yxyx -> pixels
            "scores": out["detection_scores"][i, :n].numpy(),
            "labels": out["detection_classes"][i, :n].numpy().astype(np.int32) - 1,
        }
        kept += int((prediction["scores"] >= args.score_threshold).sum())
        tiles.append(draw_detections(image, prediction, "yxyx", class_names=info.class_names, score_threshold=args.score_threshold))
    grid = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:4], 1)], 0)
    png = save_png(grid, os.path.join(args.output, "prediction.png"))
    _say(f"predicted 4 test images through the SavedModel: {kept} boxes >= {args.score_threshold} drawn in {png}")
    _say(f"metrics: {os.path.join(args.output, 'metrics.json')}")
    return 0


def cmd_evaluate(args):
    if args.metric == "voc" or not args.gt.lower().endswith(".json"):
        # VOC AP, or ground truth that is a dataset folder / TFDS name: the
        # evaluation pipeline, run in-process, does both.
        import tempfile

        from pipelines import evaluate as pipeline

        with tempfile.TemporaryDirectory() as out:
            summary = pipeline.run(
                ["--gt", args.gt, "--gt_split", args.gt_split, "--detections", args.results, "--output", out, "--metric", args.metric]
            )
        print(pipeline.format_table(summary))
        stats = summary["stats"]
    else:
        from keras_det.metrics import evaluate_coco

        stats = evaluate_coco(args.gt, args.results)
        _print_metrics(stats)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(stats, f, indent=2)
    return 0


def cmd_export(args):
    import keras

    import keras_det.models  # noqa: F401  (registers the models for load_model)
    from keras_det.export import export_saved_model

    if not os.path.isfile(args.model):
        raise SystemExit(f"keras-det export: model file {args.model!r} does not exist.")
    model = keras.saving.load_model(args.model)
    trained = getattr(model, "image_size", None)
    if args.image_size is None:
        if trained is None:
            raise ValueError(f"export: {args.model!r} does not record its training image size; pass --image-size H [W].")
        size = tuple(trained)
    elif len(args.image_size) in (1, 2):
        size = tuple(args.image_size) if len(args.image_size) == 2 else (args.image_size[0],) * 2
    else:
        raise ValueError(f"--image-size takes one size or height width, got {len(args.image_size)} values {args.image_size}.")
    if trained is not None and tuple(size) != tuple(trained):
        _say(f"warning: exporting at {size[0]}x{size[1]} but the model was trained at {trained[0]}x{trained[1]}: "
             "accuracy may change (omit --image-size to export at the training size)")
    names = getattr(model, "class_names", None)
    names = list(names) if names is not None else None
    names_file = os.path.join(os.path.dirname(os.path.abspath(args.model)), "class_names.json")
    if names is None and os.path.isfile(names_file):  # models saved before they remembered their classes
        names = json.load(open(names_file))
    _say(f"exported {export_saved_model(model, args.export_dir, image_size=size, class_names=names)}")
    return 0


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _image_paths(items):
    """Files and the images inside folders, in order; a missing path is an error naming it."""
    paths = []
    for item in items:
        if os.path.isdir(item):
            paths += sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMAGE_SUFFIXES))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise SystemExit(f"keras-det predict: {item!r} is neither an image file nor a folder.")
    if not paths:
        raise SystemExit("keras-det predict: no images found in " + ", ".join(map(repr, items)))
    return paths


def cmd_predict(args):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_det.visualize import draw_detections, save_png

    if not os.path.isfile(os.path.join(args.saved_model, "saved_model.pb")):
        raise SystemExit(f"keras-det predict: {args.saved_model!r} is not a SavedModel version directory (no saved_model.pb).")
    paths = _image_paths(args.images)
    serving = tf.saved_model.load(args.saved_model).signatures["serving_default"]
    labels_path = os.path.join(args.saved_model, "assets", "label_map.pbtxt")
    names = None
    if os.path.isfile(labels_path):
        names = [line.split("'")[1] for line in open(labels_path) if line.strip().startswith("name:")]
    os.makedirs(args.output, exist_ok=True)
    results = {}
    progress = keras.utils.Progbar(len(paths), verbose=_verbose())
    for i, path in enumerate(paths):
        data = open(path, "rb").read()
        image = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        out = serving(images=tf.constant([data]))
        n = int(out["num_detections"][0])
        h, w = image.shape[:2]
        prediction = {
            "boxes": out["detection_boxes"][0, :n].numpy() * np.array([h, w, h, w], np.float32),
            "scores": out["detection_scores"][0, :n].numpy(),
            "labels": out["detection_classes"][0, :n].numpy().astype(np.int32) - 1,
        }
        keep = prediction["scores"] >= args.score_threshold
        results[path] = [
            {
                "box_xyxy": [round(float(v), 2) for v in box[[1, 0, 3, 2]]],
                "score": round(float(score), 4),
                "label": int(label),
                "class": names[label] if names and 0 <= label < len(names) else str(label),
            }
            for box, score, label in zip(prediction["boxes"][keep], prediction["scores"][keep], prediction["labels"][keep])
        ]
        drawn = draw_detections(image, prediction, "yxyx", class_names=names, score_threshold=args.score_threshold)
        save_png(drawn, os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + "_pred.png"))
        progress.update(i + 1)
    with open(os.path.join(args.output, "detections.json"), "w") as f:
        json.dump(results, f, indent=1)
    total = sum(len(v) for v in results.values())
    _say(f"{len(paths)} images, {total} detections >= {args.score_threshold}: drawings and detections.json in {args.output}")
    return 0


def train_classifier(args):
    """The classification path: a TransferClassifier on a folder of class subfolders."""
    import keras

    from keras_det.models.transfer import TransferClassifier, fine_tune, recommend_strategy

    size = args.image_size
    train = keras.utils.image_dataset_from_directory(
        args.data, image_size=(size, size), batch_size=args.batch_size, shuffle=True, seed=0
    )
    names = list(train.class_names)
    count = sum(int(b[1].shape[0]) for b in train)
    advice = recommend_strategy(count, args.similarity)
    _say(f"{count} images of {len(names)} classes; {advice['advice']}")
    model = TransferClassifier(
        len(names),
        backbone=args.backbone,
        backbone_weights=_backbone_weights(args.backbone_weights),
        input_shape=(size, size, 3),
        tap=advice["tap"],
    )
    layers = advice["fine_tune_layers"] if args.fine_tune is None else args.fine_tune
    if layers:
        fine_tune(model.backbone, layers, lr_multiplier=0.1)
        _say(f"fine-tuning the top {layers} backbone layers at 0.1x the learning rate")
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    model.fit(train.repeat(), epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, verbose=_verbose())
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    model.save(args.output)
    _say(f"classifier ({', '.join(names)}) saved to {args.output}")
    return 0


def _backbone_weights(value):
    """``--backbone-weights``: ``imagenet``, ``none`` or an existing ``.h5`` file.

    Raises:
        ValueError: a path that does not exist, naming it.
    """
    if value is None or str(value).lower() == "none":
        return None
    if str(value).lower() == "imagenet":
        return "imagenet"
    if not os.path.isfile(value):
        raise ValueError(f"--backbone-weights: weights file {value!r} does not exist (expected imagenet, none or a .h5 file).")
    return value


def build_detector(name, num_classes, backbone, image_size, backbone_weights=None, anchor_sizes=None, train_boxes_wh=None):
    """A CPU-sized detector of the given kind for ``keras-det train``.

    Args:
        name: one of `DETECTORS`.
        num_classes: object classes.
        backbone: a backbone name (``"tiny"``, ``"mobilenet_v2"``, ...).
        image_size: the square training size ``S``.
        backbone_weights: ``"imagenet"``, ``None`` or a ``.h5`` path,
            passed to every model's backbone.
        anchor_sizes: Faster / Mask R-CNN anchor sizes (pixels at ``S``);
            default `DEMO_MODEL`'s.
        train_boxes_wh: ``[N, 2]`` training box widths / heights at ``S``:
            YOLO's 9 priors are their k-means clusters (``None``: YOLO's
            defaults scaled to ``S``).
    """
    from keras_det.models import SSD, YOLO, FasterRCNN, MaskRCNN

    two_stage = {k: v for k, v in DEMO_MODEL.items() if k != "backbone"}
    if anchor_sizes is not None:
        two_stage["anchor_sizes"] = tuple(float(a) for a in anchor_sizes)
    size = (image_size, image_size)
    common = dict(backbone=backbone, backbone_weights=backbone_weights, bounding_box_format="xyxy")
    if name == "faster_rcnn":
        return FasterRCNN(num_classes, **common, **two_stage)
    if name == "mask_rcnn":
        return MaskRCNN(num_classes, mask_conv_dims=64, **common, **two_stage)
    if name == "ssd":
        return SSD(num_classes, image_size=size, **common)
    if name == "yolo":
        priors = None
        if train_boxes_wh is not None and len(train_boxes_wh) >= 9:
            from keras_det.models.yolo import priors_per_level
            from keras_det.ops.anchors import kmeans_anchors

            priors = priors_per_level(kmeans_anchors(train_boxes_wh, 9, seed=0))
        return YOLO(num_classes, variant="multiscale", image_size=size, priors=priors, **common)
    raise ValueError(f"--model must be one of {DETECTORS}, got {name!r}.")


DETECTORS = ("faster_rcnn", "mask_rcnn", "ssd", "yolo")


def _load_init_from(path):
    """The trained model of ``--init-from`` (ValueError naming a missing file)."""
    import keras

    import keras_det.models  # noqa: F401  (registers the models)

    if not os.path.isfile(path):
        raise ValueError(f"--init-from: model file {path!r} does not exist.")
    return keras.saving.load_model(path)


def _init_from(model, source, path):
    """Copies the weights of the trained model ``source`` (read from ``path``) into ``model`` where shapes match.

    The two models are built by the same code, so their weight lists line
    up; weights whose shapes differ (e.g. the class heads of a model trained
    on other classes) keep their fresh initialisation.

    Returns:
        ``(copied, skipped)`` counts of weight tensors.

    Raises:
        ValueError: ``source`` is not a model of the same kind, or no weight fits.
    """
    if type(source) is not type(model):
        raise ValueError(f"--init-from: {path!r} holds a {type(source).__name__}, not a {type(model).__name__} (--model).")
    if len(source.weights) != len(model.weights):
        raise ValueError(f"--init-from: {path!r} has {len(source.weights)} weights, the new model {len(model.weights)}: other backbone or head sizes.")
    copied = skipped = 0
    for target, value in zip(model.weights, source.weights):
        if tuple(target.shape) == tuple(value.shape):
            target.assign(value)
            copied += 1
        else:
            skipped += 1
    if not copied:
        raise ValueError(f"--init-from: no weight of {path!r} fits the new model.")
    return copied, skipped


class _Keys:
    """An evaluator whose ``result()`` keeps only ``keys`` (what the progress line shows)."""

    def __init__(self, evaluator, keys):
        self.evaluator, self.keys = evaluator, tuple(keys)

    def reset_state(self):
        self.evaluator.reset_state()

    def update_state(self, y_true, y_pred):
        self.evaluator.update_state(y_true, y_pred)

    def result(self):
        result = self.evaluator.result()
        return {k: float(result[k]) for k in self.keys}


def _detection_data(args, size):
    """Train / validation datasets of ``keras-det train``: ``(train, val, info, train_boxes_wh)``.

    Both are resized with `resize_pad` to ``size`` (the training size);
    the training boxes' widths / heights at that size feed the anchors.
    """
    import numpy as np
    import tensorflow as tf

    from keras_det import data
    from keras_det.data.describe import split_boxes

    options = _load_options(args, args.data)
    train_options, val_options = dict(options), dict(options)
    if args.data == "shapes":
        train_options.update(with_masks=args.model == "mask_rcnn", num_images=args.train_images or 1000)
        val_options.update(with_masks=args.model == "mask_rcnn", num_images=args.val_images)
    train, info = data.load(args.data, args.train_split, "xyxy", with_info=True, **train_options)
    val = None
    if args.val_split.lower() != "none":
        try:
            val, val_info = data.load(args.data, args.val_split, "xyxy", with_info=True, **val_options)
        except data.DataError as error:
            raise data.DataError(f"--val-split {args.val_split}: {error} (--val-split none trains without validation)") from None
        if args.data != "shapes" and set(val_info.file_names) & set(info.file_names):
            _say(f"warning: splits {args.train_split!r} and {args.val_split!r} share "
                 f"{len(set(val_info.file_names) & set(info.file_names))} images; validation AP is optimistic")
    boxes, _, _, _, _ = split_boxes(args.data, args.train_split, size, **train_options)
    wh = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1) if len(boxes) else np.zeros((0, 2))
    wh = wh[(wh[:, 0] > 0) & (wh[:, 1] > 0)]
    resize = lambda d: data.resize_pad(d, size, size, "xyxy")  # noqa: E731
    train = train.map(resize, num_parallel_calls=tf.data.AUTOTUNE)
    if val is not None:
        val = data.batch(val.map(resize, num_parallel_calls=tf.data.AUTOTUNE), 8).cache()
    return train, val, info, wh


def cmd_train(args):
    import keras
    import numpy as np

    from keras_det import data
    from keras_det.metrics import COCOEvaluator
    from keras_det.metrics.callbacks import EvaluationCallback
    from keras_det.models.config import remember
    from keras_det.ops.anchors import kmeans_anchor_sizes

    if args.task == "classify":
        return train_classifier(args)
    start = time.time()
    size = args.image_size
    weights = _backbone_weights(args.backbone_weights)
    source = _load_init_from(args.init_from) if args.init_from else None
    train, val, info, wh = _detection_data(args, size)
    anchors = args.anchor_sizes
    k = len(DEMO_MODEL["anchor_sizes"])
    if anchors is None and source is not None and "anchor_sizes" in getattr(source, "config_args", {}):
        anchors = list(source.config_args["anchor_sizes"])  # the RPN learnt these
        _say(f"anchor sizes of {args.init_from}: {anchors} (--anchor-sizes overrides)")
    elif anchors is None and args.model in ("faster_rcnn", "mask_rcnn"):
        if len(wh) >= k:
            anchors = [round(float(a), 1) for a in kmeans_anchor_sizes(wh, k, seed=0)]
            _say(f"anchor sizes from k-means on {len(wh)} training boxes at {size}x{size}: {anchors} (--anchor-sizes overrides)")
        else:
            _say(f"only {len(wh)} training boxes: default anchor sizes {DEMO_MODEL['anchor_sizes']}")
    augment = None if args.no_augment else data.default_augmentation(size, "xyxy", seed=args.seed)
    batches = data.pipeline(
        train, args.batch_size, augment=augment, image_size=(size, size), bounding_box_format="xyxy",
        shuffle=1000, cache=True, seed=args.seed, drop_remainder=True,
    ).repeat()
    from keras_det import training

    strategy = training.use_strategy(args.strategy, args.mixed_precision)  # before the model is built
    keras.utils.set_random_seed(args.seed)
    model = build_detector(args.model, len(info.class_names), args.backbone, size, weights, anchors, wh)
    remember(model, (size, size), info.class_names)
    model(keras.ops.zeros((1, size, size, 3)))  # BackupAndRestore needs a built model
    if source is not None:
        copied, skipped = _init_from(model, source, args.init_from)
        _say(f"initialised from {args.init_from}: {copied} weight tensors copied, {skipped} kept fresh (other shapes)")
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    run_dir = args.output_dir
    os.makedirs(run_dir, exist_ok=True)
    best_path = os.path.join(run_dir, "best.keras")
    callbacks = [
        # Resumable: an interrupted run continues from its last epoch when started again.
        keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup")),
        keras.callbacks.ModelCheckpoint(os.path.join(run_dir, "checkpoint.keras")),
    ]
    if val is not None:
        # Before the checkpoint and TensorBoard callbacks, which then see val_AP / val_AP50.
        evaluator = _Keys(COCOEvaluator(bounding_box_format="xyxy"), ("AP", "AP50"))
        callbacks.insert(0, EvaluationCallback(val, evaluator, prefix="val_"))
        callbacks.append(keras.callbacks.ModelCheckpoint(best_path, monitor="val_AP", mode="max", save_best_only=True))
    callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")))
    weights_text = {None: "random init", "imagenet": "ImageNet weights"}.get(weights, weights)
    _say(
        f"train: {args.model} ({args.backbone}, {weights_text}) on {args.data} {args.train_split!r} "
        f"({info.num_examples} images, {len(info.class_names)} classes) at {size}x{size}, "
        f"augmentation {'off' if augment is None else 'on'}; validation: {args.val_split}; logs and checkpoints in {run_dir}"
    )
    fit_start = time.time()
    history = None
    if args.strategy == "multi_worker":  # keras.Model.fit fails there in Keras 3.15 (keras-team/keras#20585)
        training.fit_distributed(model, batches, strategy, args.epochs, args.steps_per_epoch, os.path.join(run_dir, "distributed"))
    else:
        history = model.fit(batches, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, verbose=_verbose(), callbacks=callbacks)
    fit_seconds = time.time() - fit_start
    if not training.is_chief(strategy):
        return 0  # only the chief writes the model
    path = os.path.join(run_dir, "model.keras")
    model.save(path)
    with open(os.path.join(run_dir, "class_names.json"), "w") as f:
        json.dump(list(info.class_names), f)
    summary = {"model": path, "image_size": [size, size], "class_names": list(info.class_names),
               "anchor_sizes": list(anchors) if anchors is not None else None,
               "train_seconds": round(fit_seconds, 1), "total_seconds": round(time.time() - start, 1)}
    aps = (history.history.get("val_AP") if history is not None else None) or []
    if aps:
        best = int(np.argmax(aps))
        summary.update(best_epoch=best + 1 + (args.epochs - len(aps)), best=best_path,
                       best_val_AP=float(aps[best]), best_val_AP50=float(history.history["val_AP50"][best]),
                       last_val_AP=float(aps[-1]), last_val_AP50=float(history.history["val_AP50"][-1]))
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if aps:
        _say(f"best epoch {summary['best_epoch']}/{args.epochs}: val AP {summary['best_val_AP']:.3f}, AP50 "
             f"{summary['best_val_AP50']:.3f} ({args.val_split!r}) -> {best_path}; last epoch AP {summary['last_val_AP']:.3f}, "
             f"AP50 {summary['last_val_AP50']:.3f}")
    _say(f"trained in {fit_seconds:.0f} s ({summary['total_seconds']:.0f} s in all); model saved to {path}; "
         f"TensorBoard: {os.path.join(run_dir, 'logs')}; summary.json")
    _say(f"next: keras-det export {path} saved_models/NAME   (exports at the training size {size}x{size})")
    return 0


def _split_options(args):
    """`load` options of the --val-fraction / --test-fraction flags (folders without split lists)."""
    from keras_det.data.core import SPLIT_SEED, TEST_FRACTION, VAL_FRACTION

    options = {}
    if args.val_fraction is not None and args.val_fraction != VAL_FRACTION:
        options["val_fraction"] = args.val_fraction
    if args.test_fraction is not None and args.test_fraction != TEST_FRACTION:
        options["test_fraction"] = args.test_fraction
    if getattr(args, "split_seed", SPLIT_SEED) != SPLIT_SEED:
        options["split_seed"] = args.split_seed
    return options


def _fraction_source(source):
    """Whether ``source`` is a folder whose splits come from the fraction options."""
    from keras_det.data import detect_layout, yolo

    if source == "shapes" or not os.path.exists(source):
        return False
    layout = detect_layout(source)
    return layout == "labelimg" or (layout == "yolo" and yolo.is_single_pool(source))


def _load_options(args, source):
    """The split flags as `load` options, for sources they apply to (a note otherwise)."""
    options = _split_options(args)
    if options and not _fraction_source(source):
        _say(f"{source} has its own splits (split files); --val-fraction / --test-fraction / --split-seed do not apply")
        return {}
    return options


def cmd_data(args):
    from keras_det import data

    options = _load_options(args, args.source)
    description = data.describe(args.source, image_size=args.image_size, num_anchors=args.num_anchors, **options)
    print(data.format_description(description))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(description, f, indent=2)
        _say(f"description written to {args.output}")
    return 0


def _add_split_flags(parser):
    from keras_det.data.core import SPLIT_SEED, TEST_FRACTION, VAL_FRACTION

    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                        help="folders without split lists (flat LabelImg, single-pool YOLO): share of images "
                        f"for validation (default {VAL_FRACTION}); a dataset's own split files win")
    parser.add_argument("--test-fraction", type=float, default=TEST_FRACTION,
                        help=f"likewise for test (default {TEST_FRACTION})")
    parser.add_argument("--split-seed", type=int, default=SPLIT_SEED,
                        help=f"seed of that division (default {SPLIT_SEED})")


def cmd_bench(args):
    """Runs a script of benchmarks/ (source checkouts only) with the remaining arguments."""
    import runpy

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
    script = os.path.join(root, f"{args.name.replace('-', '_')}.py")
    if not os.path.isfile(script):
        available = sorted(f[:-3] for f in os.listdir(root) if f.endswith(".py")) if os.path.isdir(root) else []
        raise SystemExit(
            f"keras-det bench: no benchmark {args.name!r}"
            + (f"; available: {', '.join(available)}" if available else " (benchmarks/ ships with a source checkout)")
        )
    sys.argv = [script, *args.rest]
    runpy.run_path(script, run_name="__main__")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-det", description="Object detection for Keras 3 / TensorFlow.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="train -> evaluate -> export -> predict on the embedded shapes set")
    demo.add_argument("--epochs", type=int, default=8)
    demo.add_argument("--steps-per-epoch", type=int, default=100)
    demo.add_argument("--batch-size", type=int, default=8)
    demo.add_argument("--learning-rate", type=float, default=2e-3)
    demo.add_argument("--image-size", type=int, default=128)
    demo.add_argument("--train-images", type=int, default=1000)
    demo.add_argument("--eval-images", type=int, default=200)
    demo.add_argument("--score-threshold", type=float, default=0.3)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--output", default=os.path.join("runs", "demo"), help="metrics and drawings")
    demo.add_argument("--export-dir", default=os.path.join("saved_models", "shapes_faster_rcnn"))
    demo.set_defaults(func=cmd_demo)

    train = sub.add_parser(
        "train",
        help="train a Faster R-CNN on a dataset (shapes, a folder, or a TFDS name), "
        "or with --task classify a transfer-learning classifier on a folder of class subfolders",
    )
    train.add_argument("--task", choices=("detect", "classify"), default="detect")
    train.add_argument("--model", choices=DETECTORS, default="faster_rcnn", help="detect: which detector")
    train.add_argument("--data", default="shapes", help="'shapes', a COCO/VOC/YOLO folder, or a TFDS name")
    train.add_argument("--train-images", type=int, default=None, help="shapes: number of training images (default 1000)")
    train.add_argument("--val-images", type=int, default=100, help="shapes: number of validation images")
    train.add_argument("--train-split", default="train", help="split to train on (e.g. trainval for VOC)")
    train.add_argument("--val-split", default="validation",
                       help="split evaluated (COCO AP / AP50) after each epoch, picks best.keras; 'none' skips")
    _add_split_flags(train)
    train.add_argument("--backbone", default="tiny", help="tiny, mobilenet_v2, resnet50, vgg16, ... (every model)")
    train.add_argument("--backbone-weights", default=None,
                       help="'imagenet', a local .h5 weights file of the backbone without top, or none (default)")
    train.add_argument("--init-from", metavar="FROM.keras", default=None,
                       help="detect: start from a trained model's weights (same --model; heads of other "
                       "shapes, e.g. other classes, start fresh); unlike resuming, epochs and optimizer start anew")
    train.add_argument("--anchor-sizes", type=float, nargs="+", default=None,
                       help="faster/mask R-CNN anchor sizes in pixels at --image-size (default: k-means on the "
                       "training boxes, as `keras-det data` suggests; 4 sizes)")
    train.add_argument("--no-augment", action="store_true",
                       help="detect: no box-aware augmentation (default: flip, translate, zoom, colour jitter)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--similarity", choices=("similar", "different"), default="similar",
                       help="classify: how close the data is to ImageNet (picks the transfer strategy)")
    train.add_argument("--fine-tune", type=int, default=None, help="classify: top backbone layers to fine-tune")
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--steps-per-epoch", type=int, default=100)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--learning-rate", type=float, default=2e-3)
    train.add_argument("--image-size", type=int, default=128, help="square training size S (images resize_pad-ed to SxS)")
    train.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"), default="default", help="tf.distribute strategy (docs/training.md)")
    train.add_argument("--mixed-precision", choices=("float32", "mixed_float16", "mixed_bfloat16"), default=None, help="dtype policy, e.g. mixed_bfloat16 on CPUs")
    train.add_argument("--output-dir", default=os.path.join("runs", "train"),
                       help="detect: model.keras (last epoch), best.keras (best val AP), checkpoint.keras, "
                       "summary.json, class_names.json, TensorBoard logs/ and the resumable backup/")
    train.add_argument("--output", default=os.path.join("runs", "classifier.keras"), help="classify: the saved model")
    train.set_defaults(func=cmd_train)

    da = sub.add_parser("data", help="images and boxes per split and class, box sizes at --image-size, suggested anchors")
    da.add_argument("source", help="'shapes', a COCO/VOC/LabelImg/YOLO folder, a COCO .json, or a TFDS name")
    da.add_argument("--image-size", type=int, default=128,
                    help="measure boxes after resizing to SxS as training does (default 128, train's default)")
    da.add_argument("--num-anchors", type=int, default=len(DEMO_MODEL["anchor_sizes"]),
                    help=f"k of the k-means anchor sizes (default {len(DEMO_MODEL['anchor_sizes'])}, the CLI detector's); 0: none")
    da.add_argument("--output", help="also write the description as JSON")
    _add_split_flags(da)
    da.set_defaults(func=cmd_data)

    ev = sub.add_parser("evaluate", help="COCO or VOC evaluation of a results JSON against ground truth")
    ev.add_argument("--gt", required=True, help="COCO ground-truth JSON, or a VOC/LabelImg/YOLO folder or TFDS name")
    ev.add_argument("--gt-split", default="test", help="split of a folder / TFDS ground truth")
    ev.add_argument("--metric", choices=("coco", "voc"), default="coco")
    ev.add_argument("--results", required=True, help="COCO results JSON (list of detections)")
    ev.add_argument("--output", help="write the 12 numbers as JSON")
    ev.set_defaults(func=cmd_evaluate)

    ex = sub.add_parser("export", help="export a saved .keras model as a TF Serving SavedModel")
    ex.add_argument("model", help="a .keras file")
    ex.add_argument("export_dir", help="base directory; the version subdirectory is created")
    ex.add_argument("--image-size", type=int, nargs="+", default=None, metavar="S",
                    help="S or H W (default: the size the model was trained at, model.image_size)")
    ex.set_defaults(func=cmd_export)

    pr = sub.add_parser("predict", help="run an exported SavedModel on images and draw the boxes")
    pr.add_argument("saved_model", help="a version directory, e.g. saved_models/shapes_faster_rcnn/1")
    pr.add_argument("images", nargs="+", help="image files and/or folders of images")
    pr.add_argument("--output", default=os.path.join("runs", "predict"))
    pr.add_argument("--score-threshold", type=float, default=0.5)
    pr.set_defaults(func=cmd_predict)

    prop = sub.add_parser(
        "proposals",
        help="region proposals for images at scale (the Beam pipeline; see docs/pipelines.md)",
        add_help=False,
    )
    prop.set_defaults(func=None)

    bench = sub.add_parser("bench", help="run a benchmark script of benchmarks/: ladder, peers, report, eval_speed, ...")
    bench.add_argument("name", help="benchmark name (a file of benchmarks/)")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    bench.set_defaults(func=cmd_bench)

    return parser


def main(argv=None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["proposals"]:
        # Every option belongs to the Beam pipeline (incl. runner options).
        from pipelines import proposals

        proposals.main(argv[1:])
        return 0
    args = parser.parse_args(argv)
    if args.version:
        from keras_det import __version__

        print(f"keras-det {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
