"""Beam's portable path on this machine: a local job service and an external SDK worker pool.

``with LocalPortable() as services: pipeline.run([..., *services.args])``
starts ``apache_beam.runners.portability.local_job_service_main`` (the Job
API; it runs the pipeline with Beam's ``FnApiRunner``) and
``apache_beam.runners.worker.worker_pool_main`` (starts one SDK worker
*process* per ``StartWorker`` request) on free loopback ports, waits until
both listen, and stops them (their process groups, by pid) on exit.
``services.args`` are the runner options of a pipeline run:
``--runner=PortableRunner --job_endpoint=... --environment_type=EXTERNAL
--environment_config=...``. ``tests/beam/conftest.py`` (fixture
``portable_runner``) and ``benchmarks/beam_scaling.py`` use it.

The pool starts each worker with the ``python`` it finds on ``PATH``: this
Python's directory is put first (`worker_env`), so the workers run this
interpreter and import ``keras_det`` from where this process does. An
installed ``keras_det`` (a wheel in site-packages) needs nothing more; one
imported from elsewhere (a checkout run with ``PYTHONPATH`` or from its root,
an editable install) has that folder put first on the workers' ``PYTHONPATH``
(`import_root`). The services and workers run in the caller's working
directory.

Parallelism: Beam 2.77's Python job service calls
``FnApiRunner.run_via_runner_api``, which keeps one worker (it reads
``--direct_num_workers`` only in ``FnApiRunner.run``), and
``--sdk_worker_parallelism`` is read by the Flink / Spark job servers only.
So every job here gets exactly one SDK worker process
(`worker_starts` counts them); several workers per job need Flink or Spark
(``--parallelism``, ``--sdk_worker_parallelism``) or Dataflow.
"""

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time

STARTUP_TIMEOUT = 90.0
# worker_pool_main logs this (WARNING) for every SDK worker process it starts.
WORKER_START_LINE = "Starting worker with command"


def free_port():
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_root():
    """The folder holding the ``keras_det`` package this process imported (a checkout's root, site-packages)."""
    import keras_det

    return os.path.dirname(os.path.dirname(os.path.abspath(keras_det.__file__)))


def _site_dirs():
    paths = sysconfig.get_paths()
    return {os.path.realpath(paths[key]) for key in ("purelib", "platlib") if paths.get(key)}


def worker_env(environ=None):
    """The environment of the job service, the worker pool and its SDK workers.

    ``environ`` (default ``os.environ``) with this Python's directory first on
    ``PATH`` and, unless it is this Python's site-packages, `import_root`
    first on ``PYTHONPATH`` (site-packages itself is not added: on
    ``PYTHONPATH`` it would come before the standard library).
    """
    environ = dict(os.environ if environ is None else environ)
    root = import_root()
    if os.path.realpath(root) not in _site_dirs():
        environ["PYTHONPATH"] = os.pathsep.join([root, environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), environ.get("PATH", "")])
    return environ


def _listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class LocalPortable:
    """Context manager: job service + worker pool on loopback ports.

    Args:
        log_dir: folder for ``job_service.log`` and ``worker_pool.log``.
        timeout: seconds to wait for both to listen; then `RuntimeError`
            with the tail of their logs.

    Attributes:
        args: the runner options (list of str).
        logs: ``{"job_service": path, "worker_pool": path}``.
    """

    def __init__(self, log_dir, timeout=STARTUP_TIMEOUT):
        self.log_dir = str(log_dir)
        self.timeout = float(timeout)
        self.procs = {}
        self.args = []
        self.logs = {}

    def __enter__(self):
        os.makedirs(self.log_dir, exist_ok=True)
        job_port, pool_port = free_port(), free_port()
        env = worker_env()
        commands = {
            "job_service": [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                            f"--port={job_port}"],
            "worker_pool": [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                            f"--service_port={pool_port}"],
        }
        for name, command in commands.items():
            self.logs[name] = os.path.join(self.log_dir, f"{name}.log")
            with open(self.logs[name], "wb") as log:
                self.procs[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True)
        try:
            deadline = time.time() + self.timeout
            pending = {"job_service": job_port, "worker_pool": pool_port}
            while pending:
                for name, port in list(pending.items()):
                    if self.procs[name].poll() is not None:
                        raise RuntimeError(f"{name} exited with code {self.procs[name].returncode}")
                    if _listening(port):
                        del pending[name]
                if pending and time.time() > deadline:
                    raise RuntimeError(f"{sorted(pending)} not listening after {self.timeout:.0f} s")
                time.sleep(0.25)
        except RuntimeError as error:
            self.close()
            tails = {name: self.tail(name) for name in commands}
            raise RuntimeError(f"Beam portable services did not start: {error}; logs: {tails}") from None
        self.args = ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}", "--environment_type=EXTERNAL",
                     f"--environment_config=localhost:{pool_port}"]
        return self

    def tail(self, name, chars=2000):
        with open(self.logs[name], errors="replace") as f:
            return f.read()[-chars:]

    def worker_starts(self):
        """SDK worker processes the pool has started so far (lines of its log)."""
        with open(self.logs["worker_pool"], errors="replace") as f:
            return sum(WORKER_START_LINE in line for line in f)

    def close(self):
        for proc in self.procs.values():
            _stop(proc)

    def __exit__(self, *exc):
        self.close()
        return False
