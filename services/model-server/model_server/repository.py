"""The model repository on disk: ``<repo>/<name>/<version>/`` bundles and ``<repo>/index.json``.

Layout (issue 10)::

    <repo>/
      index.json                 {"index_version": 1, "models": {"<name>": {"current": "<version>",
                                   "versions": {"<version>": {"sha256": "<artifact sha256>",
                                   "manifest_sha256": "<sha256 of manifest.json bytes>"}}}}}
      <name>/<version>/manifest.json, model.skops

This module is the one reader and writer of ``index.json``: the packager adds versions, a
rollout moves ``current``, the server's registry reads it. It imports nothing from the web
layer, so the prediction core may use it.

Why the index is written the way it is:

* Atomically (a temporary file in the same directory, ``fsync``, ``os.replace``): a replica that
  starts while an operator packages a model reads the old index or the new one, never half.
* Pretty and with sorted keys: the file is meant to be reviewed and diffed by people (it is
  what decides what is served), and sorted keys keep a diff to the lines that changed.
* Under an advisory lock (``.index.lock``, ``fcntl.flock``): two packagers running at once
  would otherwise each read the old index and the second write would drop the first's version.

A bundle directory is written whole or not at all: ``staging`` gives a temporary directory
inside the repository (same file system, so ``rename`` is atomic) that is removed on any error,
Ctrl-C included, and ``publish`` renames it into place before the index names it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

INDEX_FILE: Final = "index.json"
#: The rollout history beside the index (scripts/rollout_history.py writes it, the replicas
#: count it: rollout_metrics.py).
HISTORY_FILE: Final = "rollouts.jsonl"
INDEX_VERSION: Final = 1
LOCK_FILE: Final = ".index.lock"
#: Temporary directories and files start with this; ``list`` and the server ignore them.
TEMP_PREFIX: Final = ".tmp-"
# The manifest's rule for names and versions (core.manifest): they become directory names and
# URL segments, so no path characters, and no leading dot (hidden, or "." / "..").
PLAIN_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")


class RepositoryError(ValueError):
    """A refused repository operation or an invalid ``index.json``; the message is one line."""


@dataclass(frozen=True)
class VersionEntry:
    """One packaged version: the sha256 of its artifact and of its ``manifest.json`` bytes."""

    sha256: str
    manifest_sha256: str


@dataclass(frozen=True)
class ModelEntry:
    """A model's versions (in file order) and the one served by unversioned routes."""

    current: str
    versions: Mapping[str, VersionEntry]


@dataclass(frozen=True)
class Index:
    """The content of ``index.json``: every model of the repository, by name."""

    models: Mapping[str, ModelEntry] = field(default_factory=lambda: MappingProxyType({}))
    index_version: int = INDEX_VERSION

    @classmethod
    def from_dict(cls, data: object) -> Index:
        """Parse and validate ``index.json``'s JSON data.

        Raises:
            RepositoryError: naming the key and the reason.
        """
        top = _obj(data, "index.json")
        if top.get("index_version") != INDEX_VERSION or set(top) != {"index_version", "models"}:
            raise RepositoryError(
                f"index.json: expected keys index_version ({INDEX_VERSION}) and models"
            )
        models: dict[str, ModelEntry] = {}
        for name, raw in _obj(top["models"], "models").items():
            entry = _obj(raw, f"models.{name}")
            check_plain(name, "model name")
            versions = {}
            for version, v in _obj(entry.get("versions"), f"models.{name}.versions").items():
                check_plain(version, "version")
                item = _obj(v, f"models.{name}.versions.{version}")
                sha, manifest_sha = item.get("sha256"), item.get("manifest_sha256")
                if not (_is_sha256(sha) and _is_sha256(manifest_sha)) or len(item) != 2:
                    raise RepositoryError(
                        f"index.json: models.{name}.versions.{version}: expected exactly "
                        "sha256 and manifest_sha256, 64 lowercase hex digits each"
                    )
                versions[version] = VersionEntry(str(sha), str(manifest_sha))
            current = entry.get("current")
            if current not in versions or set(entry) != {"current", "versions"}:
                raise RepositoryError(
                    f"index.json: models.{name}: expected current (one of its versions) "
                    "and versions"
                )
            models[name] = ModelEntry(str(current), MappingProxyType(versions))
        return cls(MappingProxyType(models))

    def to_dict(self) -> dict[str, Any]:
        """JSON data for ``index.json`` (``dump_index`` sorts the keys)."""
        return {
            "index_version": self.index_version,
            "models": {
                name: {
                    "current": m.current,
                    "versions": {
                        v: {"sha256": e.sha256, "manifest_sha256": e.manifest_sha256}
                        for v, e in m.versions.items()
                    },
                }
                for name, m in self.models.items()
            },
        }

    def entry(self, name: str, version: str) -> VersionEntry | None:
        """The index entry of ``name`` ``version``, ``None`` if it is not in the index."""
        model = self.models.get(name)
        return None if model is None else model.versions.get(version)


