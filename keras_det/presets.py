"""Named detector configurations: the one place detector settings are spelled.

The CLI (``keras-det train``, ``keras-det demo``), the benchmarks and the tests
build their detectors from these presets, so a setting changed here changes
everywhere at once::

    from keras_det import presets

    model = presets.build("faster_rcnn_cpu", num_classes=3, bounding_box_format="xyxy")
    presets.arguments("ssd_test")          # the constructor arguments, a fresh dict
    presets.names()                        # every preset name

Three families, by purpose:

* ``*_cpu``: sized to train in CPU minutes on small images (the embedded
  128-px ``shapes`` set, BCCD at 160–320 px) with the ``tiny`` backbone — what
  the demo, ``keras-det train`` and the accuracy benchmarks use.
* ``*_320``: the ImageNet-class configurations of the 320×320 speed comparison
  against torchvision / keras-cv (``benchmarks/peers.py``).
* ``*_test``: the smallest configurations that still exercise every code path
  (the unit tests and the serving benchmark's toy sizes).
* ``*_micro``: 64×64 inputs, 16-channel heads, 5 detections: the bad-input
  fuzz harness and the replica-step equivalence tests, which build every
  detector many times.

A preset holds no ``num_classes`` (every dataset has its own) and no
``bounding_box_format`` (the caller's data decides); ``build`` takes both.
"""

import copy

