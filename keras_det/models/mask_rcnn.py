"""Mask R-CNN (He et al., 2017): Faster R-CNN + a RoIAlign mask branch.

The mask branch (``MaskRoIHead``) pools 14×14 RoIAlign features of the
*positive* sampled RoIs (training) or of the final detections (inference),
predicts a 28×28 mask per class, and is trained with binary cross-entropy on
the channel of the RoI's ground-truth class only (no competition between
classes), averaged over the positive RoIs. Targets are the GT instance masks
RoIAligned to 28×28 (``keras_det.ops.targets.mask_targets``).

Batches must carry ``"masks"`` (``[B, M, H, W]``, one per box, 0/1) next to
``bounding_boxes``; ``keras_det.data.load("shapes", ...)`` provides them.
Predictions add ``masks`` ``[B, K, 28, 28]``: per-detection probabilities in
the frame of the detection box (paste them into the image with
``keras_det.ops.instances.paste_masks``).

The model is ``FasterRCNN``'s composition with ``MaskRoIHead`` (and
``KeypointRoIHead``) added to its ``RoIHeads``.
"""

import keras

from keras_det.layers.roi_heads import KeypointRoIHead, MaskRoIHead
from keras_det.models.faster_rcnn import FasterRCNN
from keras_det.ops.instances import decode_keypoints, paste_masks  # noqa: F401  (old import path of paste_masks)


@keras.saving.register_keras_serializable(package="keras_det")
class MaskRCNN(FasterRCNN):
    """Mask R-CNN detector and instance segmenter.

    Args:
        num_classes: object classes.
        mask_roi_size: RoIAlign size of the mask branch (14; masks are twice it).
        mask_conv_dims, mask_num_convs: mask head width and depth (256, 4).
        num_keypoints: ``> 0`` adds the keypoint branch ("Mask R-CNN also does
            pose"): batches then carry ``"keypoints"`` ``[B, M, K, 3]``
            (``x, y`` absolute pixels, visibility ``v > 0``), and predictions
            gain ``keypoints`` ``[B, D, K, 3]`` (``x, y, probability``).
        **kwargs: ``FasterRCNN`` arguments.

    Call: images ``[B, H, W, 3]`` → the Faster R-CNN prediction dict plus
    ``masks`` float32 ``[B, K, 2 * mask_roi_size, 2 * mask_roi_size]``.
    """

    loss_keys = FasterRCNN.loss_keys + ("mask_loss",)

    def __init__(self, num_classes, mask_roi_size=14, mask_conv_dims=256, mask_num_convs=4, num_keypoints=0, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.num_keypoints = int(num_keypoints)
        self.mask_roi_size = int(mask_roi_size)
        if self.num_keypoints:
            self.add_loss_name("keypoint_loss")
        levels = self.roi_heads.box.pooler.levels
        mask = MaskRoIHead(self.num_classes, levels, self.mask_roi_size, mask_conv_dims, mask_num_convs, name="mask_roi_head")
        keypoint = None
        if self.num_keypoints:
            # The keypoint branch pools as the mask branch does (14x14 RoIAlign).
            keypoint = KeypointRoIHead(
                self.num_keypoints, levels, self.mask_roi_size, mask_conv_dims, mask_num_convs, name="keypoint_roi_head"
            )
        self.roi_heads.add_branches(mask, keypoint)
        # As in `compose`: the old attribute names keep weight paths and variable order.
        self.mask_head = mask.head
        if keypoint is not None:
            self.keypoint_head = keypoint.head

    decode_keypoints = staticmethod(decode_keypoints)
