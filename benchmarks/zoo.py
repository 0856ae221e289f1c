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
PROPOSAL_DETECTORS = ("rcnn", "fast_rcnn")
LABELS = {
    "classify_localize": "Classify+localize", "sliding_window": "Sliding window", "rcnn": "R-CNN",
    "fast_rcnn": "Fast R-CNN", "faster_rcnn": "Faster R-CNN", "mask_rcnn": "Mask R-CNN", "ssd": "SSD",
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
                                            "classify_localize") else "two_stage") for name in DETECTORS}
NUM_PROPOSALS = 300


def _check(name):
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; expected one of {DETECTORS}")


def shapes_detector(name, num_classes, train_boxes_wh=None, backbone="tiny", image_size=SHAPES_SIZE):
    """A CPU-sized keras_det detector for ``shapes`` images (128 px, tiny backbone by default).

    Args:
        name: one of `DETECTORS`.
        num_classes: object classes.
        train_boxes_wh: ``[N, 2]`` GT widths/heights (YOLO multiscale's k-means priors).
        backbone: backbone name (``"tiny"``: from scratch in minutes on a CPU).
        image_size: square image side (SSD / YOLO are built for it).
    """
    from keras_det.cli import DEMO_MODEL
    from keras_det import models

    _check(name)
    size = (image_size, image_size)
    two_stage = {**DEMO_MODEL, "backbone": backbone}
    if name == "faster_rcnn":
        return models.FasterRCNN(num_classes, bounding_box_format=FORMAT, **two_stage)
    if name == "mask_rcnn":
        return models.MaskRCNN(num_classes, bounding_box_format=FORMAT, mask_conv_dims=64, **two_stage)
    if name == "fast_rcnn":
        rpn = ("anchor_sizes", "aspect_ratios", "rpn_filters") + tuple(k for k in two_stage if k.startswith("rpn_"))
        return models.FastRCNN(num_classes, bounding_box_format=FORMAT, **{k: v for k, v in two_stage.items() if k not in rpn})
    if name == "rcnn":
        # 64-px warps of the 128-px images (the paper warps 227 px of ~500-px
        # images), 4 px of context (16/227 of the window in the paper).
        return models.RCNN(num_classes, backbone=backbone, bounding_box_format=FORMAT, warp_size=64, context_padding=4,
                           finetune_rois_per_image=32, svm_negative_pool=32, bbox_rois_per_image=16,
                           max_detections=50, inference_chunk=NUM_PROPOSALS)
    if name in ("ssd", "ssdlite"):
        return models.SSD(num_classes, backbone=backbone, image_size=size, head=name, extra_filters=128,
                          bounding_box_format=FORMAT)
    if name == "yolo_v1":
        return models.YOLOv1(num_classes, backbone=backbone, image_size=size, grid_size=7, head_filters=128, fc_dim=512,
                             bounding_box_format=FORMAT)
    if name == "yolo_multiscale":
        from keras_det.models.yolo import priors_per_level
        from keras_det.ops.anchors import kmeans_anchors

        if train_boxes_wh is None:
            raise ValueError("yolo_multiscale needs `train_boxes_wh` (its k-means priors)")
        return models.YOLO(num_classes, backbone=backbone, image_size=size,
                           priors=priors_per_level(kmeans_anchors(train_boxes_wh, 9, seed=0)), head_filters=64,
                           neck_filters=64, bounding_box_format=FORMAT)
    if name == "sliding_window":
        return models.SlidingWindowDetector(num_classes, backbone=backbone, feature_tap="C3", window_sizes=(16, 32, 64),
                                            aspect_ratios=(0.5, 1.0, 2.0), hidden_dim=64, bounding_box_format=FORMAT)
    # The stride-16 C4 map (8x8 at 128 px; C5 is 4x4) for shapes' 8-77 px objects, and the
    # location-supervised class map: a pooled classifier does not learn shapes' classes in the budget.
    # (box_head="dense" as well: AP50 0.270, AP 0.127 against 0.299 / 0.129 with the FC regressor.)
    return models.ClassifyLocalize(num_classes, backbone=backbone, tap="C4", box_grid=8, classifier="dense",
                                   bounding_box_format=FORMAT)


