"""One worker of the multi-worker test (``python -m tests.multi_worker_step OUT [CKPT]``).

With ``TF_CONFIG`` set it trains under ``MultiWorkerMirroredStrategy``,
without it on one device; 3 SGD steps of ``fit_distributed`` on global batches
of 2, then writes the trainable weights, the replica count and the optimizer's
step count to ``OUT`` (``.npz``).
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from keras_det.training import fit_distributed, make_strategy
from tests.models.replica_step import MeanBoxDetector
from tests.models.synthetic import rectangles


def build(strategy):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = MeanBoxDetector()
        model(np.zeros((1, 64, 64, 3), np.float32))
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    return model


def dataset():
    batch = rectangles(num_images=6, size=64, num_classes=2, seed=5)
    return tf.data.Dataset.from_tensor_slices(batch).batch(2)


def main(out, checkpoint_dir=None, epochs=3):
    import os

    strategy = make_strategy("multi_worker" if "TF_CONFIG" in os.environ else "default")
    model = build(strategy)
    fit_distributed(model, dataset(), strategy, epochs=int(epochs), steps_per_epoch=1, checkpoint_dir=checkpoint_dir)
    np.savez(out, *[v.numpy() for v in model.trainable_variables], replicas=strategy.num_replicas_in_sync,
             steps=int(model.optimizer.iterations.numpy()))


if __name__ == "__main__":
    main(*sys.argv[1:])
