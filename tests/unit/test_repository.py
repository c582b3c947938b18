"""The model repository: ``<repo>/<name>/<version>/`` bundles and ``index.json`` (issue 10).

Specification: a model's first version becomes current, later ones do not until a rollout
(``set_current``); the current version cannot be removed; a version is never half-written and
the index is replaced atomically, pretty-printed with sorted keys.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from model_server.repository import (
    INDEX_FILE,
    Index,
    RepositoryError,
    VersionEntry,
    bundle_dir,
    check_plain,
    dump_index,
    load_index,
    publish,
    remove_version,
    set_current,
    staging,
)

A = VersionEntry("a" * 64, "b" * 64)
B = VersionEntry("c" * 64, "d" * 64)


def add(repo: Path, name: str, version: str, entry: VersionEntry = A, force: bool = False) -> Index:
    """Stage a bundle directory with one file and publish it."""
    with staging(repo) as tmp:
        (tmp / "manifest.json").write_text(f"{name} {version}\n")
        return publish(repo, tmp, name, version, entry, force=force)


def visible(repo: Path) -> list[str]:
    """Everything in the repository, relative, leaving out the lock file."""
    return sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.name != ".index.lock")


def test_a_repository_without_an_index_is_empty(tmp_path: Path) -> None:
    assert load_index(tmp_path).models == {}
    assert load_index(tmp_path / "absent").models == {}


def test_a_models_first_version_becomes_current_and_a_later_one_does_not(
    tmp_path: Path,
) -> None:
    add(tmp_path, "churn", "1.0.0")
    index = add(tmp_path, "churn", "1.1.0", B)
    assert index.models["churn"].current == "1.0.0"
    assert dict(index.models["churn"].versions) == {"1.0.0": A, "1.1.0": B}
    assert load_index(tmp_path) == index
    assert (tmp_path / "churn" / "1.1.0" / "manifest.json").read_text() == "churn 1.1.0\n"


def test_the_index_is_pretty_sorted_json_that_round_trips(tmp_path: Path) -> None:
    add(tmp_path, "zeta", "2")
    add(tmp_path, "alpha", "1")
    text = (tmp_path / INDEX_FILE).read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert list(json.loads(text)) == ["index_version", "models"]
    assert list(json.loads(text)["models"]) == ["alpha", "zeta"]
    assert dump_index(load_index(tmp_path)) == text
    # Replicas run as another user than the packager: the index is world-readable.
    assert stat.S_IMODE((tmp_path / INDEX_FILE).stat().st_mode) == 0o644


def test_set_current_is_the_rollout_switch(tmp_path: Path) -> None:
    add(tmp_path, "churn", "1")
    add(tmp_path, "churn", "2", B)
    assert set_current(tmp_path, "churn", "2").models["churn"].current == "2"
    assert load_index(tmp_path).models["churn"].current == "2"
    with pytest.raises(RepositoryError, match=r"^churn has no version '3': versions 1, 2$"):
        set_current(tmp_path, "churn", "3")
    with pytest.raises(RepositoryError, match=r"^no model 'other' .*known models: churn$"):
        set_current(tmp_path, "other", "1")


def test_a_version_that_is_not_current_can_be_removed(tmp_path: Path) -> None:
    add(tmp_path, "churn", "1")
    add(tmp_path, "churn", "2", B)
    index = remove_version(tmp_path, "churn", "2")
    assert list(index.models["churn"].versions) == ["1"]
    assert load_index(tmp_path) == index
    assert not (tmp_path / "churn" / "2").exists()
    assert visible(tmp_path) == ["churn", "churn/1", "churn/1/manifest.json", INDEX_FILE]


def test_the_current_version_cannot_be_removed(tmp_path: Path) -> None:
    add(tmp_path, "churn", "1")
    with pytest.raises(RepositoryError, match=r"^churn 1 is the current version; make another"):
        remove_version(tmp_path, "churn", "1")
    with pytest.raises(RepositoryError, match=r"^churn has no version '9'"):
        remove_version(tmp_path, "churn", "9")
    assert (tmp_path / "churn" / "1").is_dir()


def test_an_existing_version_is_replaced_only_with_force(tmp_path: Path) -> None:
    add(tmp_path, "churn", "1")
    with pytest.raises(RepositoryError, match=r"^churn 1 exists already \(FORCE=1 replaces it\)$"):
        add(tmp_path, "churn", "1", B)
    assert load_index(tmp_path).entry("churn", "1") == A
    assert add(tmp_path, "churn", "1", B, force=True).entry("churn", "1") == B
    assert visible(tmp_path) == ["churn", "churn/1", "churn/1/manifest.json", INDEX_FILE]


def test_a_directory_without_an_index_entry_also_counts_as_existing(tmp_path: Path) -> None:
    (tmp_path / "churn" / "1").mkdir(parents=True)
    with pytest.raises(RepositoryError, match="exists already"):
        add(tmp_path, "churn", "1")


@pytest.mark.parametrize("interrupt", [RuntimeError("boom"), KeyboardInterrupt()])
def test_staging_leaves_nothing_behind_on_an_error_or_ctrl_c(
    tmp_path: Path, interrupt: BaseException
) -> None:
    with pytest.raises(type(interrupt)), staging(tmp_path) as tmp:
        (tmp / "model.skops").write_bytes(b"half")
        raise interrupt
    assert visible(tmp_path) == []


def test_a_failed_index_write_keeps_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(tmp_path, "churn", "1")
    before = (tmp_path / INDEX_FILE).read_text()

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        set_current(tmp_path, "churn", "1")
    assert (tmp_path / INDEX_FILE).read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("force", [False, True])
def test_an_interrupted_publish_puts_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    import model_server.repository as repository

    if force:
        add(tmp_path, "churn", "1")

    def files() -> dict[Path, bytes]:
        return {
            p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".lock"
        }

    before = files()

    def interrupted(repo: Path, index: Index) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(repository, "write_index", interrupted)
    with pytest.raises(KeyboardInterrupt):
        add(tmp_path, "churn", "1", B, force=force)
    assert files() == before
    assert not [p for p in tmp_path.rglob(".tmp-*")]


@pytest.mark.parametrize("value", ["../x", "a/b", "a\\b", ".hidden", "", "-x", "x" * 101, "é"])
def test_names_and_versions_with_path_characters_are_refused(value: str) -> None:
    with pytest.raises(RepositoryError, match=r"is not a plain name: .*no path characters"):
        check_plain(value, "version")
    with pytest.raises(RepositoryError):
        bundle_dir(Path("models"), value, "1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", r"is not JSON"),
        ("[]", r"^index.json: index.json: expected an object$"),
        ('{"index_version": 2, "models": {}}', r"expected keys index_version \(1\) and models"),
        ('{"index_version": 1, "models": []}', r"^index.json: models: expected an object$"),
        (
            '{"index_version": 1, "models": {"m": {"current": "2", "versions": {}}}}',
            r"models.m: expected current \(one of its versions\)",
        ),
        (
            '{"index_version": 1, "models": {"m": {"current": "1", '
            '"versions": {"1": {"sha256": "x", "manifest_sha256": "y"}}}}}',
            r"models.m.versions.1: expected exactly sha256 and manifest_sha256",
        ),
        (
            '{"index_version": 1, "models": {"../m": {"current": "1", "versions": {}}}}',
            r"model name '../m' is not a plain name",
        ),
    ],
)
def test_an_invalid_index_is_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / INDEX_FILE).write_text(text)
    with pytest.raises(RepositoryError, match=message) as info:
        load_index(tmp_path)
    assert "\n" not in str(info.value)


def test_the_command_line_lists_removes_and_switches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from model_server.repository_cli import main

    repo = ["--repository", str(tmp_path)]
    assert main([*repo, "list"]) == 0
    assert capsys.readouterr().out == f"no models in {tmp_path / INDEX_FILE}\n"
    add(tmp_path, "churn", "1")
    add(tmp_path, "churn", "2", B)
    assert main([*repo, "list"]) == 0
    # Without a readable manifest, task and feature count are "?".
    assert capsys.readouterr().out.splitlines() == [
        "MODEL  VERSION  CURRENT  SHA256        TASK  FEATURES",
        "churn  1        *        aaaaaaaaaaaa  ?     ?",
        "churn  2                 cccccccccccc  ?     ?",
    ]
    assert main([*repo, "remove", "churn", "1"]) == 2
    assert capsys.readouterr().err == (
        "model-repository: churn 1 is the current version; make another version current first\n"
    )
    assert main([*repo, "set-current", "churn", "2"]) == 0
    assert main([*repo, "remove", "churn", "1"]) == 0
    assert capsys.readouterr().out == "churn: current version is now 2\nremoved churn 1\n"
