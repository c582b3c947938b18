#!/usr/bin/env bash
# Make sure debian:bookworm-slim exists locally.
#
# On a machine with a registry it is simply pulled. Where no registry can be reached (our CI and
# dev machines), it is built from Debian's archive with debootstrap and trimmed the way the
# official image is, then imported under the same tag so every Dockerfile stays portable.
set -euo pipefail

IMAGE="${BASE_IMAGE:-debian:bookworm-slim}"
SUITE="${BASE_SUITE:-bookworm}"
# Empty: debootstrap uses its own default Debian mirror.
MIRROR="${DEBIAN_MIRROR:-}"

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
echo ">> $IMAGE is missing; trying to pull it"
if timeout 60 docker pull "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
echo ">> no registry: building $IMAGE from Debian's archive with debootstrap (about 35 s)"
"$(dirname "$0")/host.sh" packages debootstrap
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

root="$(mktemp -d /tmp/bookworm-slim.XXXXXX)"
trap '$SUDO rm -rf "$root"' EXIT

# Same dpkg exclusions as the official slim image: no docs, man pages or locales.
$SUDO mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
$SUDO tee "$root/etc/dpkg/dpkg.cfg.d/docker" >/dev/null <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
$SUDO debootstrap --variant=minbase "$SUITE" "$root" $MIRROR >/tmp/debootstrap.log 2>&1 || {
  tail -20 /tmp/debootstrap.log >&2; exit 1; }

# apt settings of the official image: never keep downloaded .debs or lists in a layer.
$SUDO tee "$root/etc/apt/apt.conf.d/docker-clean" >/dev/null <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Acquire::Languages "none";' | $SUDO tee "$root/etc/apt/apt.conf.d/docker-no-languages" >/dev/null
echo 'APT::Install-Recommends "false";' | $SUDO tee "$root/etc/apt/apt.conf.d/docker-no-recommends" >/dev/null
# Keep the mirror debootstrap used, in the deb822 form the official image ships.
mirror="$(awk '$1 == "deb" {print $2; exit}' "$root/etc/apt/sources.list")"
$SUDO rm -f "$root/etc/apt/sources.list"
$SUDO tee "$root/etc/apt/sources.list.d/debian.sources" >/dev/null <<CFG
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
CFG
$SUDO rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* "$root"/tmp/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
$SUDO truncate -s 0 "$root/etc/machine-id"

$SUDO tar --numeric-owner -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$IMAGE" >/dev/null
echo ">> built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
