"""Entry points of the Beam pipelines for a checkout: ``python -m pipelines.predict`` from the
repository root runs `keras_det.beam.predict` (likewise ``evaluate``, ``proposals``).

Not installed (pyproject.toml packages only ``keras_det``); from an installed package run
``python -m keras_det.beam.predict`` and so on.
"""
