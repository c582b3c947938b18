"""An example of "your own model" for the README's "Serve your own model": fit, save, sample.

Writes into the current directory ``cancer.skops`` (a fitted Pipeline, saved with skops),
``cancer.csv`` (100 rows of its input with the target column ``diagnosis``: the sample the
packager derives ranges from and verifies against) and ``cancer-request.csv`` (3 other rows,
features only: a request body).
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
sample = X.assign(diagnosis=y).sample(100, random_state=0)
sample.to_csv("cancer.csv", index=False)
X.drop(sample.index).sample(3, random_state=4).to_csv("cancer-request.csv", index=False)
