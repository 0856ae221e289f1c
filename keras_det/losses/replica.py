"""Normalisers that make a loss on ``R`` replicas equal the loss on one device.

Every loss of ``keras_det.losses`` divides by a count (positives, sampled
predictions, images); under ``tf.distribute`` the count is global
(``replica_normalizer``) and ``train_step`` scales each replica's loss by
``1 / R`` (``replica_mean_scale``).
"""

import tensorflow as tf


def replica_normalizer(count):
    """This replica's share of a normaliser counted over the global batch.

    Under ``tf.distribute`` each replica sees a slice of the batch; a loss
    normalised by this replica's own count of positives / sampled predictions
    weighs the replicas' examples unequally (and differently from one device).
    In a replica context of a strategy with ``R > 1`` replicas this all-reduces
    ``count`` (SUM over replicas) and returns ``max(global_count, 1) / R``:
    summing over replicas the per-replica losses divided by it, each scaled by
    ``1 / R`` in ``train_step``, gives the one-device loss of the global batch.
    Otherwise (no strategy, one replica, cross-replica context) it returns
    ``max(count, 1)``.

    Args:
        count: scalar (int or float), this replica's count.

    Returns:
        float32 scalar.
    """
    count = tf.stop_gradient(tf.cast(count, tf.float32))
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return tf.maximum(count, 1.0)
    total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, count)
    return tf.maximum(total, 1.0) / float(ctx.num_replicas_in_sync)


def replica_mean_scale(loss):
    """``loss / R`` under a strategy with ``R`` replicas in sync (Keras' own
    ``scale_loss_for_distribution`` rule), ``loss`` otherwise: the optimizer
    sums the replicas' gradients."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = loss * tf.cast(1.0 / replicas, loss.dtype)
    return loss
