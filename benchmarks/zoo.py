"""The detectors of the benchmarks, their configurations and the shared train/evaluate loop.

Two configurations of every keras_det detector:

* `shapes_detector`: CPU-sized, from scratch (``"tiny"`` backbone, no
  pretrained weights), for accuracy on the embedded ``shapes`` set (128 px)
  after a fixed CPU budget (`train_on_shapes`). Two-stage models pool from
  the stride-8 C3 map (the demo's choice: shapes' objects are 8–77 px).
* `speed_detector`: the ImageNet-class configuration (MobileNet backbones,
  91 classes, 320×320) whose inference time is compared with the peers in
  ``peers.py``; weights are random (speed does not depend on them).

R-CNN and Fast R-CNN take selective-search proposals (`selective_search`):
computed once per image outside the training budget, their time per image
is reported separately (the seed's "with / without proposals").

Mask R-CNN is also scored on its masks (COCO ``segm``), and
``mask_rcnn_keypoints`` (Mask R-CNN with the keypoint head, trained on the
``shapes`` keypoints; accuracy only, `ACCURACY_ONLY`) on its keypoints as
well (COCO ``keypoints``: OKS with the ``shapes`` sigmas): `iou_types`.
"""

import statistics
import time

import numpy as np

import harness  # noqa: F401 - puts the repository root on sys.path

FORMAT = "xyxy"
SHAPES_SIZE = 128
DETECTORS = (
    "classify_localize", "sliding_window", "rcnn", "fast_rcnn", "faster_rcnn", "mask_rcnn",
    "ssd", "ssdlite", "yolo_v1", "yolo_multiscale",
)
# Trained and scored on shapes only (no 320-px speed configuration).
ACCURACY_ONLY = ("mask_rcnn_keypoints",)
PROPOSAL_DETECTORS = ("rcnn", "fast_rcnn")
MASK_DETECTORS = ("mask_rcnn", "mask_rcnn_keypoints")
KEYPOINT_DETECTORS = ("mask_rcnn_keypoints",)
LABELS = {
    "classify_localize": "Classify+localize", "sliding_window": "Sliding window", "rcnn": "R-CNN",
    "fast_rcnn": "Fast R-CNN", "faster_rcnn": "Faster R-CNN", "mask_rcnn": "Mask R-CNN",
    "mask_rcnn_keypoints": "Mask R-CNN + keypoints", "ssd": "SSD",
    "ssdlite": "SSDLite", "yolo_v1": "YOLO v1", "yolo_multiscale": "YOLO multiscale",
}
# Training recipes (batch size, Adam learning rate, augmentation), those of
# train_two_stage.py / train_single_stage.py. Models on external proposals
# train without augmentation (the proposals would no longer fit the image).
RECIPES = {
    "two_stage": {"batch_size": 8, "learning_rate": 2e-3, "augment": None},
    "single_stage": {"batch_size": 16, "learning_rate": 1e-3, "augment": "default"},
}
FAMILY = {name: ("single_stage" if name in ("ssd", "ssdlite", "yolo_v1", "yolo_multiscale", "sliding_window",
                                            "classify_localize") else "two_stage")
          for name in DETECTORS + ACCURACY_ONLY}
NUM_PROPOSALS = 300


def _check(name, names=DETECTORS + ACCURACY_ONLY):
    if name not in names:
        raise ValueError(f"unknown detector {name!r}; expected one of {names}")


def shapes_detector(name, num_classes, train_boxes_wh=None, backbone="tiny", image_size=SHAPES_SIZE):
    """A CPU-sized keras_det detector for ``shapes`` images (128 px, tiny backbone by default).

    Args:
        name: one of `DETECTORS`.
        num_classes: object classes.
        train_boxes_wh: ``[N, 2]`` GT widths/heights (YOLO multiscale's k-means priors).
        backbone: backbone name (``"tiny"``: from scratch in minutes on a CPU).
        image_size: square image side (SSD / YOLO are built for it).
    """
    from keras_det import presets

    _check(name)
    options = dict(bounding_box_format=FORMAT, backbone=backbone)
    if name in ("ssd", "ssdlite", "yolo_v1", "yolo_multiscale"):
        options["image_size"] = (image_size, image_size)
    if name == "rcnn":
        options["inference_chunk"] = NUM_PROPOSALS
    if name == "yolo_multiscale":
        from keras_det.models.yolo import priors_per_level
        from keras_det.ops.anchors import kmeans_anchors

        if train_boxes_wh is None:
            raise ValueError("yolo_multiscale needs `train_boxes_wh` (its k-means priors)")
        options["priors"] = priors_per_level(kmeans_anchors(train_boxes_wh, 9, seed=0))
    return presets.build(_preset(name, "cpu"), num_classes, **options)


