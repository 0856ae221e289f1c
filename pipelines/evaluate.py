"""``python -m pipelines.evaluate`` from a checkout: runs `keras_det.beam.evaluate` (see there)."""

from keras_det.beam.evaluate import main

if __name__ == "__main__":
    main()
