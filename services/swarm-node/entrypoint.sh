#!/bin/sh
# The second node's Docker Engine. A container that is not --privileged (this host's engine
# lacks CAP_SYS_RESOURCE, so --privileged fails) gets /sys and the cgroup hierarchies
# read-only: remount them writable (CAP_SYS_ADMIN is granted) so the engine can create its
# containers' cgroups, then run dockerd in the foreground (its log is the container's).
set -eu
mount -o remount,rw /sys
# Each hierarchy is a read-only bind mount of this container's own cgroup: the engine's
# containers become its children.
for hierarchy in /sys/fs/cgroup/*; do
  [ -L "$hierarchy" ] || mount -o remount,bind,rw "$hierarchy"
done
rm -f /var/run/docker.pid /run/docker/containerd/containerd.pid
exec dockerd --host unix:///var/run/docker.sock --storage-driver overlay2 \
  --mtu "${SWARM_NODE_MTU:-1400}" --log-driver json-file "$@"
