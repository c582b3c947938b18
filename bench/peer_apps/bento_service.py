"""The `diabetes` model as a BentoML service, for `make bench-peers` (BentoML 1.4 API).

Served with `bentoml serve bento_service:Diabetes` from bench/peer_apps in build/peers/bentoml;
one `POST /predict` with one JSON record of the model's features answers like ModelFleet's
`POST /models/diabetes/predict` (label and probability of the positive class). The model is
fitted at start-up by peer_model.train (the same fit as ModelFleet's, checked), so no pickle is
loaded.

BentoML derives its request schema from the method's signature, so the parameters are written
out; at start-up they are checked against the manifest's features, and the service refuses to
start when the model's features differ.
"""

from __future__ import annotations

import inspect
import os

import bentoml
import numpy as np
from peer_model import FEATURES, POSITIVE, THRESHOLD, check, train


@bentoml.service(workers=int(os.environ.get("BENCH_PEERS_WORKERS", "1")))
class Diabetes:
    def __init__(self) -> None:
        if self.parameters != FEATURES:
            raise SystemExit(
                f"bento_service: predict takes {self.parameters}; the model's features are "
                f"{FEATURES}"
            )
        self.model = train()
        check(self.model)
        self.positive = list(self.model.classes_).index(POSITIVE)

    def predict(self, pregnant: float, glucose: float, pressure: float) -> dict:
        p = float(
            self.model.predict_proba(np.array([[pregnant, glucose, pressure]]))[0, self.positive]
        )
        return {"predictions": ["yes" if p >= THRESHOLD else "no"], "probabilities": [p]}

    parameters = tuple(inspect.signature(predict).parameters)[1:]
    predict = bentoml.api(predict)
