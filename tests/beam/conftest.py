"""Session fixture: Beam's portable path (Job API + separate SDK worker processes).

``portable_runner`` starts ``local_job_service_main`` and ``worker_pool_main``
on free loopback ports with `keras_det.beam.portable.LocalPortable` (this Python's
directory first on PATH: the pool starts workers with the ``python`` it finds;
the checkout first on PYTHONPATH, `keras_det.beam.portable.worker_env`),
waits until both listen and stops them (their process groups, by pid) at the
end of the session. It yields the runner arguments. If they do not listen
within ``STARTUP_TIMEOUT`` seconds the tests fail with the services' logs.
"""

import pytest

from keras_det.beam.portable import STARTUP_TIMEOUT, LocalPortable


@pytest.fixture(scope="session")
def portable_runner(tmp_path_factory):
    services = LocalPortable(tmp_path_factory.mktemp("beam_services"), timeout=STARTUP_TIMEOUT)
    try:
        services.__enter__()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    yield services.args
    services.close()