def _preset(name, family):
    """The `keras_det.presets` name of benchmark detector ``name`` in ``family`` (``cpu``, ``320``)."""
    return f"{'yolo' if name == 'yolo_multiscale' else name}_{family}"


def speed_detector(name, num_classes=91, size=320, **overrides):
    """The ImageNet-class configuration of a detector for the 320×320 speed comparison.

    Faster / Mask R-CNN follow torchvision's
    ``fasterrcnn_mobilenet_v3_large_320_fpn`` (MobileNetV3-Large, 5 anchor
    sizes, 150 test proposals), the others MobileNetV2 (SSD's and YOLO's
    usual mobile backbone); R-CNN and Fast R-CNN share MobileNetV2.
    """
    from keras_det import presets

    _check(name, DETECTORS)
    options = dict(bounding_box_format=FORMAT, **overrides)
    if name in ("ssd", "ssdlite", "yolo_v1", "yolo_multiscale"):
        options["image_size"] = (size, size)
    return presets.build(_preset(name, "320"), num_classes, **options)


# keras-cv's "yolo_v8_xs_backbone" preset config (its weights come from Kaggle,
# so the preset cannot be loaded offline); 1,277,680 backbone parameters.
YOLO_V8_XS = dict(stackwise_channels=[32, 64, 128, 256], stackwise_depth=[1, 2, 2, 1], include_rescaling=True)


def kerascv_yolov8(num_classes, fpn_depth=1, confidence_threshold=None):
    """keras-cv's YOLOV8Detector on the xs backbone architecture (random weights).

    Args:
        num_classes: object classes.
        fpn_depth: depth of its FPN's CSP blocks (1 for the xs size).
        confidence_threshold: ``None`` keeps keras-cv's decoder (threshold
            0.2, for display); evaluation wants a low one (0.01: keras_det's
            SSD uses 0.01, COCO-style evaluation keeps low-scoring boxes).
    """
    import keras_cv

    backbone = keras_cv.models.YOLOV8Backbone(**YOLO_V8_XS)
    decoder = None
    if confidence_threshold is not None:
        decoder = keras_cv.layers.NonMaxSuppression(bounding_box_format=FORMAT, from_logits=False,
                                                    confidence_threshold=confidence_threshold, iou_threshold=0.7,
                                                    max_detections=100)
    return keras_cv.models.YOLOV8Detector(num_classes=num_classes, bounding_box_format=FORMAT, backbone=backbone,
                                          fpn_depth=fpn_depth, prediction_decoder=decoder)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def shapes_split(split, num_images, with_masks=False, max_objects=8, with_keypoints=False):
    from keras_det import data

    return data.load("shapes", split, FORMAT, num_images=num_images, image_size=SHAPES_SIZE, with_masks=with_masks,
                     max_objects=max_objects, with_keypoints=with_keypoints, with_info=True)


def boxes_wh(dataset):
    """``[N, 2]`` widths and heights of the (xyxy) GT boxes of an unbatched dataset."""
    wh = [el["bounding_boxes"]["boxes"].numpy()[:, 2:] - el["bounding_boxes"]["boxes"].numpy()[:, :2] for el in dataset]
    wh = np.concatenate(wh)
    return wh[(wh > 0).all(-1)]


def selective_search(dataset, max_proposals=NUM_PROPOSALS):
    """Selective search (fast) on every image of an unbatched dataset.

    Returns:
        ``({image_id: {"boxes", "image_shape"}}, seconds per image list)``;
        boxes are absolute ``yxyx`` (what `keras_det.data.join_proposals` reads).
    """
    from keras_det.region_proposals import propose

    out, seconds = {}, []
    for element in dataset:
        image = element["images"].numpy()
        start = time.perf_counter()
        boxes = propose(image, "selective_search_fast", max_proposals=max_proposals, min_size=4)
        seconds.append(time.perf_counter() - start)
        out[str(int(element["image_id"]))] = {"boxes": boxes, "image_shape": image.shape[:2]}
    return out, seconds


def with_proposals(dataset, proposals):
    from keras_det import data

    return data.join_proposals(dataset, proposals, FORMAT, num_proposals=NUM_PROPOSALS)


def model_inputs(batch):
    """What a model's ``predict_on_batch`` takes from a batch: images, plus proposals when present."""
    if "proposals" in batch:
        return {"images": batch["images"], "proposals": batch["proposals"]}
    return batch["images"]


