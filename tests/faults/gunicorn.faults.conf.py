"""The served image's gunicorn configuration, and faults injected into the versions that
``MODELFLEET_FAULTS`` names (tests/faults/faults.py): the test image's only difference."""

import os
import runpy

globals().update(runpy.run_path("/app/gunicorn.conf.py"))

import faults  # noqa: E402

_faults = faults.parse(os.environ.get("MODELFLEET_FAULTS", ""))
_post_worker_init = post_worker_init  # noqa: F821 (defined by the served configuration)


def post_worker_init(worker: object) -> None:
    """The served hook, then the faults: after the models loaded, so they load faultless."""
    _post_worker_init(worker)
    faults.install(_faults)
