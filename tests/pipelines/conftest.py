"""Session fixture: Beam's portable path (Job API + separate SDK worker processes).

``portable_runner`` starts ``local_job_service_main`` and ``worker_pool_main``
on free loopback ports (PYTHONPATH at the repository root, this Python's
directory first on PATH: the pool starts workers with the ``python`` it finds),
waits until both listen and stops them (their process groups, by pid) at the
end of the session. It yields the runner arguments. If they do not listen
within ``STARTUP_TIMEOUT`` seconds the tests fail with the services' logs.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 90.0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="session")
def portable_runner(tmp_path_factory):
    logs = tmp_path_factory.mktemp("beam_services")
    job_port, pool_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    commands = {
        "job_service": [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", f"--port={job_port}"],
        "worker_pool": [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={pool_port}"],
    }
    procs = {}
    for name, command in commands.items():
        log = open(logs / f"{name}.log", "wb")
        procs[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + STARTUP_TIMEOUT
        pending = {"job_service": job_port, "worker_pool": pool_port}
        while pending:
            for name, port in list(pending.items()):
                if procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited with code {procs[name].returncode}")
                if _listening(port):
                    del pending[name]
            if pending and time.time() > deadline:
                raise RuntimeError(f"{sorted(pending)} not listening after {STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.25)
    except RuntimeError as error:
        for proc in procs.values():
            _stop(proc)
        tails = {name: (logs / f"{name}.log").read_text(errors="replace")[-2000:] for name in commands}
        pytest.fail(f"Beam portable services did not start: {error}; logs: {tails}", pytrace=False)
    yield ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}", "--environment_type=EXTERNAL",
           f"--environment_config=localhost:{pool_port}"]
    for proc in procs.values():
        _stop(proc)
