"""FCN-8s semantic segmentation on a pretrained backbone (transfer learning).

    images ─ backbone ─ C3 (stride 8), C4 (16), C5 (32)
        score(C5) ─ up×2 ─(+)─ up×2 ─(+)─ up×8 ─ logits [B, H, W, K+1]
                          score(C4)   score(C3)

Long et al.'s FCN-8s: 1×1 convolutions score each tap into ``K + 1``
classes (background = 0), transposed convolutions initialised to bilinear
interpolation (`BilinearUpsampling`) upsample the coarse scores, which are
summed with the finer taps' scores (skip connections; the skip scorers start
at zero as in the paper, so training starts from the FCN-32s prediction).

`to_semantic` turns an element of the detection data contract with instance
masks (``keras_det.data.load("shapes", ..., with_masks=True)``) into
``(images, mask)`` with ``mask[y, x] = label + 1`` on object pixels and 0 on
background, which ``fit`` takes directly.
"""

import keras
import tensorflow as tf

from keras_det.backbones import build_backbone
from keras_det.layers.initializers import BilinearUpsampling
from keras_det.models.config import ConfigFromArguments

TAPS = ("C3", "C4", "C5")


def to_semantic(element):
    """Data-contract element with ``"masks"`` → ``(images, semantic mask)``.

    Args:
        element: unbatched dict with ``"images"`` ``[H, W, 3]``,
            ``"bounding_boxes"["labels"]`` ``[N]`` (0-based) and ``"masks"``
            ``[N, H, W]`` (0/1). Where instance masks overlap, the later
            instance wins (it is painted on top in ``shapes``).

    Returns:
        ``(images float32 [H, W, 3], mask int32 [H, W])`` with
        ``mask = label + 1`` on object pixels, 0 elsewhere.
    """
    if "masks" not in element:
        raise ValueError("to_semantic needs instance `masks` (load the data with with_masks=True).")
    masks = tf.cast(element["masks"], tf.int32) > 0  # [N, H, W]
    labels = tf.cast(element["bounding_boxes"]["labels"], tf.int32)
    n = tf.shape(labels)[0]
    order = tf.range(1, n + 1)
    # Index (1-based) of the last instance covering each pixel, 0 for none.
    # (An image without objects reduces over an empty axis: clamp to 0.)
    top = tf.maximum(tf.reduce_max(tf.where(masks, order[:, None, None], 0), axis=0), 0)
    table = tf.concat([[0], labels + 1], axis=0)
    semantic = tf.gather(table, top)
    semantic = tf.where(n > 0, semantic, tf.zeros(tf.shape(element["images"])[:2], tf.int32))
    return tf.cast(element["images"], tf.float32), semantic


def _crop_to(x, like):
    """Crops ``x`` ``[B, H', W', C]`` to the spatial size of ``like`` (``H' >= H``)."""
    shape = tf.shape(like)
    return x[:, : shape[1], : shape[2], :]


@keras.saving.register_keras_serializable(package="keras_det")
class FCNSegmenter(ConfigFromArguments, keras.Model):
    """FCN-8s semantic segmenter on a ``keras.applications`` backbone.

    Args:
        num_classes: object classes; the model predicts ``num_classes + 1``
            channels (0 = background).
        backbone: name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        bounding_box_format: unused by segmentation; accepted so every
            keras_det model has the same constructor arguments.

    Call: float images ``[B, H, W, 3]`` in 0..255 → logits ``[B, H, W,
    num_classes + 1]`` (any ``H, W``; sizes not divisible by 32 are handled
    by cropping the upsampled scores).

    ``compile()`` defaults: Adam, sparse categorical cross-entropy on
    logits, and ``keras.metrics.MeanIoU`` over the ``num_classes + 1``
    classes (named ``mean_iou``). Fit on ``dataset.map(to_semantic)``
    batches. For transfer learning, ``keras_det.models.transfer.freeze`` or
    ``fine_tune(model.backbone, n)`` before ``compile``.
    """

    def __init__(self, num_classes, backbone="mobilenet_v2", backbone_weights=None, bounding_box_format="xyxy", **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.bounding_box_format = bounding_box_format
        k = self.num_classes + 1
        self.backbone = build_backbone(backbone, backbone_weights, (None, None, 3), taps=TAPS)
        self.score_c5 = keras.layers.Conv2D(k, 1, name="score_c5")
        self.score_c4 = keras.layers.Conv2D(k, 1, kernel_initializer="zeros", name="score_c4")
        self.score_c3 = keras.layers.Conv2D(k, 1, kernel_initializer="zeros", name="score_c3")
        up = dict(padding="same", use_bias=False, kernel_initializer=BilinearUpsampling())
        self.up2_c5 = keras.layers.Conv2DTranspose(k, 4, strides=2, name="upsample2_c5", **up)
        self.up2_c4 = keras.layers.Conv2DTranspose(k, 4, strides=2, name="upsample2_c4", **up)
        self.up8 = keras.layers.Conv2DTranspose(k, 16, strides=8, name="upsample8", **up)

    def call(self, images, training=False):
        images = tf.cast(images, tf.float32)
        feats = self.backbone(images, training=training)
        s4 = self.score_c4(feats["C4"])
        x = _crop_to(self.up2_c5(self.score_c5(feats["C5"])), s4) + s4
        s3 = self.score_c3(feats["C3"])
        x = _crop_to(self.up2_c4(x), s3) + s3
        return _crop_to(self.up8(x), images)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics is None:
            metrics = [keras.metrics.MeanIoU(self.num_classes + 1, sparse_y_true=True, sparse_y_pred=False, name="mean_iou")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def predict_masks(self, images):
        """Argmax class map ``[B, H, W]`` int32 (0 background, ``label + 1`` objects)."""
        return tf.argmax(self(images, training=False), axis=-1, output_type=tf.int32)

