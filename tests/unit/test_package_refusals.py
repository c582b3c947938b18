"""What the packager refuses (issue 10): one clear line, exit status 2, nothing written.

Every test runs the command line (``python -m model_server.package``, what ``make
model-package`` runs) and checks the whole of stderr: one line, no traceback, and a repository
with nothing new in it, not even a temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn.base
import skops.io as sio
from model_server import package as package_module
from model_server import package_load
from model_server.package import PackagingError, package
from model_server.package_cli import main
from model_server.package_derive import refuse_unservable_types
from model_server.repository import INDEX_FILE
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from tests.unit.package_helpers import (
    cancer,
    diabetes_regression,
    sample_csv,
    save_skops,
    write_csv,
)


class Doubler(TransformerMixin, BaseEstimator):
    """A custom transformer: the server image cannot import it."""

    def fit(self, x: Any, y: Any = None) -> Doubler:
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def transform(self, x: Any) -> Any:
        return np.asarray(x) * 2


@pytest.fixture
def regression(tmp_path: Path) -> dict[str, Path]:
    """A fitted LinearRegression as skops, its sample, a repository with one model in it."""
    x, y, names = diabetes_regression()
    est = save_skops(LinearRegression().fit(x, y), tmp_path / "m.skops")
    sample = sample_csv(tmp_path, x, names, y)
    repo = tmp_path / "repo"
    assert main(args(est, sample, repo, version="0.1")) == 0
    return {"est": est, "sample": sample, "repo": repo}


def args(
    est: Path, sample: Path, repo: Path, *extra: str, name: str = "sugar", version: str = "1"
) -> list[str]:
    return [
        "--estimator", str(est), "--sample", str(sample), "--repository", str(repo),
        "--name", name, "--version", version, "--target", "y", *extra,
    ]  # fmt: skip


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], repo: Path) -> str:
    """Run the command, expect a refusal; return its one line (without the program name)."""
    capsys.readouterr()
    before = snapshot(repo)
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.startswith("warning: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("model-package: ")
    assert snapshot(repo) == before, "a refusal changed the repository"
    return lines[0].removeprefix("model-package: ")


def snapshot(repo: Path) -> dict[str, bytes]:
    if not repo.exists():
        return {}
    return {
        str(p.relative_to(repo)): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file() and p.name != ".index.lock"
    } | {str(p.relative_to(repo)): b"" for p in repo.rglob("*") if p.is_dir()}


def test_a_file_that_is_not_an_estimator(
    regression: dict[str, Path], capsys: Any, tmp_path: Path
) -> None:
    est = tmp_path / "list.skops"
    sio.dump([1, 2, 3], est)
    line = refused(capsys, args(est, regression["sample"], regression["repo"]), regression["repo"])
    assert line == "not a scikit-learn estimator: builtins.list"


def test_an_estimator_that_is_not_fitted(
    regression: dict[str, Path], capsys: Any, tmp_path: Path
) -> None:
    est = save_skops(LogisticRegression(), tmp_path / "unfitted.skops")
    line = refused(capsys, args(est, regression["sample"], regression["repo"]), regression["repo"])
    assert line == "the LogisticRegression is not fitted: call fit() first"


def test_a_sample_missing_a_feature(
    regression: dict[str, Path], capsys: Any, tmp_path: Path
) -> None:
    _, _, names = diabetes_regression()
    short = write_csv(tmp_path / "short.csv", [*names[:-1], "y"], [[1.0] * 10])
    line = refused(capsys, args(regression["est"], short, regression["repo"]), regression["repo"])
    assert line.startswith(
        "the estimator takes 10 features and has no feature names; the sample has 9"
    )


def test_a_sample_missing_a_named_feature(capsys: Any, tmp_path: Path) -> None:
    x, y, names = cancer()
    import pandas as pd

    frame = pd.DataFrame(x, columns=names)
    est = save_skops(
        make_pipeline(LogisticRegression(max_iter=5000)).fit(frame.iloc[:, :3], y),
        tmp_path / "m.skops",
    )
    sample = write_csv(tmp_path / "s.csv", [names[0], names[2], "y"], [[1.0, 2.0, "benign"]])
    line = refused(capsys, args(est, sample, tmp_path / "repo"), tmp_path / "repo")
    assert line == f"sample s.csv is missing the feature {names[1]!r}"


@pytest.mark.parametrize("cell", ["", "nan", "NaN", "NA", "inf"])
def test_a_sample_with_a_missing_or_non_finite_value(
    regression: dict[str, Path], capsys: Any, tmp_path: Path, cell: str
) -> None:
    x, y, names = diabetes_regression()
    rows: list[list[Any]] = [[float(v) for v in x[i]] + [float(y[i])] for i in range(3)]
    rows[2][4] = cell
    sample = write_csv(tmp_path / "nan.csv", [*names, "y"], rows)
    line = refused(capsys, args(regression["est"], sample, regression["repo"]), regression["repo"])
    assert f"feature {names[4]!r}" in line
    assert ("missing" in line and "row 2" in line) or "NaN or infinite" in line


@pytest.mark.parametrize(
    ("name", "version"), [("../evil", "1"), ("a/b", "1"), ("ok", "../1"), ("ok", ".x")]
)
def test_a_name_or_version_with_path_characters(
    regression: dict[str, Path], capsys: Any, name: str, version: str
) -> None:
    argv = args(
        regression["est"], regression["sample"], regression["repo"], name=name, version=version
    )
    line = refused(capsys, argv, regression["repo"])
    assert "is not a plain name" in line and "no path characters" in line


def test_a_version_that_exists_unless_forced(regression: dict[str, Path], capsys: Any) -> None:
    argv = args(regression["est"], regression["sample"], regression["repo"], version="0.1")
    assert (
        refused(capsys, argv, regression["repo"])
        == "sugar 0.1 exists already (FORCE=1 replaces it)"
    )
    assert main([*argv, "--force"]) == 0


class XGBClassifier(ClassifierMixin, BaseEstimator):
    """What xgboost's scikit-learn wrapper looks like (xgboost is not installed here)."""


