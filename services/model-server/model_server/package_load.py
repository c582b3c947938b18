"""Loading the estimator to package: an object, a skops file, or a trusted pickle.

Also the scikit-learn version rule: a bundle is written only by the server's scikit-learn,
from an estimator saved by that same version (scikit-learn does not promise that an estimator
saved by one version predicts the same, or at all, in another).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import sklearn
import skops.io as sio
from sklearn.exceptions import InconsistentVersionWarning

from model_server.core.bundle import TRUSTED_TYPES
from model_server.package_derive import PackagingError, refuse_unservable_types

PICKLE_SUFFIXES: Final = (".joblib", ".pkl", ".pickle")
# The server image's lock, beside this package in the source tree (absent inside the image,
# where the running scikit-learn is the server's own).
SERVER_LOCK: Final = Path(__file__).resolve().parents[1] / "requirements.lock"


def stderr(line: str) -> None:
    """Print a warning line for the operator."""
    print(line, file=sys.stderr)


def server_sklearn_version() -> str:
    """The scikit-learn version the server runs: its image's lock, else the running one."""
    try:
        lines = SERVER_LOCK.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return str(sklearn.__version__)
    pins = [ln.split("==")[1].split()[0] for ln in lines if ln.startswith("scikit-learn==")]
    return pins[0] if pins else str(sklearn.__version__)


def check_server_version() -> None:
    """Refuse to write a bundle with another scikit-learn than the server's."""
    server = server_sklearn_version()
    if sklearn.__version__ != server:
        raise PackagingError(
            f"this packager runs scikit-learn {sklearn.__version__}; the server runs "
            f"scikit-learn {server}: package with {server} (make venv's environment)"
        )


def load_estimator(
    source: Any, trusted_types: tuple[str, ...], trust_pickle: bool, warn: Callable[[str], None]
) -> Any:
    """The estimator itself, from an object or a file (skops; pickle only when trusted)."""
    if not isinstance(source, str | Path):
        return source
    path = Path(source)
    if not path.is_file():
        raise PackagingError(f"no estimator file {path}")
    suffix = path.suffix.lower()
    if suffix == ".skops":
        data = path.read_bytes()
        try:
            types = sio.get_untrusted_types(data=data)
        except Exception as exc:  # a damaged or foreign file: say so in one line
            raise PackagingError(f"{path} is not a skops file: {exc}") from None
        # Refused before loading: loading would import (and run) the unknown classes' modules.
        refuse_unservable_types([t for t in types if t not in TRUSTED_TYPES], trusted_types)
        trusted = [*TRUSTED_TYPES, *trusted_types]
        return _version_checked(lambda: sio.loads(data, trusted=trusted), path)
    if suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise PackagingError(
                f"{path} is a pickle: loading it runs any code it contains; pass "
                "TRUST_PICKLE=1 if you trust the file (it is converted to skops)"
            )
        warn(
            f"warning: loading {path} with pickle runs any code in it (TRUST_PICKLE=1); "
            "the bundle stores it as skops"
        )
        import joblib  # reads joblib files and plain pickles alike

        return _version_checked(lambda: joblib.load(path), path)
    raise PackagingError(
        f"{path}: unknown estimator format {suffix or '(none)'}; use .skops "
        f"(or {', '.join(PICKLE_SUFFIXES)} with TRUST_PICKLE=1)"
    )


def _version_checked(load: Callable[[], Any], path: Path) -> Any:
    """``load()``, refusing an estimator saved by another scikit-learn than the server's."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        try:
            model = load()
        except Exception as exc:
            raise PackagingError(f"cannot load {path}: {type(exc).__name__}: {exc}") from None
    for w in caught:
        if isinstance(w.message, InconsistentVersionWarning):
            made = w.message.original_sklearn_version
            server = server_sklearn_version()
            raise PackagingError(
                f"{path} was made with scikit-learn {made}; the server runs scikit-learn "
                f"{server}: re-fit or re-save it with {server}"
            )
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model
