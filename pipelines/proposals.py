"""``python -m pipelines.proposals`` from a checkout: runs `keras_det.beam.proposals` (see there)."""

from keras_det.beam.proposals import main

if __name__ == "__main__":
    main()
