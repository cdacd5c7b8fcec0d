#!/bin/sh
# Namespace init of the sandbox host; run by `unshare --pid --mount --uts --ipc --net --fork`.
# Mounts the container layout (overlay root, /proc, /sys, /dev, tmpfs /run /tmp /dev/shm, Docker-style
# bind mounts of /etc/resolv.conf, /etc/hostname, /etc/hosts), pivots into it and boots the way
# vast.ai's SSH launch mode does: its entrypoint (sshd on port 22), then the instance's on-start
# script /root/onstart.sh, in the background, logging to /var/log/onstart.log.
# sshd is PID 1: it reaps orphaned children (its SIGCHLD handler waits on any pid), like an init.
# The network namespace is private; slirp4netns (started by the control machine) gives it tap0 with
# outbound NAT and forwards one loopback port of the control machine to sshd's port 22.
# Usage: init.sh LOWER UPPER WORK MERGED STATE
set -eu
lower=$1 upper=$2 work=$3 merged=$4 state=$5

# The namespace's own loopback: the services bind 127.0.0.1 here, invisible from outside.
ip link set lo up

mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$merged"
mount -t proc -o nosuid,nodev,noexec proc "$merged/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$merged/sys"
# A Docker-like /dev: a few host device nodes, a private devpts, a private /dev/shm.
mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs "$merged/dev"
for node in null zero full random urandom tty; do
    touch "$merged/dev/$node"
    mount --bind "/dev/$node" "$merged/dev/$node"
done
mkdir -p "$merged/dev/pts" "$merged/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$merged/dev/pts"
ln -s pts/ptmx "$merged/dev/ptmx"
ln -s /proc/self/fd "$merged/dev/fd"
ln -s /proc/self/fd/0 "$merged/dev/stdin"
ln -s /proc/self/fd/1 "$merged/dev/stdout"
ln -s /proc/self/fd/2 "$merged/dev/stderr"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$merged/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$merged/run"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$merged/tmp"
for name in resolv.conf hostname hosts; do
    # A symlink here would send the bind mount into the rootfs's own files.
    rm -f "$merged/etc/$name"
    touch "$merged/etc/$name"
    mount --bind "$state/$name" "$merged/etc/$name"
done
install -d -m 700 "$merged/root/.ssh"
install -m 600 "$state/id_ed25519.pub" "$merged/root/.ssh/authorized_keys"
# More keys root accepts, as vast.ai adds the account's registered keys (sandbox/vast_hooks.py).
if [ -f "$state/authorized_keys" ]; then
    cat "$state/authorized_keys" >> "$merged/root/.ssh/authorized_keys"
fi
install -d -m 755 "$merged/run/sshd"
cat "$state/hostname" > /proc/sys/kernel/hostname

# Wait (10 s at most) for slirp4netns to bring tap0 up, so the on-start script has a network.
i=0
until ip -o -4 addr show dev tap0 2>/dev/null | grep -q inet; do
    i=$((i + 1))
    [ "$i" -ge 100 ] && echo "init.sh: tap0 did not come up; no outbound network" >&2 && break
    sleep 0.1
done

# Swap roots like a container runtime so /proc/mounts inside lists only the container's mounts.
cd "$merged"
pivot_root . mnt
cd /
umount -l /mnt
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The on-start script runs once sshd answers, as vast.ai runs it after its own entrypoint.
if [ -f /root/onstart.sh ]; then
    env -i PATH="$path" HOME=/root sh -c '
        i=0
        until [ -e /run/sshd.pid ] || [ "$i" -ge 50 ]; do i=$((i + 1)); sleep 0.1; done
        echo "--- onstart $(date -u +%FT%TZ)"
        exec bash /root/onstart.sh' >>/var/log/onstart.log 2>&1 </dev/null &
fi
exec env -i PATH="$path" /usr/sbin/sshd -D -e
