"""Transfer learning: fixed feature extractor, fine-tuning, and the 2×2 advice.

The two strategies of the seed:

* **Fixed feature extractor** — ``freeze(backbone)`` and train a linear
  classifier on pooled features (of the last stage, or of an earlier one
  when the new data looks unlike ImageNet: ``TransferClassifier(tap="C4")``).
* **Fine-tuning** — ``fine_tune(model, num_layers)`` unfreezes the top
  ``num_layers`` weight-carrying backbone layers, keeps every BatchNorm in
  inference mode (frozen statistics and affine terms: small batches would
  ruin them) and gives the unfrozen backbone variables a learning-rate
  multiplier (0.1 by default: "about a tenth of the original rate").

The multipliers are applied by ``keras_det.optimizers.with_lr_multipliers``
(keras_det models and ``TransferClassifier`` call it in ``compile``).
"""

import keras

from keras_det.backbones import build_backbone
from keras_det.models.config import ConfigFromArguments
from keras_det.optimizers import with_lr_multipliers


def iter_layers(model):
    """All leaf layers of ``model`` in order, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model) or (hasattr(layer, "layers") and layer.layers):
            yield from iter_layers(layer)
        else:
            yield layer


def freeze(model):
    """Makes every weight of ``model`` non-trainable (BatchNorm then runs in
    inference mode). Returns ``model``."""
    model.trainable = False
    return model


def fine_tune(model, num_layers, lr_multiplier=0.1):
    """Unfreezes the top ``num_layers`` weight-carrying layers of ``model``.

    BatchNormalization layers stay frozen (and so in inference mode) and do
    not count towards ``num_layers``. The unfrozen variables get
    ``lr_multiplier``; the mapping is returned and also stored as
    ``model.lr_multipliers`` for ``keras_det.optimizers.with_lr_multipliers`` (keras_det models
    apply it in ``compile``).

    Args:
        model: a backbone (e.g. from ``build_backbone``) or any Keras model.
        num_layers: how many of the top weight-carrying, non-BN layers to
            train; ``0`` keeps the model frozen.
        lr_multiplier: learning-rate factor for those layers' variables.

    Returns:
        dict ``{variable.path: lr_multiplier}``.
    """
    if num_layers < 0:
        raise ValueError(f"`num_layers` must be >= 0, got {num_layers}.")
    model.trainable = True
    candidates = []
    for layer in iter_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        elif layer.weights:
            candidates.append(layer)
        else:
            layer.trainable = False
    chosen = candidates[len(candidates) - num_layers :] if num_layers else []
    chosen_ids = {id(layer) for layer in chosen}
    for layer in candidates:
        layer.trainable = id(layer) in chosen_ids
    multipliers = {v.path: float(lr_multiplier) for layer in chosen for v in layer.trainable_weights}
    model.lr_multipliers = multipliers
    return multipliers


# (small data, similar data) -> advice; the seed's 2×2 table.
_TABLE = {
    (True, True): ("linear_classifier", "C5", 0, "Very little data, similar to ImageNet: freeze the backbone and train a linear classifier on the top layer's features."),
    (True, False): ("linear_classifier_earlier_stage", "C4", 0, "Very little data, different from ImageNet: you are in trouble — freeze the backbone and try linear classifiers on features from earlier stages (C4, C3), which are more generic."),
    (False, True): ("fine_tune_top", "C5", 10, "Quite a lot of data, similar to ImageNet: fine-tune the top few layers at about 1/10 of the learning rate."),
    (False, False): ("fine_tune_more", "C5", 40, "Quite a lot of data, different from ImageNet: fine-tune a larger number of layers (or the whole network) at a reduced learning rate."),
}


def recommend_strategy(num_examples, similarity, small_data_threshold=1000):
    """The seed's 2×2 transfer-learning advice.

    Args:
        num_examples: labelled training examples available.
        similarity: ``"similar"`` / ``"different"``, or a number in [0, 1]
            (>= 0.5 counts as similar to the pre-training data).
        small_data_threshold: below this many examples the data is "very
            little" (the seed gives no number; 1,000 is ~1 ImageNet class).

    Returns:
        dict with ``strategy``, ``tap`` (features to use), ``fine_tune_layers``
        (for ``fine_tune``; 0 means frozen), ``lr_multiplier`` and ``advice``.
    """
    if num_examples < 0:
        raise ValueError(f"`num_examples` must be >= 0, got {num_examples}.")
    if isinstance(similarity, str):
        if similarity not in ("similar", "different"):
            raise ValueError(f"`similarity` must be 'similar', 'different' or a number, got {similarity!r}.")
        similar = similarity == "similar"
    else:
        if not 0.0 <= float(similarity) <= 1.0:
            raise ValueError(f"`similarity` as a number must be in [0, 1], got {similarity}.")
        similar = float(similarity) >= 0.5
    strategy, tap, layers, advice = _TABLE[(num_examples < small_data_threshold, similar)]
    return {
        "strategy": strategy,
        "tap": tap,
        "fine_tune_layers": layers,
        "lr_multiplier": 0.1 if layers else 0.0,
        "advice": advice,
    }


@keras.saving.register_keras_serializable(package="keras_det")
class TransferClassifier(ConfigFromArguments, keras.Model):
    """Image classifier on a pretrained backbone: pooled tap features + linear softmax.

    Starts as a fixed feature extractor (the backbone frozen); call
    ``fine_tune(model.backbone, n)`` before ``compile`` to fine-tune its top
    layers at ``lr_multiplier`` × the learning rate.

    Args:
        num_classes: number of classes.
        backbone: a name from ``keras_det.backbones.BACKBONES`` or a Keras model.
        backbone_weights: ``"imagenet"``, ``None`` or a local weights file.
        input_shape: image shape ``(H, W, 3)``.
        tap: which backbone stage to pool (``"C5"``; ``"C4"``/``"C3"`` for
            the earlier-stage variant).
        dropout: dropout before the classifier.

    Call: float images ``[B, H, W, 3]`` in 0..255 → class probabilities ``[B, num_classes]``.
    """

    def __init__(self, num_classes, backbone="mobilenet_v2", backbone_weights=None, input_shape=(224, 224, 3), tap="C5", dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.image_shape = tuple(input_shape)
        self.tap = tap
        self.dropout_rate = float(dropout)
        self.backbone = freeze(build_backbone(backbone, backbone_weights, self.image_shape, taps=(tap,)))
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.dropout = keras.layers.Dropout(self.dropout_rate)
        self.classifier = keras.layers.Dense(self.num_classes, activation="softmax", name="classifier")

    def call(self, images, training=False):
        features = self.backbone(images, training=False)[self.tap]
        return self.classifier(self.dropout(self.pool(features), training=training))

    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=("accuracy",), **kwargs):
        optimizer = keras.optimizers.get(optimizer)
        with_lr_multipliers(optimizer, getattr(self.backbone, "lr_multipliers", {}))
        super().compile(optimizer=optimizer, loss=loss, metrics=list(metrics), **kwargs)

