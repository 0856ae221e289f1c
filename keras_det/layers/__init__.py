"""Keras layers wrapping ``keras_det.ops`` (all serializable)."""
