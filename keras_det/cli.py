"""The ``keras-det`` command line.

    keras-det demo                       train → evaluate → export → predict on `shapes`
    keras-det train    --data shapes --output-dir runs/train
    keras-det evaluate --model runs/train/model.keras --data SOURCE --split test [--output DIR]
    keras-det export   runs/train/model.keras saved_models/shapes
    keras-det predict  saved_models/shapes photo.jpg folder/ 'glob/*.png' --output runs/pred
    keras-det evaluate --results runs/pred/detections.json --data SOURCE --split test

    keras-det proposals --input 'images/*.jpg' --output runs/proposals   (Beam)
    keras-det bench peers | real_data | beam_scaling | report ...          (benchmarks/, a checkout)

Quiet by default; a user error is one line ``keras-det: error: ...`` and exit
code 2 (``--verbose`` for tracebacks). Progress bars are Keras' own; without a
terminal (CI, pipes) they print one line per epoch. See docs/cli.md.
"""

import argparse
import json
import os
import shutil
import sys
import time

# The demo's and `keras-det train`'s detectors: keras_det.presets "<model>_cpu".
DEMO_PRESET = "faster_rcnn_cpu"


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

    from keras_det import presets
    from keras_det.export import export_saved_model
    from keras_det.visualize import draw_detections, save_png

    keras.utils.set_random_seed(args.seed)
    size = args.image_size
    _say(f"data: embedded `shapes` set, {args.train_images} training / {args.eval_images} test images of {size}x{size}")
    train, test, info = _shapes_data(size, args.train_images, args.eval_images, args.batch_size, args.seed)
    model = presets.build(DEMO_PRESET, len(info.class_names), bounding_box_format="xyxy")
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


def _load_ground_truth(source, split):
    """``(dataset or None, COCO ground-truth dict)`` of a split; an empty split / no boxes is a DataError naming it.

    A COCO ``.json`` file whose images are not needed (``--results``) is read as is.
    """
    from keras_det import data

    dataset, info = data.load(source, split, bounding_box_format="xywh", with_info=True)
    gt = data.to_coco(dataset, info)
    if not gt["images"]:
        raise data.DataError(f"split {split!r} of {source} has no images: nothing to evaluate (choose another --split).")
    if not gt["annotations"]:
        raise data.DataError(
            f"split {split!r} of {source} has {len(gt['images'])} images but no boxes: nothing to evaluate."
        )
    return dataset, gt


