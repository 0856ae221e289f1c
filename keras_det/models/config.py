"""Config plumbing shared by every keras_det model."""


class ConfigFromArguments:
    """``get_config`` for models whose config is their constructor arguments.

    A model sets ``self.backbone_name`` (the backbone's name, ``None`` for a
    custom ``keras.Model``) and ``self.config_args`` (its arguments, with
    ``backbone_weights`` None: weights come back from the saved file, never
    from a re-download).
    """

    def get_config(self):
        if self.backbone_name is None:
            raise NotImplementedError(
                f"A {type(self).__name__} on a custom keras.Model backbone is not serializable by config."
            )
        return {**self.config_args, "name": self.name}