def check_plain(value: str, what: str) -> str:
    """``value`` if it is a plain name (no path characters); else ``RepositoryError``."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value):
        raise RepositoryError(
            f"{what} {value!r} is not a plain name: use 1-100 of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit (no path characters)"
        )
    return value


def dump_index(index: Index) -> str:
    """The exact text written to ``index.json``: pretty, sorted keys, a final newline."""
    return json.dumps(index.to_dict(), indent=2, sort_keys=True) + "\n"


def load_index(repo: Path) -> Index:
    """Read ``<repo>/index.json``; a repository without one is empty.

    Raises:
        RepositoryError: if the file is not JSON or not a valid index.
    """
    if not (repo / INDEX_FILE).exists():
        return Index()
    return read_index_file(repo / INDEX_FILE)


def pin_index(repo: Path, into: Path) -> Path:
    """Copy ``<repo>/index.json`` to a new file in ``into`` and return its path.

    A replica serves the index as it was when its gunicorn master loaded its configuration
    (container start, SIGHUP): workers read the pinned copy, so a worker recycled after an
    operator changed the index still serves what its siblings serve, and only a rollout (a
    SIGHUP per replica) changes it. Without an index in the repository the repository's own
    (missing) path is returned, which the registry reports.
    """
    try:
        data = (repo / INDEX_FILE).read_bytes()
    except FileNotFoundError:
        return repo / INDEX_FILE
    fd, tmp = tempfile.mkstemp(prefix="modelfleet-index-", suffix=".json", dir=into)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return Path(tmp)


def read_index_file(path: Path) -> Index:
    """Parse an index file (``load_index``'s reading, for a pinned copy as well).

    Raises:
        RepositoryError: if the file is missing, not JSON or not a valid index.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RepositoryError(f"no {path}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RepositoryError(f"{path} is not JSON: {exc}") from None
    return Index.from_dict(data)


def history_entries(repo: Path) -> Iterator[dict[str, Any]]:
    """The rollout history's entries (``HISTORY_FILE``), oldest first; none without a history.
    Lines that are not a JSON object (one being written, garbled bytes) are skipped. Read here
    for both sides: scripts/rollout_history.py (make rollback) and the replicas' metrics."""
    try:
        history = open(repo / HISTORY_FILE, encoding="utf-8", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return
    with history:
        for line in history:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item


def bundle_dir(repo: Path, name: str, version: str) -> Path:
    """``<repo>/<name>/<version>``, after checking both are plain names."""
    return repo / check_plain(name, "model name") / check_plain(version, "version")


@contextlib.contextmanager
def locked(repo: Path) -> Iterator[None]:
    """Hold the repository's index lock (exclusive, blocking) for a read-modify-write."""
    repo.mkdir(parents=True, exist_ok=True)
    with open(repo / LOCK_FILE, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_index(repo: Path, index: Index) -> None:
    """Replace ``index.json`` atomically (temporary file, fsync, ``os.replace``)."""
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".json", dir=repo)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(dump_index(index))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; replicas run as another user
        os.replace(tmp, repo / INDEX_FILE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def staging(repo: Path) -> Iterator[Path]:
    """A fresh temporary directory inside ``repo``, removed afterwards whatever happens.

    Inside the repository so that ``publish``'s rename stays on one file system (atomic);
    removed in ``finally`` so an error or Ctrl-C leaves nothing behind. A directory that was
    published has been renamed away and is not there to remove.
    """
    repo.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=repo))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(
    repo: Path, staged: Path, name: str, version: str, entry: VersionEntry, *, force: bool = False
) -> Index:
    """Move a staged bundle directory to ``<repo>/<name>/<version>`` and add it to the index.

    A model's first version becomes its current version; a later one is added beside it and
    becomes current only through ``set_current`` (a rollout). With ``force`` an existing
    version is replaced (its old directory is removed only after the new one is in place).

    Raises:
        RepositoryError: if the version exists (in the index or on disk) and ``force`` is off.
    """
    target = bundle_dir(repo, name, version)
    with locked(repo):
        index = load_index(repo)
        exists = index.entry(name, version) is not None or target.exists()
        if exists and not force:
            raise RepositoryError(f"{name} {version} exists already (FORCE=1 replaces it)")
        # Replicas run as another user and read the repository through a mount: whatever the
        # packager's umask, what it creates is readable by all (and writable by none of them).
        if not target.parent.exists():
            target.parent.mkdir()
            target.parent.chmod(0o755)
        for path in (staged, *staged.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        old = None
        if target.exists():
            old = target.with_name(f"{TEMP_PREFIX}old-{version}-{os.getpid()}")
            os.replace(target, old)
        os.replace(staged, target)
        updated = add_version(index, name, version, entry)
        try:
            write_index(repo, updated)
        except BaseException:
            # Ctrl-C or a full disk between the rename and the index: put everything back, so
            # the directory never exists without its index entry (or with the wrong one).
            os.replace(target, staged)
            if old is not None:
                os.replace(old, target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return updated


def add_version(index: Index, name: str, version: str, entry: VersionEntry) -> Index:
    """``index`` with ``name`` ``version`` added (or replaced); a new model's current version
    is its first one, an existing model keeps its current version."""
    models = dict(index.models)
    model = models.get(name)
    if model is None:
        models[name] = ModelEntry(version, MappingProxyType({version: entry}))
    else:
        models[name] = replace(model, versions=MappingProxyType({**model.versions, version: entry}))
    return replace(index, models=MappingProxyType(models))


def set_current(repo: Path, name: str, version: str) -> Index:
    """Make ``version`` the current version of ``name`` (what a rollout does); the new index.

    Raises:
        RepositoryError: if the model or the version is not in the index.
    """
    with locked(repo):
        index = load_index(repo)
        model = model_entry(index, name, version)
        models = {**index.models, name: replace(model, current=version)}
        updated = replace(index, models=MappingProxyType(models))
        write_index(repo, updated)
    return updated


def remove_version(repo: Path, name: str, version: str) -> Index:
    """Remove a version that is not current: from the index first, then its directory.

    The index goes first so that a replica never finds an indexed version without files. A
    model's current version cannot be removed (roll out another one first); removing the last
    version is therefore impossible too.

    Raises:
        RepositoryError: if the version is unknown or current.
    """
    with locked(repo):
        index = load_index(repo)
        model = model_entry(index, name, version)
        if version == model.current:
            raise RepositoryError(
                f"{name} {version} is the current version; make another version current first"
            )
        versions = {v: e for v, e in model.versions.items() if v != version}
        models = {**index.models, name: replace(model, versions=MappingProxyType(versions))}
        updated = replace(index, models=MappingProxyType(models))
        write_index(repo, updated)
        target = bundle_dir(repo, name, version)
        if target.exists():
            # Renamed first so a half-deleted directory never carries a version's name.
            trash = target.with_name(f"{TEMP_PREFIX}rm-{version}-{os.getpid()}")
            os.replace(target, trash)
            shutil.rmtree(trash)
    return updated


def model_entry(index: Index, name: str, version: str | None = None) -> ModelEntry:
    """``name``'s entry in ``index``, which must hold ``version`` too when one is given.

    Raises:
        RepositoryError: naming the known models, or the model's versions.
    """
    model = index.models.get(name)
    if model is None:
        known = ", ".join(sorted(index.models)) or "none"
        raise RepositoryError(f"no model {name!r} in the repository; known models: {known}")
    if version is not None and version not in model.versions:
        versions = ", ".join(model.versions)
        raise RepositoryError(f"{name} has no version {version!r}: versions {versions}")
    return model


def _obj(value: object, path: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise RepositoryError(f"index.json: {path}: expected an object")
    return value


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None
