"""The Python images build both ways: from a downloaded wheelhouse (make, air-gapped) and from a
package index (a fresh clone's `docker compose up --build`).

Static checks of compose.yaml, the Dockerfiles and .dockerignore, plus services/install-locked.sh
run against a stub python3 to pin down which path it takes. The real builds are in
tests/stack/test_stack_index_build.py.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest

from bench import compose

ROOT = Path(__file__).resolve().parents[2]
INSTALL_LOCKED = ROOT / "services" / "install-locked.sh"
PYPI = "https://pypi.org/simple"

# service -> (Dockerfile, the Makefile variable naming its wheelhouse, its lock file)
PYTHON_IMAGES = {
    "model": ("services/model-server/Dockerfile", "WHEELHOUSE", "services/model-server/"),
    "loadgen": ("services/loadgen/Dockerfile", "LOADGEN_WHEELHOUSE", "services/loadgen/"),
}


def compose_config(**env: str) -> dict:
    """`compose config` of every profile's services, as JSON, with extra environment."""
    return compose.config(("*",), project="mf-unit-config", **env)


def makefile_variable(name: str) -> str:
    """The value of a simple `NAME := value` assignment in the Makefile."""
    match = re.search(rf"^{name}\s*:=\s*(\S+)\s*$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"{name} is not assigned in the Makefile"
    return match.group(1)


def dockerfile_instructions(path: str) -> list[str]:
    """A Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / path).read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_compose_passes_the_index_and_the_build_network_to_both_python_images() -> None:
    default = compose_config(PIP_INDEX_URL="", BUILD_NETWORK="")["services"]
    overridden = compose_config(PIP_INDEX_URL="http://127.0.0.1:1/simple/", BUILD_NETWORK="host")
    for service, (dockerfile, _, _) in PYTHON_IMAGES.items():
        build = default[service]["build"]
        assert build["dockerfile"] == dockerfile
        assert build["args"] == {"PIP_INDEX_URL": PYPI}
        # Docker's ordinary build network unless a test asks for the host's.
        assert build["network"] == "default"
        build = overridden["services"][service]["build"]
        assert build["args"] == {"PIP_INDEX_URL": "http://127.0.0.1:1/simple/"}
        assert build["network"] == "host"


@pytest.mark.parametrize("service", sorted(PYTHON_IMAGES))
def test_dockerfile_copies_an_optional_wheelhouse_and_installs_with_the_shared_script(
    service: str,
) -> None:
    dockerfile, wheelhouse_var, lock_dir = PYTHON_IMAGES[service]
    instructions = dockerfile_instructions(dockerfile)
    wheelhouse = makefile_variable(wheelhouse_var)
    assert not (ROOT / dockerfile).read_text().startswith("# syntax"), "would pull a frontend"
    copies = [i.split()[1:] for i in instructions if i.startswith("COPY ") and "--from" not in i]
    deps = [c for c in copies if c[-1] == "/tmp/deps/"]
    assert len(deps) == 1, copies
    sources = deps[0][:-1]
    # The lock always exists, so the COPY never has zero sources (the classic builder refuses
    # that); the wheelhouse is a pattern in every path component, so a missing build/ or a
    # missing wheelhouse copies nothing instead of failing.
    assert sources[0] == f"{lock_dir}requirements.lock"
    assert len(sources) == 2
    pattern = sources[1]
    assert fnmatch.fnmatchcase(wheelhouse, pattern), (pattern, wheelhouse)
    assert all(re.search(r"[*?\[]", part) for part in pattern.split("/")), pattern
    # ...and the pattern picks exactly that wheelhouse, not its sibling.
    others = {makefile_variable(v) for _, v, _ in PYTHON_IMAGES.values()} - {wheelhouse}
    assert not any(fnmatch.fnmatchcase(o, pattern) for o in others)
    assert "ARG PIP_INDEX_URL=https://pypi.org/simple" in instructions
    assert "RUN install-locked /opt/venv /tmp/deps" in instructions
    assert "COPY services/install-locked.sh /usr/local/bin/install-locked" in instructions


def test_dockerignore_sends_both_wheelhouses_and_the_install_script() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    for _, var, _ in PYTHON_IMAGES.values():
        assert f"!{makefile_variable(var)}" in lines
    # services/ is sent whole: install-locked.sh lives there.
    assert "!services" in lines
    assert INSTALL_LOCKED.stat().st_mode & 0o111, "install-locked.sh must be executable"


def run_install_locked(tmp_path: Path, files: list[str]) -> tuple[subprocess.CompletedProcess, str]:
    """Run install-locked.sh with a stub python3 whose venv's pip records its arguments."""
    deps = tmp_path / "deps"
    deps.mkdir()
    (deps / "requirements.lock").write_text("")
    for name in files:
        (deps / name).write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "pip-args"
    # `python3 -m venv DIR` makes DIR/bin/pip and DIR/bin/python, which append their arguments
    # to the record.
    stub = bin_dir / "python3"
    stub.write_text(
        "#!/bin/sh\n"
        'mkdir -p "$3/bin"\n'
        "for tool in pip python; do\n"
        'cat > "$3/bin/$tool" <<EOF\n'
        "#!/bin/sh\n"
        f'echo "$tool \\$@" >> "{record}"\n'
        "EOF\n"
        'chmod +x "$3/bin/$tool"\n'
        "done\n"
    )
    stub.chmod(0o755)
    proc = subprocess.run(
        ["sh", str(INSTALL_LOCKED), str(tmp_path / "venv"), str(deps)],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "PIP_INDEX_URL": "http://127.0.0.1:1/simple/"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc, record.read_text() if record.exists() else ""


def test_install_locked_uses_a_complete_wheelhouse_without_the_index(tmp_path: Path) -> None:
    proc, pip_args = run_install_locked(tmp_path, [".complete", "numpy-2.3.0-cp311.whl"])
    assert proc.returncode == 0, proc.stderr
    install = pip_args.splitlines()[0]
    assert install.startswith("pip install ")
    assert "--no-index --find-links" in install
    assert "--index-url" not in install
    assert "--require-hashes" in install and "--only-binary=:all:" in install


def test_install_locked_uses_the_index_when_there_is_no_wheelhouse(tmp_path: Path) -> None:
    proc, pip_args = run_install_locked(tmp_path, [])
    assert proc.returncode == 0, proc.stderr
    install = pip_args.splitlines()[0]
    assert "--index-url http://127.0.0.1:1/simple/" in install
    assert "--no-index" not in install
    assert "--require-hashes" in install and "--only-binary=:all:" in install


def test_install_locked_ships_bytecode_for_read_only_containers(tmp_path: Path) -> None:
    """Compiled once at build time: a read-only container cannot write it, and compiling
    numpy, scipy and scikit-learn at every start costs seconds of CPU."""
    proc, args = run_install_locked(tmp_path, [".complete", "numpy-2.3.0-cp311.whl"])
    assert proc.returncode == 0, proc.stderr
    compile_line = args.splitlines()[-1]
    assert compile_line.startswith("python -m compileall ")
    assert " -f " in compile_line  # also the files pip compiled at install, in that mode
    assert "--invalidation-mode unchecked-hash" in compile_line
    assert compile_line.endswith(f"{tmp_path / 'venv'}/lib")


def test_install_locked_refuses_an_interrupted_wheelhouse_download(tmp_path: Path) -> None:
    proc, pip_args = run_install_locked(tmp_path, ["numpy-2.3.0-cp311.whl"])
    assert proc.returncode != 0
    assert "no .complete marker" in proc.stderr
    assert pip_args == ""
