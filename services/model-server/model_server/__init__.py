"""ModelFleet model server: scikit-learn models behind several HTTP protocols.

The package is split in two layers:

* ``model_server.core`` — bundles, the model registry, request parsing and prediction.
  It imports no web framework, so it can be tested and reused on its own.
* ``model_server.api`` — one thin Flask blueprint per protocol (plumber, JSON, SageMaker,
  MLflow, Open Inference Protocol v2, health), each translating HTTP to core calls.

``model_server.app.create_app`` wires the two together from a ``Settings`` object.
"""

from model_server import blas

# Before any module of the package imports numpy (model_server/blas.py).
blas.pin()

__version__ = "1.0.0"
