#!/bin/sh
# Boot of a systemd sandbox host; run by `unshare --mount --propagation private`, so the overlay
# lives in a private mount namespace. systemd-nspawn boots systemd as the container's PID 1 in new
# PID, mount, UTS, IPC and network namespaces (--private-network: only lo, until slirp4netns,
# started by the control machine, adds tap0 and forwards one loopback port to sshd on port 22).
# Like a user's own server: no /root/onstart.sh; enabled units start at boot.
# Usage: init-systemd.sh LOWER UPPER WORK MERGED STATE NAME
set -eu
lower=$1 upper=$2 work=$3 merged=$4 state=$5 name=$6

mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
# nspawn keeps per-machine state in /run/systemd/nspawn and removes it only from a tmpfs; this
# machine's /run may be a disk file system, so give it a private tmpfs (this mount namespace's).
mkdir -p /run/systemd/nspawn
mount -t tmpfs -o mode=755 tmpfs /run/systemd/nspawn
install -d -m 700 "$merged/root/.ssh"
install -m 600 "$state/id_ed25519.pub" "$merged/root/.ssh/authorized_keys"
# More keys root accepts (Sandbox.authorized_keys_path), as on container hosts.
if [ -f "$state/authorized_keys" ]; then
    cat "$state/authorized_keys" >> "$merged/root/.ssh/authorized_keys"
fi
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    systemd-nspawn --boot --quiet --register=no --keep-unit --console=passive --link-journal=no \
    --timezone=off --resolv-conf=off --private-network \
    --directory="$merged" --machine="$name" --hostname="$name" \
    --bind-ro="$state/resolv.conf:/etc/resolv.conf" --bind-ro="$state/hosts:/etc/hosts"