XGBClassifier.__module__ = "xgboost.sklearn"


def test_xgboost_and_lightgbm_objects(regression: dict[str, Path]) -> None:
    with pytest.raises(PackagingError) as info:
        package(XGBClassifier(), regression["sample"], "xgb", "1", repository=regression["repo"])
    assert str(info.value) == (
        "XGBoost objects are not supported (xgboost.sklearn.XGBClassifier): "
        "the server runs only scikit-learn"
    )
    # A nested one (in a pipeline) is named by the artifact's types.
    with pytest.raises(
        PackagingError, match=r"^LightGBM objects are not supported \(lightgbm\.Booster\)"
    ):
        refuse_unservable_types(["sklearn.pipeline.Pipeline", "lightgbm.Booster"], ())


def test_a_custom_transformer_class(
    regression: dict[str, Path], capsys: Any, tmp_path: Path
) -> None:
    x, y, _ = diabetes_regression()
    joblib.dump(make_pipeline(Doubler(), LinearRegression()).fit(x, y), tmp_path / "custom.pkl")
    argv = args(tmp_path / "custom.pkl", regression["sample"], regression["repo"], "--trust-pickle")
    line = refused(capsys, argv, regression["repo"])
    assert line.startswith(f"custom classes are not supported: {__name__}.Doubler (the server")


def test_a_pickle_without_trust(regression: dict[str, Path], capsys: Any, tmp_path: Path) -> None:
    x, y, _ = diabetes_regression()
    joblib.dump(LinearRegression().fit(x, y), tmp_path / "m.joblib")
    line = refused(
        capsys,
        args(tmp_path / "m.joblib", regression["sample"], regression["repo"]),
        regression["repo"],
    )
    assert (
        line.startswith("m.joblib is a pickle: loading it runs any code") or "is a pickle" in line
    )
    assert "TRUST_PICKLE=1" in line


