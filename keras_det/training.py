"""Training beyond one float32 device: mixed precision and ``tf.distribute`` strategies.

``set_mixed_precision(policy)`` sets Keras' global dtype policy; build the
model after calling it (layers take the policy current at construction):

* ``"mixed_bfloat16"`` (CPUs, TPUs): bfloat16 compute, float32 variables, no
  loss scaling needed.
* ``"mixed_float16"`` (GPUs): float16 compute; ``compile()`` wraps the
  optimizer in ``keras.optimizers.LossScaleOptimizer`` (Keras'
  ``auto_scale_loss``) and ``Detector.train_step`` multiplies the loss by its
  scale (``optimizer.scale_loss``) before the gradients, which
  ``apply_gradients`` divides back and skips when not finite.
* ``"float32"``: the default.

Losses are computed in float32 (``keras_det.losses`` casts their inputs), the
detection outputs and the serving signatures stay float32.
"""

import os

import keras
import tensorflow as tf

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def set_mixed_precision(policy):
    """Sets the global Keras dtype policy used by models built afterwards.

    Args:
        policy: one of ``"float32"``, ``"mixed_float16"``, ``"mixed_bfloat16"``
            (``None`` means ``"float32"``).

    Returns:
        The policy name set.

    Raises:
        ValueError: ``policy`` is not one of those names.
    """
    policy = "float32" if policy is None else policy
    if policy not in POLICIES:
        raise ValueError(f"`policy` must be one of {POLICIES}, got {policy!r}.")
    keras.config.set_dtype_policy(policy)
    return policy


STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name="default"):
    """A ``tf.distribute`` strategy by name.

    Args:
        name: ``"default"`` (one device, no distribution), ``"mirrored"``
            (all local GPUs, or the CPU: ``MirroredStrategy``) or
            ``"multi_worker"`` (``MultiWorkerMirroredStrategy``; the cluster
            comes from the ``TF_CONFIG`` environment variable).

    Raises:
        ValueError: ``name`` is not one of those.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"`strategy` must be one of {STRATEGIES}, got {name!r}.")


def split_cpu(num_devices):
    """Splits this process's CPU into ``num_devices`` logical devices.

    On a machine without GPUs ``MirroredStrategy`` finds one device (the
    CPU) and trains on one replica; after ``split_cpu(2)`` it finds
    ``/device:CPU:0`` and ``/device:CPU:1`` and mirrors over both (the
    devices share the cores: useful to check a multi-replica run before
    going to GPUs, not to go faster). Must run before TensorFlow initialises
    its runtime (the first op, dataset or model in the process).
    ``keras-det train --cpu-devices N`` (or ``KERAS_DET_CPU_DEVICES=N``) calls it.

    Args:
        num_devices: positive int; 1 leaves the CPU as it is.

    Returns:
        The number of logical CPU devices.

    Raises:
        ValueError: ``num_devices`` is not a positive integer.
        RuntimeError: TensorFlow's runtime is already initialised with
            another device configuration.
    """
    if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
        raise ValueError(f"`num_devices` must be a positive integer, got {num_devices!r}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if len(current or [None]) == num_devices:
        return num_devices
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        raise RuntimeError(
            f"cannot split the CPU into {num_devices} logical devices: TensorFlow is already initialised in this "
            f"process with {have}; call split_cpu before any TensorFlow op, dataset or model"
        ) from None
    return num_devices


def is_chief(strategy):
    """True unless ``strategy`` runs on a cluster where this task is not the chief
    (``chief``, or worker 0 of a cluster without one): only the chief writes outputs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict())


