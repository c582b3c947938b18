"""An example of "your own model" for the README's "Serve your own model": fit, save, sample.

Writes ``cancer.skops`` (a fitted Pipeline, saved with skops) and ``cancer.csv`` (100 rows of
its input with the target column ``diagnosis``) into the current directory.
"""

import skops.io as sio
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
y = y.map({0: "malignant", 1: "benign"})
model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
sio.dump(model, "cancer.skops")
X.assign(diagnosis=y).sample(100, random_state=0).to_csv("cancer.csv", index=False)