def test_a_type_outside_the_allow_list_is_named(capsys: Any, tmp_path: Path) -> None:
    x, y, names = cancer()
    model = CalibratedClassifierCV(LinearSVC(max_iter=200), ensemble=False).fit(x, y)
    est = save_skops(model, tmp_path / "h.skops")
    sample = sample_csv(tmp_path, x, names, y)
    line = refused(
        capsys, args(est, sample, tmp_path / "repo", "--threshold", "0.5"), tmp_path / "repo"
    )
    assert line.startswith(
        "the artifact contains types outside the server's allow-list: "
        "sklearn.calibration._CalibratedClassifier, sklearn.calibration._SigmoidCalibration; "
        "review them and pass TRUST_TYPES="
    )


def test_an_estimator_saved_by_another_scikit_learn(
    regression: dict[str, Path], capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y, _ = diabetes_regression()
    monkeypatch.setattr(sklearn.base, "__version__", "1.5.2")  # what __getstate__ records
    joblib.dump(LinearRegression().fit(x, y), tmp_path / "old.joblib")
    monkeypatch.undo()
    argv = args(tmp_path / "old.joblib", regression["sample"], regression["repo"], "--trust-pickle")
    line = refused(capsys, argv, regression["repo"])
    server = package_load.server_sklearn_version()
    assert line == (
        f"{tmp_path / 'old.joblib'} was made with scikit-learn 1.5.2; the server runs "
        f"scikit-learn {server}: re-fit or re-save it with {server}"
    )


def test_a_packager_with_another_scikit_learn_than_the_server(
    regression: dict[str, Path], capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.4.6 \\\nscikit-learn==1.4.0 \\\n    --hash=sha256:00\n")
    monkeypatch.setattr(package_load, "SERVER_LOCK", lock)
    line = refused(
        capsys,
        args(regression["est"], regression["sample"], regression["repo"]),
        regression["repo"],
    )
    assert line == (
        f"this packager runs scikit-learn {sklearn.__version__}; the server runs scikit-learn "
        "1.4.0: package with 1.4.0 (make venv's environment)"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--threshold", "0.5"], "THRESHOLD applies to classifiers only"),
        (["--ranges", "age=1:0"], "RANGES: age='1:0' is not min:max with min <= max"),
        (["--ranges", "nope=0:1"], "RANGES names 'nope', which is not a feature"),
        (["--ranges", "age=0:0.01"], "RANGES: age [0, 0.01] does not hold the sample's values"),
        (["--margin", "-1"], "MARGIN -1.0 is not between 0 and 100"),
        (["--answers", "x"], "ANSWERS: expected name=value[,name=value...], got 'x'"),
    ],
)
def test_settings_that_do_not_fit_the_model(
    regression: dict[str, Path], capsys: Any, extra: list[str], message: str
) -> None:
    argv = args(regression["est"], regression["sample"], regression["repo"], *extra)
    assert refused(capsys, argv, regression["repo"]).startswith(message)


def test_an_unknown_file_format_and_a_missing_file(
    regression: dict[str, Path], capsys: Any, tmp_path: Path
) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    line = refused(
        capsys,
        args(tmp_path / "m.onnx", regression["sample"], regression["repo"]),
        regression["repo"],
    )
    assert line.endswith(
        "unknown estimator format .onnx; use .skops (or .joblib, .pkl, .pickle with TRUST_PICKLE=1)"
    )
    line = refused(
        capsys,
        args(tmp_path / "absent.skops", regression["sample"], regression["repo"]),
        regression["repo"],
    )
    assert line == f"no estimator file {tmp_path / 'absent.skops'}"


def test_ctrl_c_during_verification_leaves_nothing(
    regression: dict[str, Path], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(package_module, "verify", interrupted)
    before = snapshot(regression["repo"])
    argv = args(regression["est"], regression["sample"], regression["repo"], version="2")
    assert main(argv) == 130
    assert capsys.readouterr().err == "model-package: interrupted; nothing was written\n"
    assert snapshot(regression["repo"]) == before
    assert (regression["repo"] / INDEX_FILE).is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "nope"}, "sample sample.csv has no target column 'nope'"),
        ({"answers": {"benign": "no"}}, "ANSWERS must map every class, exactly: benign, malignant"),
        (
            {"threshold": 0.5, "positive_class": "x"},
            "POSITIVE 'x' is not a class: benign, malignant",
        ),
        ({"description": ""}, None),  # an empty description falls back to the derived one
    ],
)
def test_classifier_settings_that_do_not_fit(
    tmp_path: Path, change: dict[str, Any], message: str | None
) -> None:
    x, y, names = cancer()
    model = make_pipeline(LogisticRegression(max_iter=5000)).fit(x, y)
    options: dict[str, Any] = {"target": "y", "threshold": 0.5, **change}
    sample = sample_csv(tmp_path, x, names, y)
    if message is None:
        done = package(model, sample, "c", "1", repository=tmp_path / "r", **options)
        assert done.manifest.description == "Pipeline packaged from a Python object."
        return
    with pytest.raises(PackagingError) as info:
        package(model, sample, "c", "1", repository=tmp_path / "r", **options)
    assert str(info.value) == message
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").glob("*/*"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"a,b\n\xff,1\n", "sample s.csv: not a UTF-8 CSV file"),
        (b"a,b\n", "sample s.csv: expected a header line and at least one row"),
        (b"a,a\n1,2\n", "sample s.csv: the header names a column more than once"),
        (b"a,b\n1,2,3\n", "sample s.csv: row 0 has 3 cells; the header has 2"),
    ],
)
def test_a_sample_that_is_not_a_table(tmp_path: Path, raw: bytes, message: str) -> None:
    (tmp_path / "s.csv").write_bytes(raw)
    model = LinearRegression().fit([[1.0, 2.0], [2.0, 1.0]], [1.0, 2.0])
    with pytest.raises(PackagingError, match=f"^{message}"):
        package(model, tmp_path / "s.csv", "m", "1", repository=tmp_path / "r")
    with pytest.raises(PackagingError, match=r"^cannot read the sample"):
        package(model, tmp_path / "absent.csv", "m", "1", repository=tmp_path / "r")


def test_a_transformer_or_clusterer_is_not_servable(tmp_path: Path) -> None:
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit([[1.0], [2.0]])
    with pytest.raises(PackagingError, match=r"^StandardScaler has no predict\(\): nothing to"):
        package(scaler, tmp_path / "s.csv", "m", "1", repository=tmp_path / "r")
    kmeans = KMeans(n_clusters=2, n_init=1, random_state=0).fit([[1.0], [2.0], [3.0]])
    with pytest.raises(PackagingError, match=r"^KMeans is neither a classifier nor a regressor"):
        package(kmeans, tmp_path / "s.csv", "m", "1", repository=tmp_path / "r")


def test_a_damaged_skops_file(tmp_path: Path) -> None:
    (tmp_path / "m.skops").write_bytes(b"not a zip")
    with pytest.raises(PackagingError, match=r"m.skops is not a skops file: "):
        package(tmp_path / "m.skops", tmp_path / "s.csv", "m", "1", repository=tmp_path / "r")


def test_string_feature_derivation_rules() -> None:
    from model_server.package_derive import derive_features, read_sample

    sample = read_sample("s.csv", b"colour,size\nred,1\nblue,2\n")
    colour, size = derive_features(["colour", "size"], sample, {}, 0.5, {})
    assert colour.allowed == ("blue", "red")  # no encoder: the sample's values, sorted
    assert (size.type, size.min, size.max) == ("integer", 0.0, 3.0)
    with pytest.raises(PackagingError, match=r"^RANGES: 'colour' is a string feature"):
        derive_features(["colour"], sample, {}, 0.5, {"colour": (0, 1)})
    with pytest.raises(PackagingError, match="has 'red', which its fitted encoder does not know"):
        derive_features(["colour"], sample, {"colour": ["blue", "green"]}, 0.5, {})