def fit_distributed(model, dataset, strategy, epochs=1, steps_per_epoch=None, checkpoint_dir=None):
    """Trains ``model`` with ``strategy.run(model.train_step)`` in a ``tf.function`` loop.

    The loop ``model.fit`` would run, for strategies where Keras 3.15's
    ``fit`` fails: under ``MultiWorkerMirroredStrategy`` it raises "Attempt to
    convert a value (PerReplica...) with an unsupported type"
    (keras-team/keras#20585). Remove this loop for ``fit`` once that is fixed.

    ``model`` must be built and compiled inside ``strategy.scope()``.
    ``dataset`` yields global batches of the data contract (each worker builds
    the same dataset; ``tf.distribute`` splits every batch across the
    replicas). With ``checkpoint_dir`` the model and optimizer are saved after
    every epoch and restored at the start: a restarted run continues from the
    last saved step (the first ``step`` batches of ``dataset.repeat()`` are
    skipped, so the data order continues too). On a multi-worker cluster only
    the chief writes to ``checkpoint_dir``; the other workers write to
    ``checkpoint_dir/worker_<id>`` (a checkpoint is a collective operation)
    and delete it at the end.

    Args:
        model: a compiled ``keras_det`` model (any ``keras.Model`` with a
            ``train_step`` returning a dict of scalars).
        dataset: ``tf.data.Dataset`` of global batches.
        strategy: a ``tf.distribute.Strategy`` (see ``make_strategy``).
        epochs: number of epochs.
        steps_per_epoch: steps per epoch (required: the dataset is repeated).
        checkpoint_dir: directory for ``tf.train.CheckpointManager``, or None.

    Returns:
        list with one dict of floats (the last step's logs) per epoch run.
    """
    if not steps_per_epoch or steps_per_epoch < 1:
        raise ValueError(f"`steps_per_epoch` must be a positive integer, got {steps_per_epoch!r}.")
    if epochs < 1:
        raise ValueError(f"`epochs` must be >= 1, got {epochs!r}.")
    if getattr(model, "optimizer", None) is None:
        raise ValueError("`model` must be compiled (inside strategy.scope()) before fit_distributed.")
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    manager, scratch = None, None
    if checkpoint_dir is not None:
        directory = checkpoint_dir
        if not is_chief(strategy):
            scratch = directory = os.path.join(checkpoint_dir, f"worker_{strategy.cluster_resolver.task_id}")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=2)
        if manager.latest_checkpoint:
            checkpoint.restore(manager.latest_checkpoint)
    done = int(model.optimizer.iterations.numpy())
    first_epoch = done // steps_per_epoch
    data = iter(strategy.experimental_distribute_dataset(dataset.repeat().skip(done)))

    @tf.function
    def step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in logs.items()}

    history = []
    for _ in range(first_epoch, epochs):
        for _ in range(steps_per_epoch):
            logs = step(next(data))
        history.append({k: float(v) for k, v in logs.items()})
        if manager is not None:
            manager.save(checkpoint_number=model.optimizer.iterations)
    if scratch is not None:
        tf.io.gfile.rmtree(scratch)
    return history


def use_strategy(name="default", mixed_precision=None, strategy=None):
    """Sets the dtype policy and makes the named strategy the default one.

    Models built afterwards get the policy (``set_mixed_precision``) and have
    their variables placed by the strategy (``tf.distribute.experimental_set_strategy``:
    the same as building inside ``strategy.scope()``). ``keras-det train
    --strategy NAME --mixed-precision POLICY`` calls it.

    Args:
        name: see `make_strategy`.
        mixed_precision: see `set_mixed_precision`.
        strategy: an already created strategy of kind ``name`` to use instead
            of a new one: ``MultiWorkerMirroredStrategy`` must be created at
            program start, before any TensorFlow op ("Collective ops must be
            configured at program startup"), so ``keras-det train`` creates it
            first and passes it here after loading the data.

    Returns:
        the strategy.
    """
    set_mixed_precision(mixed_precision)
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}, got {name!r}.")
    tf.distribute.experimental_set_strategy(None)  # a strategy set by an earlier call is undone
    strategy = strategy if strategy is not None else make_strategy(name)
    if name != "default":
        tf.distribute.experimental_set_strategy(strategy)
    return strategy
