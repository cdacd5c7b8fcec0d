#!/bin/sh
# Namespace init of the sandbox host; run by `unshare --pid --mount --uts --ipc --fork`.
# Mounts the container layout (overlay root, /proc, /sys, /dev, tmpfs /run /tmp /dev/shm, Docker-style
# bind mounts of /etc/resolv.conf, /etc/hostname, /etc/hosts), pivots into it and execs sshd as PID 1.
# sshd reaps orphaned children (its SIGCHLD handler waits on any pid), so it can stand in for an init.
# Usage: init.sh LOWER UPPER WORK MERGED STATE PORT
set -eu
lower=$1 upper=$2 work=$3 merged=$4 state=$5 port=$6

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
install -d -m 755 "$merged/run/sshd"
cat "$state/hostname" > /proc/sys/kernel/hostname

# Swap roots like a container runtime so /proc/mounts inside lists only the container's mounts.
cd "$merged"
pivot_root . mnt
cd /
umount -l /mnt
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /usr/sbin/sshd -D -e -p "$port"
