"""Config plumbing shared by every keras_det model."""

import inspect

from keras_det.ops.image import image_hw

# What a trained model remembers about its data, beyond its constructor
# arguments: set by `keras-det train` (or by hand) as attributes and saved in
# the config, so that `.keras` files carry them.
#   image_size: (height, width) the model was trained at.
#   class_names: tuple of str, class_names[i] names label i.
REMEMBERED = ("image_size", "class_names")


def remember(model, image_size=None, class_names=None):
    """Sets ``model.image_size`` (``(height, width)``) and ``model.class_names`` (tuple of str).

    Both are saved by ``get_config`` and restored by ``from_config``, so they
    survive ``model.save(...)`` / ``keras.saving.load_model``. ``None``
    leaves an attribute unchanged.

    Raises:
        ValueError: an image size that is not one or two positive ints, or
            class names that do not match ``model.num_classes``.
    """
    if image_size is not None:
        model.image_size = image_hw(image_size)
    if class_names is not None:
        names = tuple(str(n) for n in class_names)
        num_classes = getattr(model, "num_classes", None)
        if num_classes is not None and len(names) != int(num_classes):
            raise ValueError(f"{len(names)} class names {names} for a model of {num_classes} classes.")
        model.class_names = names
    return model


def _constructor_arguments(cls):
    return set(inspect.signature(cls.__init__).parameters)


class ConfigFromArguments:
    """``get_config`` for models whose config is their constructor arguments.

    A model sets ``self.backbone_name`` (the backbone's name, ``None`` for a
    custom ``keras.Model``) and ``self.config_args`` (its arguments, with
    ``backbone_weights`` None: weights come back from the saved file, never
    from a re-download). ``image_size`` and ``class_names`` (`REMEMBERED`,
    set with `remember`) are saved too and restored as attributes.
    """

    def get_config(self):
        if self.backbone_name is None:
            raise NotImplementedError(
                f"A {type(self).__name__} on a custom keras.Model backbone is not serializable by config."
            )
        config = {**self.config_args, "name": self.name}
        for key in REMEMBERED:
            value = getattr(self, key, None)
            if key not in config and value is not None:
                config[key] = list(value)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        arguments = _constructor_arguments(cls)
        remembered = {k: config.pop(k) for k in REMEMBERED if k in config and k not in arguments}
        model = cls(**config)
        return remember(model, **remembered)
