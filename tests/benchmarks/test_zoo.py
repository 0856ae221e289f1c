"""benchmarks/zoo.py's evaluation: ground truth turned into predictions scores 1 on boxes, masks and keypoints."""

import numpy as np
import tensorflow as tf

import zoo


class _Oracle:
    """Predicts each batch's ground truth: boxes, box-frame masks (28 x 28) and keypoints."""

    num_keypoints = 6

    def predict_on_batch(self, batch):
        from keras_det.ops import boxes as box_ops
        from keras_det.ops.targets import mask_targets

        gt = self.batch["bounding_boxes"]
        labels = gt["labels"].numpy()
        b, m = labels.shape
        yxyx = box_ops.convert_format(gt["boxes"], zoo.FORMAT, "yxyx")
        index = np.where(labels >= 0, np.arange(m)[None], -1)
        masks = mask_targets(tf.cast(self.batch["masks"], tf.float32), index, yxyx, (28, 28)).numpy()
        return {"boxes": gt["boxes"].numpy(), "scores": (labels >= 0).astype(np.float32), "labels": labels,
                "num_detections": (labels >= 0).sum(1), "masks": masks,
                "keypoints": self.batch["keypoints"].numpy()}


def test_evaluate_all_scores_ground_truth_one():
    from keras_det.data import shapes

    task = zoo.ShapesTask(num_train=2, num_test=6, need_proposals=False, need_masks=True, need_keypoints=True)
    assert task.keypoints["sigmas"] == shapes.KEYPOINT_SIGMAS
    oracle = _Oracle()

    def batches():
        for batch in task.batches("mask_rcnn_keypoints", training=False):
            oracle.batch = batch
            yield batch

    scores = zoo.evaluate_all(oracle, batches(), ("bbox", "segm", "keypoints"), task.keypoints["sigmas"])
    assert scores["bbox"]["AP"] == 1.0 and scores["keypoints"]["AP"] == 1.0
    # Masks go through the 28 x 28 box frame and back (zoo.pasted_masks): every mask still matches at IoU 0.75.
    assert scores["segm"]["AP50"] == 1.0 and scores["segm"]["AP75"] == 1.0
    # Other detectors' batches carry neither masks nor keypoints.
    plain = next(iter(task.batches("faster_rcnn", training=False)))
    assert "masks" not in plain and "keypoints" not in plain
    assert "keypoints" not in next(iter(task.batches("mask_rcnn", training=False)))