def iou_types(model):
    """The COCO evaluations of a model's outputs: ``bbox``, + ``segm`` (masks), + ``keypoints`` (keypoint head)."""
    from keras_det.models import MaskRCNN

    types = ("bbox",)
    if isinstance(model, MaskRCNN):
        types += ("segm",)
    if getattr(model, "num_keypoints", 0):
        types += ("keypoints",)
    return types


def pasted_masks(prediction, image_shape):
    """``[B, K, H, W]`` bool: the predicted box-frame masks pasted into the images (boxes in `FORMAT`)."""
    from keras_det.ops import boxes as box_ops
    from keras_det.ops.instances import paste_masks

    boxes = box_ops.convert_format(np.asarray(prediction["boxes"], np.float32), FORMAT, "yxyx")
    masks = np.asarray(prediction["masks"], np.float32)
    return np.stack([paste_masks(m, b, image_shape).numpy() for m, b in zip(masks, np.asarray(boxes))])


def evaluate_all(model, batches, types=("bbox",), sigmas=None):
    """COCO metrics (floats) of ``model`` on batched ``batches``, one dict per evaluation type.

    Args:
        model: predicts the keras_det contract (``masks`` ``[B, K, h, w]`` in
            the box frame for ``segm``; ``keypoints`` ``[B, K, P, 3]`` for
            ``keypoints``).
        batches: batched data-contract elements (with ``masks`` /
            ``keypoints`` for ``segm`` / ``keypoints``).
        types: COCO ``iou_type`` names (see `iou_types`).
        sigmas: the OKS sigmas of the keypoints (``shapes``'
            ``KEYPOINT_SIGMAS``).

    Returns:
        ``{iou_type: {metric: float}}``: the 12 COCO numbers for ``bbox`` /
        ``segm``, the 10 of ``keypoints``; the same numbers as
        ``keras_det.metrics.evaluate_coco`` of the ``to_coco`` ground truth
        (box areas) and the results.
    """
    from keras_det.metrics import COCOEvaluator

    evaluators = {t: COCOEvaluator(bounding_box_format=FORMAT, iou_type=t, sigmas=sigmas if t == "keypoints" else None)
                  for t in types}
    for batch in batches:
        prediction = model.predict_on_batch(model_inputs(batch))
        if "segm" in evaluators:
            prediction = {**prediction, "masks": pasted_masks(prediction, batch["images"].shape[1:3])}
        for t, evaluator in evaluators.items():
            evaluator.update_state(batch if t != "bbox" else batch["bounding_boxes"], prediction)
    return {t: {k: float(v) for k, v in e.result().items()} for t, e in evaluators.items()}


def evaluate(model, batches):
    """COCO box metrics (floats) of ``model`` on batched data-contract ``batches``."""
    return evaluate_all(model, batches)["bbox"]


# ---------------------------------------------------------------------------
# Train on a CPU budget, evaluate, time
# ---------------------------------------------------------------------------


def _without(*keys):
    return lambda element: {k: v for k, v in element.items() if k not in keys}


class ShapesTask:
    """The ``shapes`` data of a budget run, loaded once for all detectors.

    Args:
        num_train, num_test: images of the train / test splits.
        need_proposals: compute selective search for R-CNN / Fast R-CNN.
        need_masks: load instance masks (Mask R-CNN: training, and the test
            split for its ``segm`` evaluation).
        max_objects: objects per image are 1..max_objects (8: the default set).
        need_keypoints: load the ``shapes`` keypoints (``mask_rcnn_keypoints``).
    """

    def __init__(self, num_train=1000, num_test=200, need_proposals=True, need_masks=True, max_objects=8,
                 need_keypoints=False):
        self.train, info = shapes_split("train", num_train, with_masks=need_masks, max_objects=max_objects,
                                        with_keypoints=need_keypoints)
        self.test, _ = shapes_split("test", num_test, with_masks=need_masks, max_objects=max_objects,
                                    with_keypoints=need_keypoints)
        self.class_names = list(info.class_names)
        self.keypoints = info.keypoints  # the keypoint definition (sigmas), None without keypoints
        self.num_train, self.num_test = num_train, num_test
        self.train_wh = boxes_wh(self.train)
        self.proposals = None
        if need_proposals:
            train_props, _ = selective_search(self.train)
            test_props, seconds = selective_search(self.test)
            self.proposals = {"train": train_props, "test": test_props}
            self.proposal_seconds = seconds
            counts = [len(v["boxes"]) for v in test_props.values()]
            self.proposal_info = {"method": "selective_search_fast", "max_proposals": NUM_PROPOSALS,
                                  "ms_per_image_median": 1000 * statistics.median(seconds),
                                  "median_proposals": float(np.median(counts))}

    def batches(self, name, training):
        from keras_det import data

        split = self.train if training else self.test
        if name in PROPOSAL_DETECTORS:
            split = with_proposals(split, self.proposals["train" if training else "test"])
        drop = (() if name in MASK_DETECTORS else ("masks",)) + (() if name in KEYPOINT_DETECTORS else ("keypoints",))
        split = split.map(_without(*drop))
        if not training:
            return data.batch(split, 16)
        recipe = RECIPES[FAMILY[name]]
        augment = None
        if recipe["augment"] == "default" and name not in PROPOSAL_DETECTORS:
            augment = data.default_augmentation(SHAPES_SIZE, FORMAT, seed=0)
        return data.pipeline(split, recipe["batch_size"], augment=augment, max_boxes=16, shuffle=1000, cache=True,
                             drop_remainder=True, seed=0).repeat()


