"""Config plumbing shared by every keras_det model."""

import inspect

import numpy as np

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


def _plain(value):
    """``value`` with numpy scalars as Python numbers and tuples/lists kept (a JSON-able config value)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class ConfigFromArguments:
    """``get_config`` for models whose config is their constructor arguments.

    The arguments are recorded once, when the model is constructed (``__new__``
    binds them to the outermost ``__init__``'s signature, defaults applied
    and ``**kwargs`` expanded), so no model spells its arguments a second
    time. Keras 3 keeps a similar record (``Operation._auto_config``), but it
    is private and drops itself for non-primitive values; this one is ours
    and is what `get_config` returns.

    A model sets ``self.backbone_name`` (the backbone's name, ``None`` for a
    custom ``keras.Model``, which is not serializable by config). The saved
    ``backbone_weights`` is always None: weights come back from the saved
    file, never from a re-download. ``image_size`` and ``class_names``
    (`REMEMBERED`, set with `remember`) are saved too and restored as
    attributes. State a model changes after construction (R-CNN's ``stage``)
    is added by that model's ``get_config``.
    """

    def __new__(cls, *args, **kwargs):
        instance = super().__new__(cls, *args, **kwargs)
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind(None, *args, **kwargs)
        except TypeError:
            return instance  # __init__ raises Python's own error for these arguments
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop(next(iter(signature.parameters)))  # self
        for name, parameter in signature.parameters.items():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(arguments.pop(name, {}))
            elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                raise TypeError(f"{cls.__name__} takes *{name}: its arguments cannot be saved in a config.")
        arguments.pop("name", None)  # get_config adds the model's name
        # Not through the Layer's __setattr__: a plain record, not tracked state.
        object.__setattr__(instance, "_constructor_config", _plain(arguments))
        return instance

    def get_config(self):
        if self.backbone_name is None:
            raise NotImplementedError(
                f"A {type(self).__name__} on a custom keras.Model backbone is not serializable by config."
            )
        config = {**self._constructor_config, "name": self.name}
        if "backbone_weights" in config:
            config["backbone_weights"] = None
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
