"""``python -m pipelines.predict`` from a checkout: runs `keras_det.beam.predict` (see there)."""

from keras_det.beam.predict import main

if __name__ == "__main__":
    main()