# The demo's detector: a Faster R-CNN sized for 128-px `shapes` images on 2 CPU
# cores. Objects are 8-77 px, so it pools from the stride-8 map (C3) with
# 4 anchor sizes x 3 ratios; on the paper's stride-16 map AP50 stayed at 0.26
# after 3 CPU-minutes against 0.63 here.
_TWO_STAGE_CPU = dict(
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
# The RPN's settings, which Fast R-CNN (precomputed proposals) does not take.
_RPN_KEYS = ("anchor_sizes", "aspect_ratios", "rpn_filters", "rpn_pre_nms_topk_train", "rpn_post_nms_topk_train",
             "rpn_pre_nms_topk_test", "rpn_post_nms_topk_test")
# torchvision's fasterrcnn_mobilenet_v3_large_320_fpn: MobileNetV3-Large, a
# 256-channel FPN on its last two stages (C4, C5) plus a pooled level (P4-P6
# for the RPN, RoIs pooled from P4-P5), 150 test proposals. torchvision puts all
# 5 sizes (32-512) on every level; keras_det's FPN RPN has one size per level,
# here the middle three. Until 2026-12 this preset pooled the 672-channel C4
# map without a pyramid: 12.5 GFLOPs against torchvision's 5.75 (the first box
# FC alone 10 GFLOPs), 202 ms against 146 ms with this pyramid (AMD EPYC, 2 cores).
_MNV3_320 = dict(backbone="mobilenet_v3_large", fpn=True, fpn_taps=("C4", "C5"), anchor_sizes=(64, 128, 256),
                 rpn_pre_nms_topk_test=150, rpn_post_nms_topk_test=150)
# SSD-MobileNetV2's layout (the ssd_320 / ssdlite_320 presets below).
_SSD_MNV2 = dict(backbone="mobilenet_v2", feature_taps=("C4", "C5"), extra_filters=(512, 256, 256, 128),
                 extra_kind="ssdlite", max_scale=0.95)
_TWO_STAGE_MICRO = dict(
    backbone="tiny",
    anchor_sizes=(16, 32, 64),
    rpn_filters=16,
    fc_dims=(32, 32),
    rpn_pre_nms_topk_train=64,
    rpn_post_nms_topk_train=16,
    rpn_batch_size_per_image=32,
    roi_batch_size_per_image=16,
    max_detections=5,
)
_TWO_STAGE_TEST = dict(
    backbone="tiny",
    anchor_sizes=(16, 32, 64),
    rpn_filters=32,
    fc_dims=(64, 64),
    rpn_pre_nms_topk_train=200,
    rpn_post_nms_topk_train=64,
    rpn_pre_nms_topk_test=200,
    rpn_post_nms_topk_test=32,
    roi_batch_size_per_image=32,
    max_detections=20,
)

_MASK_HEAD_CPU = dict(mask_conv_dims=32, mask_num_convs=2)

# name -> (model class name in keras_det.models, constructor arguments)
PRESETS = {
    # -- CPU-sized: demo, keras-det train, accuracy benchmarks ----------------
    "faster_rcnn_cpu": ("FasterRCNN", _TWO_STAGE_CPU),
    # A light mask head (2 convs of 32 channels; the paper's 4 of 256): the heads run on every
    # positive RoI (up to 32 per image), and with 4 convs of 64 channels a training step cost
    # 3.3x Faster R-CNN's (0.275 s against 0.083 s at 128 px, batch 8), so in a fixed CPU budget
    # Mask R-CNN saw a fraction of the images (box AP50 0.148 against 0.724). With this head:
    # 0.132 s per step, box AP50 0.732 against Faster R-CNN's 0.739 (docs/benchmarks.md).
    "mask_rcnn_cpu": ("MaskRCNN", {**_TWO_STAGE_CPU, **_MASK_HEAD_CPU}),
    # + the keypoint head on the 6 keypoint slots of `shapes` (keras_det.data.shapes.NUM_KEYPOINTS).
    "mask_rcnn_keypoints_cpu": ("MaskRCNN", {**_TWO_STAGE_CPU, **_MASK_HEAD_CPU, "num_keypoints": 6}),
    "fast_rcnn_cpu": ("FastRCNN", {k: v for k, v in _TWO_STAGE_CPU.items() if k not in _RPN_KEYS}),
    # 64-px warps of the 128-px images (the paper warps 227 px of ~500-px
    # images), 4 px of context (16/227 of the window in the paper).
    "rcnn_cpu": ("RCNN", dict(backbone="tiny", warp_size=64, context_padding=4, finetune_rois_per_image=32,
                              svm_negative_pool=32, bbox_rois_per_image=16, max_detections=50)),
    "ssd_cpu": ("SSD", dict(backbone="tiny", head="ssd", extra_filters=128)),
    "ssdlite_cpu": ("SSD", dict(backbone="tiny", head="ssdlite", extra_filters=128)),
    # YOLO v1 that learns from scratch on 128-px `shapes` (docs/single_stage.md): the
    # cross-entropy class and confidence terms (the paper's squared errors through the
    # softmax / sigmoid stay at chance: AP50 0.005), the stride-16 C4 map with one cell per
    # map position (S = 8) and the shared per-cell path beside the FC head, no dropout.
    # 300 CPU-s: AP50 0.314 in the benchmark, 0.452 in an exploratory run (S = 7 on the same map:
    # 0.244; with dropout 0.5: 0.205).
    "yolo_v1_cpu": ("YOLOv1", dict(backbone="tiny", grid_size=8, feature_tap="C4", head_local=True, dropout=0.0,
                                   class_loss="ce", confidence_loss="bce", head_filters=128, fc_dim=512)),
    "yolo_cpu": ("YOLO", dict(backbone="tiny", head_filters=64, neck_filters=64)),
    "sliding_window_cpu": ("SlidingWindowDetector", dict(backbone="tiny", feature_tap="C3", window_sizes=(16, 32, 64),
                                                         aspect_ratios=(0.5, 1.0, 2.0), hidden_dim=64)),
    # The stride-16 C4 map (8x8 at 128 px; C5 is 4x4) for shapes' 8-77 px objects, and the
    # location-supervised class map: a pooled classifier does not learn shapes' classes in the
    # budget. The GIoU box loss (scale-free; the L2 corner loss hardly weighs small objects)
    # with the per-cell box head: one-object shapes, 300 CPU-s, AP50 0.299 -> 0.675 (GIoU with the
    # FC regressor 0.504 in an exploratory run; L2 with the per-cell head 0.270).
    "classify_localize_cpu": ("ClassifyLocalize", dict(backbone="tiny", tap="C4", box_grid=8, classifier="dense",
                                                       box_head="dense", box_loss="giou", box_loss_weight=2.0)),
    # -- 320x320 speed comparison (ImageNet-class backbones) -------------------
    "faster_rcnn_320": ("FasterRCNN", _MNV3_320),
    # The mask head at a quarter of the paper's width (4 convs of 64 channels, not 256): it runs
    # on every kept detection, and the paper's head costs 0.93 GFLOPs per RoI -- 18.5 GFLOPs at
    # 20 detections, 3x the whole Faster R-CNN (6.6), 487 ms against 148 ms (AMD EPYC, AVX2).
    # A mobile backbone gets a mobile mask head (torchvision ships no mobile Mask R-CNN).
    "mask_rcnn_320": ("MaskRCNN", {**_MNV3_320, "mask_conv_dims": 64}),
    "fast_rcnn_320": ("FastRCNN", dict(backbone="mobilenet_v2", feature_tap="C4")),
    "rcnn_320": ("RCNN", dict(backbone="mobilenet_v2", inference_chunk=50)),
    # SSD / SSDLite on MobileNetV2 as Sandler et al. (2018, sec. 6.2) attach them: the first map is
    # the expansion of the first stride-32 block (C4: 576 channels at stride 16), the others follow
    # the last layer (C5, stride 32); depthwise-separable extra maps of 512, 256, 256 channels and
    # default-box scales 0.2-0.95 (TF Object Detection API ssd_mobilenet_v2: use_depthwise, layer
    # depths [-1, -1, 512, 256, 256, 128]). At 320 px: maps 20, 10, 5, 3, 1: 2,390 default boxes
    # (with the stride-8 C3 map and full 3x3 extras it had 9,590, and 2.82 GFLOPs at 20 classes, now 2.10).
    "ssd_320": ("SSD", {**_SSD_MNV2, "head": "ssd"}),
    "ssdlite_320": ("SSD", {**_SSD_MNV2, "head": "ssdlite"}),
    "yolo_v1_320": ("YOLOv1", dict(backbone="mobilenet_v2")),
    "yolo_320": ("YOLO", dict(backbone="mobilenet_v2")),
    # keras-cv YOLOV8 xs's compute: 2.15 GFLOPs at 320 px and 20 classes against its 2.16
    # (yolo_320: 4.33); the neck and head narrowed, the backbone kept.
    "yolo_xs_320": ("YOLO", dict(backbone="mobilenet_v2", head_filters=160, neck_filters=64)),
    "sliding_window_320": ("SlidingWindowDetector", dict(backbone="mobilenet_v2")),
    "classify_localize_320": ("ClassifyLocalize", dict(backbone="mobilenet_v2")),
    # -- the smallest that exercise every path: tests, toy benchmarks ----------
    "faster_rcnn_test": ("FasterRCNN", _TWO_STAGE_TEST),
    "mask_rcnn_test": ("MaskRCNN", {**_TWO_STAGE_TEST, "mask_conv_dims": 16, "mask_num_convs": 2}),
    "mask_rcnn_keypoints_test": ("MaskRCNN", {**_TWO_STAGE_TEST, "mask_conv_dims": 16, "mask_num_convs": 2,
                                              "num_keypoints": 6}),
    "fast_rcnn_test": ("FastRCNN", dict(backbone="tiny", fc_dims=(64, 64), roi_batch_size_per_image=32,
                                        max_detections=10)),
    "rcnn_test": ("RCNN", dict(backbone="tiny", warp_size=48, context_padding=4, finetune_rois_per_image=12,
                               svm_negative_pool=12, bbox_rois_per_image=6, max_detections=10, inference_chunk=32)),
    "ssd_test": ("SSD", dict(backbone="tiny", image_size=(128, 128), extra_filters=64, max_detections=20)),
    "yolo_v1_test": ("YOLOv1", dict(backbone="tiny", image_size=(128, 128), grid_size=4, head_filters=32,
                                    fc_dim=64, dropout=0.0, max_detections=20)),
    "yolo_test": ("YOLO", dict(backbone="tiny", image_size=(128, 128), head_filters=32,
                               neck_filters=32, max_detections=20,
                               priors=(((8, 8), (16, 16), (12, 20)), ((24, 24), (32, 32), (28, 40)),
                                       ((48, 48), (64, 64), (100, 100))))),
    "sliding_window_test": ("SlidingWindowDetector", dict(backbone="tiny", feature_tap="C4", window_sizes=(24, 48),
                                                          aspect_ratios=(0.5, 1.0, 2.0), hidden_dim=32,
                                                          batch_size_per_image=64, max_detections=20,
                                                          allow_low_quality_matches=True)),
    # -- 64x64, 16-channel heads: the fuzz harness and the replica-step tests -----
    "classify_localize_micro": ("ClassifyLocalize", dict(backbone="tiny", box_channels=8, box_hidden=16)),
    "sliding_window_micro": ("SlidingWindowDetector", dict(backbone="tiny", feature_tap="C4", window_sizes=(24,),
                                                           aspect_ratios=(1.0,), hidden_dim=16, max_detections=5)),
    "rcnn_micro": ("RCNN", dict(backbone="tiny", warp_size=32, context_padding=4, stage="all",
                                finetune_rois_per_image=8, svm_negative_pool=8, max_detections=5)),
    "fast_rcnn_micro": ("FastRCNN", dict(backbone="tiny", fc_dims=(32, 32), roi_batch_size_per_image=8,
                                         max_detections=5)),
    "faster_rcnn_micro": ("FasterRCNN", _TWO_STAGE_MICRO),
    "mask_rcnn_micro": ("MaskRCNN", {**_TWO_STAGE_MICRO, "mask_conv_dims": 8, "mask_num_convs": 1}),
    "ssd_micro": ("SSD", dict(backbone="tiny", image_size=(64, 64), feature_taps=("C4", "C5"), extra_filters=16,
                              max_detections=5)),
    "yolo_v1_micro": ("YOLOv1", dict(backbone="tiny", image_size=(64, 64), grid_size=2, head_filters=16, fc_dim=16,
                                     dropout=0.0, max_detections=5)),
    "yolo_micro": ("YOLO", dict(backbone="tiny", image_size=(64, 64), head_filters=16, neck_filters=16,
                                max_detections=5, priors=(((8, 8), (16, 16), (12, 20)), ((24, 24), (32, 32), (28, 40)),
                                                          ((48, 48), (64, 64), (60, 60))))),
}


def names():
    """Every preset name, sorted."""
    return sorted(PRESETS)


def _get(name):
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {names()}")
    return PRESETS[name]


def model_class(name):
    """The ``keras_det.models`` class that preset ``name`` builds."""
    from keras_det import models

    return getattr(models, _get(name)[0])


def arguments(name, **overrides):
    """The constructor arguments of preset ``name`` (a fresh dict), with ``overrides`` applied."""
    return {**copy.deepcopy(_get(name)[1]), **overrides}


def build(name, num_classes, **overrides):
    """Builds preset ``name`` for ``num_classes`` object classes.

    Args:
        name: a preset name (see `names`).
        num_classes: object classes (background excluded).
        **overrides: constructor arguments that replace or add to the
            preset's (``bounding_box_format``, ``image_size`` for SSD / YOLO,
            ``backbone``, ``backbone_weights``, ``anchor_sizes``, ...).

    Returns:
        The (unbuilt) keras_det detector.
    """
    return model_class(name)(num_classes, **arguments(name, **overrides))