def train_on_shapes(name, task, budget, model=None, timing_runs=30, steps_per_call=50):
    """Trains detector ``name`` for ``budget`` CPU seconds on ``task`` and evaluates it on the test split.

    R-CNN spends two thirds of the budget fine-tuning and one third on the
    SVMs and box regressors (fixed features).

    Returns:
        a result row: budget, steps, training images/s, AP, AP50 (and all 12
        COCO numbers under ``coco``; Mask R-CNN the mask numbers under
        ``segm``, with the keypoint head the OKS numbers under
        ``keypoints``), inference ms/image at batch 1 (model only; R-CNN /
        Fast R-CNN also ``proposal_ms``), params.
    """
    import keras

    keras.utils.set_random_seed(0)
    ticks = harness.cpu_ticks()
    model = model or shapes_detector(name, len(task.class_names), task.train_wh)
    recipe = RECIPES[FAMILY[name]]
    train = task.batches(name, training=True)
    if name == "rcnn":
        model.stage = "finetune"
        model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"]))
        first = harness.train_for_cpu_seconds(model, train, budget * 2 / 3, steps_per_call)
        model.stage = "svm"
        model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"]))
        second = harness.train_for_cpu_seconds(model, train, budget - first["cpu_s"], steps_per_call)
        run = {k: first[k] + second[k] for k in ("steps", "wall_s", "cpu_s")}
        run["final_loss"] = second["final_loss"]
        run["stages"] = {"finetune": first, "svm": second}
    else:
        model.compile(optimizer=keras.optimizers.Adam(recipe["learning_rate"]))
        run = harness.train_for_cpu_seconds(model, train, budget, steps_per_call)
    types = iou_types(model)
    sigmas = task.keypoints["sigmas"] if "keypoints" in types else None
    scores = evaluate_all(model, task.batches(name, training=False), types, sigmas)
    metrics = scores["bbox"]
    row = {
        "model": name,
        "budget_cpu_s": budget,
        "recipe": recipe,
        **{k: run[k] for k in ("steps", "wall_s", "cpu_s", "final_loss")},
        "train_images_per_s": run["steps"] * recipe["batch_size"] / run["wall_s"],
        "AP": metrics["AP"],
        "AP50": metrics["AP50"],
        "coco": metrics,
        "params": int(model.count_params()),
        "infer_ms": inference_ms(model, task, name, timing_runs),
    }
    for t in types[1:]:  # "segm": mask AP; "keypoints": OKS AP (the 10 COCO keypoint numbers)
        row[t] = scores[t]
    row["cpu_steal_percent"] = harness.steal_percent(ticks, harness.cpu_ticks())
    if name in PROPOSAL_DETECTORS:
        row["proposal_ms"] = task.proposal_info["ms_per_image_median"]
    if "stages" in run:
        row["stages"] = run["stages"]
    return row, model


def inference_ms(model, task, name, runs):
    """Median ms of one test image (batch 1) through the model (``tf.function``, outputs fetched), cycling images."""
    import tensorflow as tf

    batches = task.batches(name, training=False).unbatch().batch(1).take(min(runs, task.num_test))
    inputs = [model_inputs(b) for b in batches]
    # A model that already is a traced function (peers._Decoded.fn) is timed as it is: wrapping a callable
    # object in another tf.function sends it through autograph's converted_call, which in one pytest-xdist worker
    # converted the wrong code object ("tf____init__() got an unexpected keyword argument 'training'").
    fn = getattr(model, "fn", None) or tf.function(lambda x: model(x, training=False))
    for x in inputs[:3]:
        harness.fetch(fn(x))
    times = []
    for i in range(runs):
        start = time.perf_counter()
        harness.fetch(fn(inputs[i % len(inputs)]))
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)