def speed_detector(name, num_classes=91, size=320):
    """The ImageNet-class configuration of a detector for the 320×320 speed comparison.

    Faster / Mask R-CNN follow torchvision's
    ``fasterrcnn_mobilenet_v3_large_320_fpn`` (MobileNetV3-Large, 5 anchor
    sizes, 150 test proposals), the others MobileNetV2 (SSD's and YOLO's
    usual mobile backbone); R-CNN and Fast R-CNN share MobileNetV2.
    """
    from keras_det import models

    _check(name)
    shape = (size, size)
    mnv3 = dict(backbone="mobilenet_v3_large", feature_tap="C4", anchor_sizes=(32, 64, 128, 256, 512),
                rpn_pre_nms_topk_test=150, rpn_post_nms_topk_test=150, bounding_box_format=FORMAT)
    if name == "faster_rcnn":
        return models.FasterRCNN(num_classes, **mnv3)
    if name == "mask_rcnn":
        return models.MaskRCNN(num_classes, **mnv3)
    if name == "fast_rcnn":
        return models.FastRCNN(num_classes, backbone="mobilenet_v2", feature_tap="C4", bounding_box_format=FORMAT)
    if name == "rcnn":
        return models.RCNN(num_classes, backbone="mobilenet_v2", bounding_box_format=FORMAT, inference_chunk=50)
    if name in ("ssd", "ssdlite"):
        return models.SSD(num_classes, backbone="mobilenet_v2", image_size=shape, head=name, bounding_box_format=FORMAT)
    if name == "yolo_v1":
        return models.YOLOv1(num_classes, backbone="mobilenet_v2", image_size=shape, bounding_box_format=FORMAT)
    if name == "yolo_multiscale":
        return models.YOLO(num_classes, backbone="mobilenet_v2", image_size=shape, bounding_box_format=FORMAT)
    if name == "sliding_window":
        return models.SlidingWindowDetector(num_classes, backbone="mobilenet_v2", bounding_box_format=FORMAT)
    return models.ClassifyLocalize(num_classes, backbone="mobilenet_v2", bounding_box_format=FORMAT)


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


def shapes_split(split, num_images, with_masks=False, max_objects=8):
    from keras_det import data

    return data.load("shapes", split, FORMAT, num_images=num_images, image_size=SHAPES_SIZE, with_masks=with_masks,
                     max_objects=max_objects, with_info=True)


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
    from keras_det.proposals import propose

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


def evaluate(model, batches):
    """COCO metrics (floats) of ``model`` on batched data-contract ``batches``."""
    from keras_det.metrics import COCOEvaluator

    evaluator = COCOEvaluator(bounding_box_format=FORMAT)
    for batch in batches:
        evaluator.update_state(batch["bounding_boxes"], model.predict_on_batch(model_inputs(batch)))
    return {k: float(v) for k, v in evaluator.result().items()}


# ---------------------------------------------------------------------------
# Train on a CPU budget, evaluate, time
# ---------------------------------------------------------------------------


def _without_masks(element):
    return {k: v for k, v in element.items() if k != "masks"}


class ShapesTask:
    """The ``shapes`` data of a budget run, loaded once for all detectors.

    Args:
        num_train, num_test: images of the train / test splits.
        need_proposals: compute selective search for R-CNN / Fast R-CNN.
        need_masks: load instance masks (Mask R-CNN).
        max_objects: objects per image are 1..max_objects (8: the default set).
    """

    def __init__(self, num_train=1000, num_test=200, need_proposals=True, need_masks=True, max_objects=8):
        self.train, info = shapes_split("train", num_train, with_masks=need_masks, max_objects=max_objects)
        self.test, _ = shapes_split("test", num_test, with_masks=False, max_objects=max_objects)
        self.class_names = list(info.class_names)
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
        if name != "mask_rcnn" and training:
            split = split.map(_without_masks)
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
        COCO numbers under ``coco``), inference ms/image at batch 1 (model
        only; R-CNN / Fast R-CNN also ``proposal_ms``), params.
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
    metrics = evaluate(model, task.batches(name, training=False))
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
    fn = tf.function(lambda x: model(x, training=False))
    for x in inputs[:3]:
        harness.fetch(fn(x))
    times = []
    for i in range(runs):
        start = time.perf_counter()
        harness.fetch(fn(inputs[i % len(inputs)]))
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)