def _read_results(path):
    """A COCO results JSON list, or JSON lines (``keras_det.beam.predict`` shards); errors name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--results {path}: no such file.")
    try:
        text = open(path, encoding="utf-8").read()
    except UnicodeDecodeError as error:
        raise ValueError(f"--results {path}: not UTF-8 text (byte {error.start}); expected a COCO results JSON list.") from None
    stripped = text.lstrip()
    try:
        if stripped.startswith("[") or not stripped:
            return json.loads(stripped or "[]")
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise ValueError(f"--results {path}: not valid JSON ({error}); expected a COCO results list.") from None


def predict_split(predictor, dataset):
    """COCO results of ``predictor`` on every image of an unbatched data-contract dataset.

    Args:
        predictor: a `keras_det.inference.Predictor`.
        dataset: elements with ``images`` (float 0..255, original size),
            ``image_id`` and ``file_name``.

    Returns:
        list of COCO result dicts (every detection; ``bbox`` xywh pixels of the
        original image, ``category_id`` = label + 1, ``category_name``).
    """
    import numpy as np

    from keras_det.results import serving_results

    results = []
    for element in dataset.as_numpy_iterator():
        image = np.clip(np.round(element["images"]), 0, 255).astype(np.uint8)
        name = element["file_name"].decode("utf-8", "surrogateescape") if "file_name" in element else None
        out = predictor(image)
        for r in serving_results(out, 0, image.shape[0], image.shape[1], int(element["image_id"]), name):
            results.append({**r, "category_name": predictor.class_name(r["category_id"])})
    return results


def _write_json(path, value, indent=None):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=indent)
    os.replace(tmp, path)
    return path


def cmd_evaluate(args):
    if args.metric == "voc" and args.iou_type != "bbox":
        raise ValueError("evaluate: --iou-type is a COCO option; --metric voc scores boxes.")
    if args.metric == "voc":
        return _evaluate_voc(args)
    from keras_det.results import evaluate_results, format_metrics, stat_keys

    if (args.model is None) == (args.results is None):
        raise ValueError("evaluate: give exactly one of --model PATH (a .keras file or SavedModel) or --results FILE.")
    if args.data is None:
        raise ValueError("evaluate: --data SOURCE is required (a dataset folder, COCO .json, 'shapes' or a TFDS name).")
    if args.iou_type != "bbox" and (args.results is None or not args.data.lower().endswith(".json")):
        raise ValueError(f"evaluate --iou-type {args.iou_type} needs --results FILE (entries with "
                         f"{'segmentation' if args.iou_type == 'segm' else 'keypoints'}) and --data GT.json "
                         "(a COCO ground truth with them).")
    json_gt = args.results is not None and args.data.lower().endswith(".json") and os.path.isfile(args.data)
    if json_gt:  # a ground-truth file on its own: the images are not needed
        with open(args.data, encoding="utf-8") as f:
            gt = json.load(f)
        dataset = None
    else:
        dataset, gt = _load_ground_truth(args.data, args.split)
    if args.model is not None:
        from keras_det.inference import load_predictor

        predictor = load_predictor(args.model, args.image_size)
        start = time.time()
        results = predict_split(predictor, dataset)
        _say(f"predicted {len(gt['images'])} images of {args.data} [{args.split}] with {predictor.path} in {time.time() - start:.1f} s")
        source = predictor.path
    else:
        results = _read_results(args.results)
        source = args.results
    metrics = evaluate_results(gt, results, source, iou_type=args.iou_type)
    split = "" if json_gt else f" [{args.split}]"
    kind = "" if args.iou_type == "bbox" else f" ({args.iou_type})"
    print(f"COCO{kind} evaluation of {source} on {args.data}{split}: {metrics['images']} images, {metrics['detections']} detections")
    print(format_metrics(metrics))
    if metrics["outside_split"]:
        examples = ", ".join(map(str, metrics["outside_examples"]))
        _warn(f"{metrics['outside_split']} detections are of images outside {args.data}{split} (e.g. {examples}) "
              "and were not evaluated; is --split right?")
    if metrics["unknown_category"]:
        _warn(f"{metrics['unknown_category']} detections have a class (category_name, else category_id) that is not a class of {args.data} and were not evaluated.")
    if args.output:
        out = {k: metrics[k] for k in stat_keys(args.iou_type)}
        out["per_class"] = metrics["per_class"]
        out.update({k: metrics[k] for k in ("images", "detections", "outside_split", "unknown_category")})
        out.update(data=args.data, split=None if json_gt else args.split, source=source, iou_type=args.iou_type)
        if args.output.lower().endswith(".json"):  # the former `--output stats.json`
            path = _write_json(args.output, out, indent=2)
        else:
            path = _write_json(os.path.join(args.output, "metrics.json"), out, indent=2)
            if args.model is not None:
                _write_json(os.path.join(args.output, "detections.json"), results)
        _say(f"metrics: {path}")
    return 0


def _evaluate_voc(args):
    """VOC 2007 AP of a results file: the evaluation pipeline, run in-process."""
    import tempfile

    from keras_det.beam import evaluate as pipeline

    if args.results is None or args.data is None:
        raise ValueError("evaluate --metric voc needs --results FILE and --data SOURCE.")
    _read_results(args.results)  # a missing / malformed file: one clear error
    with tempfile.TemporaryDirectory() as out:
        summary = pipeline.run(
            ["--gt", args.data, "--gt_split", args.split, "--detections", args.results, "--output", out, "--metric", "voc"]
        )
    print(pipeline.format_table(summary))
    if args.output:
        path = args.output if args.output.lower().endswith(".json") else os.path.join(args.output, "metrics.json")
        _write_json(path, summary["stats"], indent=2)
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
    else:
        from keras_det.ops.image import image_hw

        size = image_hw(args.image_size, "--image-size", one_value_square=True)
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


def drawing_paths(file_names, output):
    """``output/<file_name without extension>_pred.png`` for each file, mirroring the input tree.

    Two inputs that differ only by extension (``a.jpg``, ``a.png``) keep it
    (``a.jpg_pred.png``, ``a.png_pred.png``) so that nothing is overwritten.
    """
    stems = {}
    for name in file_names:
        stem = os.path.splitext(name)[0]
        stems[stem] = stems.get(stem, 0) + 1
    out = []
    for name in file_names:
        stem = os.path.splitext(name)[0]
        out.append(os.path.join(output, (stem if stems[stem] == 1 else name) + "_pred.png"))
    return out


def _read_image(path):
    """uint8 ``[H, W, 3]`` of an image file; a corrupt or non-image file is a DataError naming it."""
    import tensorflow as tf

    from keras_det.data.core import DataError, check_image_file

    check_image_file(path)
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False, dtype=tf.uint8).numpy()
    except tf.errors.OpError as error:
        raise DataError(f"Image file {path} cannot be decoded: {error.message.splitlines()[0][:200]}") from None
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise DataError(f"Image file {path} is empty ({image.shape[0]}x{image.shape[1]}).")
    return image


def cmd_predict(args):
    import keras
    import numpy as np

    from keras_det.data.core import DataError
    from keras_det.identity import expand_inputs, file_image_id
    from keras_det.inference import load_predictor
    from keras_det.results import serving_results
    from keras_det.visualize import draw_detections, save_png

    inputs = expand_inputs(args.inputs)
    predictor = load_predictor(args.model, args.image_size)
    drawings = drawing_paths([name for _, name in inputs], args.output)
    os.makedirs(args.output, exist_ok=True)
    results, failed, drawn = [], [], 0
    progress = keras.utils.Progbar(len(inputs), verbose=_verbose())
    for i, ((path, name), drawing) in enumerate(zip(inputs, drawings)):
        try:
            image = _read_image(path)
        except (DataError, OSError) as error:
            failed.append({"file": path, "file_name": name, "reason": str(error)})
            print(f"keras-det: error: {_one_line(error)}", file=sys.stderr)
            continue
        h, w = image.shape[:2]
        out = predictor(image)
        image_results = [
            {**r, "category_name": predictor.class_name(r["category_id"])}
            for r in serving_results(out, 0, h, w, file_image_id(name), name)
        ]
        results += image_results
        if not args.no_draw:
            boxes = np.array([r["bbox"] for r in image_results], np.float32).reshape(-1, 4)
            prediction = {
                "boxes": boxes,
                "scores": np.array([r["score"] for r in image_results], np.float32),
                "labels": np.array([r["category_id"] - 1 for r in image_results], np.int32),
            }
            save_png(
                draw_detections(image, prediction, "xywh", class_names=predictor.class_names, score_threshold=args.score_threshold),
                drawing,
            )
            drawn += 1
        progress.update(i + 1)
    path = _write_json(os.path.join(args.output, "detections.json"), results)
    failures = os.path.join(args.output, "failed.json")
    if failed:
        _write_json(failures, failed, indent=1)
    elif os.path.exists(failures):
        os.remove(failures)
    shown = sum(r["score"] >= args.score_threshold for r in results)
    done = len(inputs) - len(failed)
    _say(
        f"{done} of {len(inputs)} images: {len(results)} detections in {path} "
        f"({shown} >= {args.score_threshold} drawn in {drawn} *_pred.png under {args.output})"
    )
    if failed:
        print(
            f"keras-det: error: {len(failed)} of {len(inputs)} images could not be read (listed in {failures})"
            + ("; the others' detections were written" if done else ""),
            file=sys.stderr,
        )
        return 1 if done else 2
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


def _default_anchor_sizes():
    from keras_det import presets

    return presets.arguments(DEMO_PRESET)["anchor_sizes"]


def build_detector(name, num_classes, backbone, image_size, backbone_weights=None, anchor_sizes=None, train_boxes_wh=None,
                   invalid_boxes="raise"):
    """The detector of ``keras-det train``: preset ``<name>_cpu`` of `keras_det.presets`.

    Args:
        name: one of `DETECTORS`.
        num_classes: object classes.
        backbone: a backbone name (``"tiny"``, ``"mobilenet_v2"``, ...).
        image_size: the square training size ``S``.
        backbone_weights: ``"imagenet"``, ``None`` or a ``.h5`` path,
            passed to every model's backbone.
        anchor_sizes: Faster / Mask R-CNN anchor sizes (pixels at ``S``);
            default the preset's.
        train_boxes_wh: ``[N, 2]`` training box widths / heights at ``S``:
            YOLO's 9 priors are their k-means clusters (``None``: YOLO's
            defaults scaled to ``S``).
        invalid_boxes: ``"raise"`` or ``"drop"`` (the `Detector` argument:
            ground-truth rows with a NaN / inf box or an out-of-range label).
    """
    from keras_det import presets

    if name not in DETECTORS:
        raise ValueError(f"--model must be one of {DETECTORS}, got {name!r}.")
    options = dict(backbone=backbone, backbone_weights=backbone_weights, bounding_box_format="xyxy",
                   invalid_boxes=invalid_boxes)
    if name in ("faster_rcnn", "mask_rcnn"):
        if anchor_sizes is not None:
            options["anchor_sizes"] = tuple(float(a) for a in anchor_sizes)
    elif name != "classify_localize":  # any input size: no anchors, no grid fixed at construction
        options["image_size"] = (image_size, image_size)
    if name == "yolo" and train_boxes_wh is not None and len(train_boxes_wh) >= 9:
        from keras_det.models.yolo import priors_per_level
        from keras_det.ops.anchors import kmeans_anchors

        options["priors"] = priors_per_level(kmeans_anchors(train_boxes_wh, 9, seed=0))
    return presets.build(f"{name}_cpu", num_classes, **options)


DETECTORS = ("faster_rcnn", "mask_rcnn", "ssd", "yolo", "yolo_v1", "classify_localize")
# Models that predict exactly one object per image: their training images must hold exactly one box.
ONE_OBJECT_MODELS = ("classify_localize",)


def check_one_object(name, split, image_index, num_images, file_names=None):
    """ValueError unless every image of ``split`` has exactly one box (``image_index``: the image of each box).

    Classification + localization regresses one box per image: with more, it
    would learn the first and ignore the rest (silently dropped boxes); with
    none, the image teaches nothing.
    """
    import numpy as np

    counts = np.bincount(np.asarray(image_index, np.int64), minlength=num_images)
    bad = np.flatnonzero(counts != 1)
    if len(bad):
        i = int(bad[0])
        first = file_names[i] if file_names is not None and i < len(file_names) else f"image {i}"
        raise ValueError(
            f"--model {name} predicts one object per image, but {len(bad)} of the {num_images} images of split "
            f"{split!r} have another number of boxes (first: {first}, {int(counts[i])} boxes). Use a detector "
            f"(--model faster_rcnn, ssd, yolo) for images with several objects, or one-object data "
            f"(shapes: --max-objects 1)."
        )


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
        max_objects = args.max_objects
        if max_objects is None and args.model in ONE_OBJECT_MODELS:
            max_objects = 1
            _say(f"shapes: one object per image for --model {args.model} (--max-objects 1)")
        if max_objects is not None:
            if max_objects < 1:
                raise ValueError(f"--max-objects must be >= 1, got {max_objects}.")
            for o in (train_options, val_options):
                o.update(max_objects=max_objects, min_objects=min(o.get("min_objects", 1), max_objects))
    elif args.max_objects is not None:
        raise ValueError(f"--max-objects sets how many objects `shapes` draws; --data {args.data!r} is not shapes.")
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
    boxes, _, image_index, image_shapes, _ = split_boxes(args.data, args.train_split, size, **train_options)
    if args.model in ONE_OBJECT_MODELS:
        check_one_object(args.model, args.train_split, image_index, len(image_shapes), getattr(info, "file_names", None))
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
    from keras_det.models.config import remember
    from keras_det.ops.anchors import kmeans_anchor_sizes

    if args.task == "classify":
        return train_classifier(args)
    from keras_det import training

    if args.cpu_devices is not None:
        if args.cpu_devices < 1:
            raise _UsageError(f"--cpu-devices must be >= 1, got {args.cpu_devices}")
        training.split_cpu(args.cpu_devices)  # before any TensorFlow op: data, --init-from, the model
    # MultiWorkerMirroredStrategy configures collective ops: only before any other TensorFlow op.
    early = training.make_strategy("multi_worker") if args.strategy == "multi_worker" else None
    start = time.time()
    size = args.image_size
    weights = _backbone_weights(args.backbone_weights)
    source = _load_init_from(args.init_from) if args.init_from else None
    train, val, info, wh = _detection_data(args, size)
    anchors = args.anchor_sizes
    k = len(_default_anchor_sizes())
    # Read from the source's RPN, the part that holds them (a config records only the arguments passed through **kwargs).
    source_rpn = getattr(source, "proposal_source", None)
    learnt = getattr(source_rpn, "anchor_sizes", None)
    if anchors is None and learnt is not None:
        anchors = list(learnt)  # the RPN learnt these
        _say(f"anchor sizes of {args.init_from}: {anchors} (--anchor-sizes overrides)")
    elif anchors is None and args.model in ("faster_rcnn", "mask_rcnn"):
        if len(wh) >= k:
            anchors = [round(float(a), 1) for a in kmeans_anchor_sizes(wh, k, seed=0)]
            _say(f"anchor sizes from k-means on {len(wh)} training boxes at {size}x{size}: {anchors} (--anchor-sizes overrides)")
        else:
            _say(f"only {len(wh)} training boxes: default anchor sizes {_default_anchor_sizes()}")
    augment = None if args.no_augment else data.default_augmentation(size, "xyxy", seed=args.seed)
    batches = data.pipeline(
        train, args.batch_size, augment=augment, image_size=(size, size), bounding_box_format="xyxy",
        shuffle=1000, cache=True, seed=args.seed, drop_remainder=True,
    ).repeat()
    strategy = training.use_strategy(args.strategy, args.mixed_precision, early)  # before the model is built
    replicas = int(strategy.num_replicas_in_sync)
    if args.strategy != "default":
        # Keras' fit MEAN-reduces the first distributed batch to build the model
        # (trainer._maybe_symbolic_build); a string field (file_name) cannot be
        # reduced ("AddN ... string"). Training does not read it.
        import tensorflow as tf

        batches = batches.map(lambda b: {k: v for k, v in b.items() if getattr(v, "dtype", None) != tf.string})
        devices = list(getattr(strategy.extended, "worker_devices", ()))
        _say(f"strategy {args.strategy}: {replicas} replica(s) in sync"
             + (f" on {', '.join(devices)}" if devices else "") + f"; global batch {args.batch_size}")
        if args.strategy == "mirrored" and replicas == 1:
            _say("warning: --strategy mirrored found one device, so it trains on 1 replica; on a machine without "
                 "GPUs --cpu-devices 2 (or KERAS_DET_CPU_DEVICES=2) splits the CPU into 2 logical devices")
    keras.utils.set_random_seed(args.seed)
    invalid_boxes = {"error": "raise", "drop": "drop"}[args.invalid_boxes]
    model = build_detector(args.model, len(info.class_names), args.backbone, size, weights, anchors, wh, invalid_boxes)
    remember(model, (size, size), info.class_names)
    model(keras.ops.zeros((1, size, size, 3)))  # BackupAndRestore needs a built model
    if source is not None:
        copied, skipped = _init_from(model, source, args.init_from)
        _say(f"initialised from {args.init_from}: {copied} weight tensors copied, {skipped} kept fresh (other shapes)")
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    run_dir = args.output_dir
    os.makedirs(run_dir, exist_ok=True)
    best_path = os.path.join(run_dir, "best.keras")
    history_path = os.path.join(run_dir, "history.csv")
    earlier = _resumed_history(run_dir, history_path)
    callbacks = _train_callbacks(run_dir, val, best_path, history_path, earlier)
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
    path = os.path.join(run_dir, "model.keras")
    if not training.is_chief(strategy):
        # Saving reads the variables with collective ops: every worker saves (the chief
        # waits for the others), the others to a scratch folder they delete.
        scratch = os.path.join(run_dir, "distributed", f"worker_{strategy.cluster_resolver.task_id}_model")
        os.makedirs(scratch, exist_ok=True)
        model.save(os.path.join(scratch, "model.keras"))
        shutil.rmtree(scratch, ignore_errors=True)
        return 0  # only the chief writes the model
    model.save(path)
    with open(os.path.join(run_dir, "class_names.json"), "w") as f:
        json.dump(list(info.class_names), f)
    summary = {"model": path, "image_size": [size, size], "class_names": list(info.class_names),
               "anchor_sizes": list(anchors) if anchors is not None else None,
               "strategy": args.strategy, "replicas": replicas, "global_batch_size": args.batch_size,
               "train_seconds": round(fit_seconds, 1), "total_seconds": round(time.time() - start, 1)}
    # Every epoch of the run, an interrupted-and-resumed one included (history.csv).
    rows = _read_history(history_path) if history is not None else []
    dropped = [row["dropped_boxes"] for row in rows if "dropped_boxes" in row]
    if dropped:  # --invalid-boxes drop: never silent
        summary["dropped_boxes"] = int(sum(dropped))
        _say(f"--invalid-boxes drop: {summary['dropped_boxes']} ground-truth boxes dropped in training "
             f"(NaN / inf coordinates or labels outside [-1, {len(info.class_names)})); per epoch: {[int(d) for d in dropped]}")
    epochs = [row for row in rows if "val_AP" in row]
    aps = [row["val_AP"] for row in epochs]
    if aps:
        best = int(np.argmax(aps))
        summary.update(best_epoch=int(epochs[best]["epoch"]) + 1, best=best_path,
                       best_val_AP=aps[best], best_val_AP50=epochs[best]["val_AP50"],
                       last_val_AP=aps[-1], last_val_AP50=epochs[-1]["val_AP50"])
        if earlier:
            summary["resumed_at_epoch"] = len(earlier) + 1
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


def _backup_dir(run_dir):
    """Where ``BackupAndRestore`` keeps an unfinished run of ``run_dir``."""
    return os.path.join(run_dir, "backup")


def _read_history(path):
    """The rows of a ``keras.callbacks.CSVLogger`` file as dicts of floats ([] if absent)."""
    import csv

    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        # CSVLogger writes "NA" for a value an epoch did not log.
        return [{k: float(v) for k, v in row.items() if v not in ("", "NA", None)} for row in csv.DictReader(f)]


def _resumed_history(run_dir, history_path):
    """The epochs an interrupted run already finished (``history.csv`` rows), or [] for a new run.

    ``BackupAndRestore`` deletes its backup when a run ends, so a backup means
    ``fit`` resumes; otherwise an old ``history.csv`` belongs to an earlier run
    and is removed.
    """
    backup = _backup_dir(run_dir)
    if os.path.isdir(backup) and os.listdir(backup):
        rows = _read_history(history_path)
        if rows:
            _say(f"resuming {run_dir}: {len(rows)} epochs done, best val AP so far "
                 f"{max((r.get('val_AP', float('-inf')) for r in rows)):.3f}")
        return rows
    if os.path.exists(history_path):
        os.remove(history_path)
    return []


def _train_callbacks(run_dir, val, best_path, history_path, earlier):
    """The callbacks of ``keras-det train``: resumable, validated, best kept, logged.

    Order matters: the evaluation runs first so that the checkpoints, the CSV
    history and TensorBoard see ``val_AP`` / ``val_AP50``. On a resumed run the
    best checkpoint starts from the best val AP of the epochs already done, so a
    worse epoch after the restart does not replace ``best.keras``.
    """
    import keras

    from keras_det.metrics import COCOEvaluator
    from keras_det.metrics.callbacks import EvaluationCallback

    callbacks = [
        # Resumable: an interrupted run continues from its last epoch when started again.
        keras.callbacks.BackupAndRestore(_backup_dir(run_dir)),
        keras.callbacks.ModelCheckpoint(os.path.join(run_dir, "checkpoint.keras")),
    ]
    if val is not None:
        evaluator = _Keys(COCOEvaluator(bounding_box_format="xyxy"), ("AP", "AP50"))
        callbacks.insert(0, EvaluationCallback(val, evaluator, prefix="val_"))
        done = [r["val_AP"] for r in earlier if "val_AP" in r]
        callbacks.append(keras.callbacks.ModelCheckpoint(
            best_path, monitor="val_AP", mode="max", save_best_only=True,
            initial_value_threshold=max(done) if done else None))
    callbacks.append(keras.callbacks.CSVLogger(history_path, append=True))
    callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "logs")))
    return callbacks


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
    if not os.path.isfile(os.path.join(root, "harness.py")):
        # The benchmarks compare against peers (torchvision, keras-cv) and write
        # benchmarks/results/: they are part of the source tree, not of the wheel.
        raise _UsageError(
            "keras-det bench runs the scripts of benchmarks/, which ship with a source checkout, not with an "
            "installed package: clone the repository and `pip install -e '.[bench]'` there"
        )
    script = os.path.join(root, f"{args.name.replace('-', '_')}.py")
    if not os.path.isfile(script):
        available = sorted(f[:-3] for f in os.listdir(root) if f.endswith(".py") and f not in ("harness.py", "zoo.py"))
        raise _UsageError(f"no benchmark {args.name!r}; available: {', '.join(available)}")
    sys.argv = [script, *args.rest]
    runpy.run_path(script, run_name="__main__")
    return 0


def _env_int(name):
    """An integer environment variable, ``None`` when unset or empty (a non-integer is a usage error)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise _UsageError(f"{name}={text!r} is not an integer") from None


