"""The `diabetes` model as a BentoML service, for `make bench-peers` (BentoML 1.4 API).

Served with `bentoml serve bench_peers_bento:Diabetes` from build/peers/bentoml; one
`POST /predict` with `{"pregnant": 6, "glucose": 148, "pressure": 72}` answers like
ModelFleet's `POST /models/diabetes/predict` (label and probability of "pos"). The model is
fitted at start-up by bench_peers_model.train (the same fit as ModelFleet's, checked), so no
pickle is loaded.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np
from bench_peers_model import THRESHOLD, check, train


@bentoml.service(workers=int(os.environ.get("BENCH_PEERS_WORKERS", "1")))
class Diabetes:
    def __init__(self) -> None:
        self.model = train()
        check(self.model)
        self.positive = list(self.model.classes_).index("pos")

    @bentoml.api
    def predict(self, pregnant: float, glucose: float, pressure: float) -> dict:
        p = float(
            self.model.predict_proba(np.array([[pregnant, glucose, pressure]]))[0, self.positive]
        )
        return {"predictions": ["yes" if p >= THRESHOLD else "no"], "probabilities": [p]}
