"""One SGD step on 1 device vs. under MirroredStrategy on 2 logical CPUs.

Run as a script (``python -m tests.models.replica_step NAME ...``) so that the
logical-device configuration stays in its own process. For every model name it
prints one JSON line ``{"model", "ratio", "max_abs_diff", "moved"}``: ``ratio``
is ``|w_2 - w_0| / |w_1 - w_0|`` (how far the 2-replica step moved the
weights relative to the 1-device step with the same global batch of 2) and
``max_abs_diff`` the largest weight difference between the two steps.

Configurations are deterministic: samplers budget every candidate (so no
random draw), BatchNorm layers are frozen (their statistics are per replica),
dropout is off.
"""

import json
import sys

import tensorflow as tf

if __name__ == "__main__":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_det import models, presets  # noqa: E402
from keras_det.models.base import Detector  # noqa: E402
from tests.models.synthetic import rectangles  # noqa: E402

SIZE = 64
ALL = 10_000  # a sampler budget above every candidate count: nothing is drawn at random
# Samplers drawing everything (ALL candidates, positive fraction 1): nothing is random, so the
# replicas see the same RoIs as one device.
RPN = dict(rpn_batch_size_per_image=ALL, rpn_positive_fraction=1.0, roi_batch_size_per_image=ALL,
           roi_positive_fraction=1.0)


class MeanBoxDetector(Detector):
    """The smallest Detector: one dense layer on the mean colour, L2 to the first box."""

    def __init__(self, **kwargs):
        super().__init__(bounding_box_format="xyxy", loss_names=("box_loss",), **kwargs)
        self.dense = keras.layers.Dense(4)

    def compute_detection_losses(self, images, gt_boxes, gt_labels, training=True, **extras):
        pred = tf.cast(self.dense(tf.reduce_mean(images, axis=[1, 2]) / 255.0), tf.float32)  # loss in float32
        return {"box_loss": tf.reduce_mean(tf.square(pred - gt_boxes[:, 0] / SIZE))}

    def call(self, images, training=False):
        return self.dense(tf.reduce_mean(images, axis=[1, 2]) / 255.0)


def _proposals(batch, per_image=12):
    rng = np.random.default_rng(1)
    props = np.zeros((len(batch["images"]), per_image, 4), np.float32)
    for i, (boxes, labels) in enumerate(zip(batch["bounding_boxes"]["boxes"], batch["bounding_boxes"]["labels"])):
        rows = [b + rng.normal(0, 2, 4) for b in boxes[labels >= 0] for _ in range(2)]
        while len(rows) < per_image - 2:
            x, y = rng.uniform(0, SIZE - 16, 2)
            rows.append([x, y, x + rng.uniform(6, 30), y + rng.uniform(6, 30)])
        props[i, : len(rows)] = np.clip(rows, 0, SIZE)  # two zero rows: padding
    return props


def _masks(batch):
    n, m = batch["bounding_boxes"]["labels"].shape
    masks = np.zeros((n, m, SIZE, SIZE), np.uint8)
    for i in range(n):
        for j in range(m):
            if batch["bounding_boxes"]["labels"][i, j] >= 0:
                x1, y1, x2, y2 = batch["bounding_boxes"]["boxes"][i, j].astype(int)
                masks[i, j, y1:y2, x1:x2] = 1
    return masks


def _batch(name):
    """Global batch of 2: images with different numbers of objects (so per-replica counts differ)."""
    batch = rectangles(num_images=2, size=SIZE, max_boxes=3, num_classes=2, seed=5)  # 1 and 3 objects
    if name in ("fast_rcnn", "rcnn"):
        batch["proposals"] = _proposals(batch)
    if name == "mask_rcnn":
        batch["masks"] = _masks(batch)
    if name == "segmenter":
        labels = (batch["images"].max(-1) > 200).astype(np.int32)
        return (batch["images"], labels)
    return batch


BUILDERS = {
    "minimal": lambda: MeanBoxDetector(),
    "classify_localize": lambda: presets.build("classify_localize_micro", 2),
    "sliding_window": lambda: presets.build("sliding_window_micro", 2, batch_size_per_image=ALL, positive_fraction=1.0),
    "rcnn": lambda: presets.build("rcnn_micro", 2, finetune_rois_per_image=ALL, finetune_positive_fraction=1.0,
                                  svm_negative_pool=ALL),
    "fast_rcnn": lambda: presets.build("fast_rcnn_micro", 2, roi_batch_size_per_image=ALL, roi_positive_fraction=1.0),
    "faster_rcnn": lambda: presets.build("faster_rcnn_micro", 2, **RPN),
    "mask_rcnn": lambda: presets.build("mask_rcnn_micro", 2, **RPN),
    "ssd": lambda: presets.build("ssd_micro", 2),
    "yolo_v1": lambda: presets.build("yolo_v1_micro", 2),
    "yolo": lambda: presets.build("yolo_micro", 2),
    "segmenter": lambda: models.FCNSegmenter(2, backbone="tiny"),
}


def _build(name, weights=None):
    keras.utils.set_random_seed(0)
    model = BUILDERS[name]()
    data = _batch(name)
    x = data[0] if isinstance(data, tuple) else {k: v for k, v in data.items() if k in ("images", "proposals")}
    if name == "minimal" or name == "segmenter" or "images" not in x or len(x) == 1:
        model(data[0] if isinstance(data, tuple) else data["images"])
    else:
        model(x)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # statistics are per replica; frozen BN is the same everywhere
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return model, data


def one_step(name, strategy, weights=None):
    with strategy.scope():
        model, data = _build(name, weights)
    initial = model.get_weights()
    before = [v.numpy().copy() for v in model.trainable_variables]
    ds = tf.data.Dataset.from_tensor_slices(data).batch(2)
    model.fit(ds, epochs=1, verbose=0)
    return initial, before, [v.numpy() for v in model.trainable_variables]


def main(names):
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # one for all: collective keys
    for name in names:
        initial, before, single = one_step(name, tf.distribute.get_strategy())
        try:
            _, _, mirrored = one_step(name, mirrored_strategy, weights=initial)
        except Exception as e:  # noqa: BLE001 - reported, the test fails on it
            print(json.dumps({"model": name, "error": f"{type(e).__name__}: {str(e)[:300]}"}), flush=True)
            continue
        d1 = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(single, before)))
        d2 = np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(mirrored, before)))
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(single, mirrored))
        print(json.dumps({"model": name, "ratio": float(d2 / d1), "max_abs_diff": diff, "moved": float(d1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(BUILDERS))