def build_parser():
    parser = _Parser(prog="keras-det", description="Object detection for Keras 3 / TensorFlow.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--verbose", action="store_true",
                        help="tracebacks for errors and library logs (anywhere on the command line; or KERAS_DET_VERBOSE=1)")
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
    train.add_argument("--max-objects", type=int, default=None,
                       help="shapes: at most this many objects per image (1 for --model classify_localize)")
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
    train.add_argument("--cpu-devices", type=int, default=_env_int("KERAS_DET_CPU_DEVICES"), metavar="N",
                       help="split the CPU into N logical devices before TensorFlow starts, so that --strategy "
                       "mirrored has N replicas without GPUs (default: KERAS_DET_CPU_DEVICES, else unsplit)")
    train.add_argument("--mixed-precision", choices=("float32", "mixed_float16", "mixed_bfloat16"), default=None, help="dtype policy, e.g. mixed_bfloat16 on CPUs")
    train.add_argument("--invalid-boxes", choices=("error", "drop"), default="error",
                       help="detect: a ground-truth box with NaN/inf coordinates or a label outside the classes: "
                            "error (default) or drop it (counted: dropped_boxes in the logs and summary.json)")
    train.add_argument("--output-dir", default=os.path.join("runs", "train"),
                       help="detect: model.keras (last epoch), best.keras (best val AP), checkpoint.keras, "
                       "summary.json, class_names.json, TensorBoard logs/ and the resumable backup/")
    train.add_argument("--output", default=os.path.join("runs", "classifier.keras"), help="classify: the saved model")
    train.set_defaults(func=cmd_train)

    da = sub.add_parser("data", help="images and boxes per split and class, box sizes at --image-size, suggested anchors")
    da.add_argument("source", help="'shapes', a COCO/VOC/LabelImg/YOLO folder, a COCO .json, or a TFDS name")
    da.add_argument("--image-size", type=int, default=128,
                    help="measure boxes after resizing to SxS as training does (default 128, train's default)")
    da.add_argument("--num-anchors", type=int, default=len(_default_anchor_sizes()),
                    help=f"k of the k-means anchor sizes (default {len(_default_anchor_sizes())}, the CLI detector's); 0: none")
    da.add_argument("--output", help="also write the description as JSON")
    _add_split_flags(da)
    da.set_defaults(func=cmd_data)

    ev = sub.add_parser(
        "evaluate",
        help="COCO AP of a model (--model) or of a results file (--results) on a dataset split",
        description="keras-det evaluate --model PATH --data SOURCE --split SPLIT [--output DIR]\n"
        "keras-det evaluate --results FILE --data SOURCE --split SPLIT [--output DIR]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("--model", help="a .keras file or an exported SavedModel directory (base or version)")
    ev.add_argument("--results", help="a COCO results file (keras-det predict's detections.json, or JSON lines)")
    ev.add_argument("--data", "--gt", dest="data",
                    help="ground truth: a COCO/VOC/LabelImg/YOLO folder, a COCO .json, 'shapes' or a TFDS name")
    ev.add_argument("--split", "--gt-split", dest="split", default="test", help="the split to evaluate on (default test)")
    ev.add_argument("--metric", choices=("coco", "voc"), default="coco", help="voc: VOC 2007 AP of --results")
    ev.add_argument("--iou-type", choices=("bbox", "segm", "keypoints"), default="bbox",
                    help="COCO evaluation type (pycocotools' iouType): box IoU (default), mask IoU of the results' "
                    "'segmentation', or keypoint OKS of their 'keypoints' (segm / keypoints: --results with a COCO .json --data)")
    ev.add_argument("--image-size", type=positive_int, nargs="+", default=None, metavar="S",
                    help="a .keras model that does not remember its training size: S or H W")
    ev.add_argument("--output", help="directory for metrics.json (and, with --model, detections.json)")
    ev.set_defaults(func=cmd_evaluate)

    ex = sub.add_parser("export", help="export a saved .keras model as a TF Serving SavedModel")
    ex.add_argument("model", help="a .keras file")
    ex.add_argument("export_dir", help="base directory; the version subdirectory is created")
    ex.add_argument("--image-size", type=int, nargs="+", default=None, metavar="S",
                    help="S or H W (default: the size the model was trained at, model.image_size)")
    ex.set_defaults(func=cmd_export)

    pr = sub.add_parser("predict", help="run a model on images: detections.json (COCO results) and drawings")
    pr.add_argument("model", help="a .keras file or an exported SavedModel directory (base or version)")
    pr.add_argument("inputs", nargs="+", help="image files, folders of images (recursive) and/or globs")
    pr.add_argument("--output", default=os.path.join("runs", "predict"),
                    help="detections.json and <file_name>_pred.png drawings mirroring the input tree")
    pr.add_argument("--score-threshold", type=float, default=0.5,
                    help="drawings only: detections.json holds every detection")
    pr.add_argument("--image-size", type=positive_int, nargs="+", default=None, metavar="S",
                    help="a .keras model that does not remember its training size: S or H W")
    pr.add_argument("--no-draw", action="store_true", help="write detections.json only")
    pr.set_defaults(func=cmd_predict)

    prop = sub.add_parser(
        "proposals",
        help="region proposals for images at scale (the Beam pipeline; see docs/pipelines.md)",
        add_help=False,
    )
    prop.set_defaults(func=None)

    bench = sub.add_parser("bench", help="run a benchmark script of benchmarks/: peers, real_data, beam_scaling, eval_speed, ladder, report, ...")
    bench.add_argument("name", help="benchmark name (a file of benchmarks/)")
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    bench.set_defaults(func=cmd_bench)

    return parser


def _one_line(error):
    """An exception as one line: its message's first line (TensorFlow's op errors without the graph dump)."""
    message = getattr(error, "message", None) if not isinstance(error, OSError) else None
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        message = f"{error.filename}: {error.strerror}"
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    text = str(message or error or type(error).__name__).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A failed tf.debugging assert inside a graph (e.g. the training-batch checks of
    # keras_det.models.validation): its message, not the "Graph execution error:" header.
    asserts = [line.replace("\\'", "'") for line in lines if line.startswith("assertion failed:")]
    return (asserts or lines)[0] if (asserts or lines) else type(error).__name__


def _warn(message):
    print(f"keras-det: warning: {message}", file=sys.stderr, flush=True)


def positive_int(text):
    """argparse type: an integer >= 1 (``--batch-size 0`` is an error naming the value)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


# Checked on every command's parsed arguments (whatever parser defines them):
# a value below the minimum is a one-line error naming the flag.
_MINIMUM = {
    "epochs": 1, "steps_per_epoch": 1, "batch_size": 1, "image_size": 1, "train_images": 1,
    "eval_images": 1, "num_anchors": 0,
}


def check_arguments(args):
    """Argument checks shared by every command (argparse's types cannot see ``nargs`` counts).

    Raises:
        ValueError: naming the flag: a count below its minimum (``--epochs
            -1``, ``--batch-size 0``, ``--image-size 0``), an ``--image-size``
            of more than two values, a learning rate or score threshold out of
            range.
    """
    for name, minimum in _MINIMUM.items():
        value = getattr(args, name, None)
        if value is None or isinstance(value, bool):
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        flag = "--" + name.replace("_", "-")
        if name == "image_size":
            from keras_det.ops.image import image_hw  # imports TensorFlow: only when the flag is given

            image_hw(values, flag, one_value_square=True)
            continue
        for v in values:
            if not isinstance(v, int) or v < minimum:
                raise ValueError(f"{flag} must be an integer >= {minimum}, got {v!r}.")
    rate = getattr(args, "learning_rate", None)
    if rate is not None and not (rate >= 0 and rate < float("inf")):  # 0: a run that only evaluates
        raise ValueError(f"--learning-rate must be a finite number >= 0, got {rate!r}.")
    threshold = getattr(args, "score_threshold", None)
    if threshold is not None and not (0.0 <= threshold <= 1.0):
        raise ValueError(f"--score-threshold must be in [0, 1], got {threshold!r}.")
    if getattr(args, "command", None) == "export":
        _check_keras_file(getattr(args, "model", None), "export")


def _check_keras_file(path, command):
    """A ``.keras`` source must exist and be a zip archive (what Keras writes)."""
    import zipfile

    if path is None:
        return
    if not os.path.exists(path):
        raise FileNotFoundError(f"{command}: model file {path} does not exist.")
    if os.path.isdir(path):
        raise ValueError(f"{command}: {path} is a folder, not a .keras model file.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{command}: {path} is not a .keras model file (a .keras file is a zip archive written by model.save).")


def quiet(verbose=False):
    """Quiet by default: TensorFlow's C++ start-up logs, Beam's INFO logs and our own Keras warnings off.

    TensorFlow writes its start-up lines (oneDNN, CUDA probing) to the process'
    stderr before its log level applies, so unless ``verbose`` the import of
    TensorFlow runs with file descriptor 2 pointed at /dev/null (restored
    right after; Python errors are raised, not printed, so none is lost).
    """
    import logging
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    level = logging.INFO if verbose else logging.WARNING
    for name in ("apache_beam", "absl", "tensorflow"):
        logging.getLogger(name).setLevel(level)
    if verbose:
        return
    # Beam's import warns on the root logger that the optional GCP client is absent.
    logging.getLogger().addFilter(lambda record: not str(record.msg).startswith("apitools not found"))
    # Ours: keras_det.data.pipeline's datasets are shuffled already, and detectors compile
    # without a loss argument by design (they know their losses).
    warnings.filterwarnings("ignore", message=r".*`shuffle=True`.*")
    warnings.filterwarnings("ignore", message=r".*compile\(\).*")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    try:
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    os.dup2(null, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # the device probe logs too
    except Exception:  # reported again, on a visible stderr, by the command's own import
        pass
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.WARNING)
    except ImportError:  # pragma: no cover
        pass


def _proposals(argv):
    """``keras-det proposals ...``: the Beam pipeline, Beam's logs at WARNING; an empty input glob is an error."""
    import glob

    from keras_det.beam import proposals

    spec = None
    for i, item in enumerate(argv):
        if item == "--input" and i + 1 < len(argv):
            spec = argv[i + 1]
        elif item.startswith("--input="):
            spec = item.split("=", 1)[1]
    if spec and not spec.startswith("tfds:") and "://" not in spec and not glob.glob(spec, recursive=True):
        raise FileNotFoundError(f"proposals: --input {spec!r} matches no file.")
    if "-h" in argv or "--help" in argv:
        proposals.parser().print_help()
        return 0
    if not any(a.startswith("--default_sdk_harness_log_level") for a in argv):
        argv = [*argv, "--default_sdk_harness_log_level=WARNING"]
    summary = proposals.run(argv)
    print(json.dumps(summary, indent=2, sort_keys=True))
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one ``keras-det: error: ...`` line (exit code 2)."""

    def error(self, message):
        raise _UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


class _UsageError(Exception):
    pass


def main(argv=None):
    """The ``keras-det`` entry point: returns the exit code.

    0 success; 1 some inputs failed but the rest was written (``predict``), or
    an internal error; 2 a user error (bad argument, missing or bad file, bad
    data), printed as one line ``keras-det: error: ...``; ``--verbose`` (or
    ``KERAS_DET_VERBOSE=1``) shows tracebacks and library logs.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv or os.environ.get("KERAS_DET_VERBOSE", "") not in ("", "0")
    argv = [a for a in argv if a != "--verbose"]
    quiet(verbose)
    try:
        if argv[:1] == ["proposals"]:
            # Every option belongs to the Beam pipeline (incl. runner options).
            return _proposals(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.version:
            from keras_det import __version__

            print(f"keras-det {__version__}")
            return 0
        if args.command is None:
            parser.print_help()
            return 0
        check_arguments(args)
        return args.func(args)
    except KeyboardInterrupt:
        print("keras-det: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # raise SystemExit("message")
            if verbose:
                raise
            print(f"keras-det: error: {exit_.code.removeprefix('keras-det ').strip()}", file=sys.stderr)
            return 2
        return exit_.code if isinstance(exit_.code, int) else 0
    except Exception as error:  # noqa: BLE001  (the one place errors become exit codes)
        if verbose:
            raise
        if _is_user_error(error):
            print(f"keras-det: error: {_one_line(error)}", file=sys.stderr)
            return 2
        print(
            f"keras-det: internal error: {type(error).__name__}: {_one_line(error)} "
            "(run again with --verbose for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


def _is_user_error(error):
    """Errors caused by the input (arguments, files, data), as opposed to bugs."""
    if isinstance(error, (_UsageError, ValueError, OSError, UnicodeError, json.JSONDecodeError)):
        return True
    tf = sys.modules.get("tensorflow")
    # Op errors from data the user gave (a corrupt image, a bad shape) inside TensorFlow.
    return tf is not None and isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.DataLossError))


if __name__ == "__main__":
    sys.exit(main())
