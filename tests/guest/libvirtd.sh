#!/usr/bin/env bash
# A private, throwaway libvirtd for tests: its own /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt
# and /var/log/libvirt (bind mounts inside a private mount namespace), QEMU driver only, no virtlogd, no cgroups.
# Usage: unshare -m --propagation private bash tests/guest/libvirtd.sh STATE_DIR HOST_UUID
# Clients connect from outside with: virsh -c "qemu:///system?socket=STATE_DIR/run/libvirt-sock"
set -euo pipefail
d="$1"
uuid="$2"
mkdir -p "$d"/{etc/qemu,run,lib,cache,log,drivers}
cat >"$d/etc/libvirtd.conf" <<CONF
auth_unix_rw = "none"
auth_unix_ro = "none"
unix_sock_rw_perms = "0700"
host_uuid = "$uuid"
log_outputs = "3:stderr"
CONF
cat >"$d/etc/qemu.conf" <<CONF
stdio_handler = "file"
cgroup_controllers = [ ]
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
CONF
: >"$d/etc/libvirt.conf"
drv="$(dirname "$(find /usr/lib -name libvirt_driver_qemu.so -path '*connection-driver*' | head -1)")"
ln -sf "$drv/libvirt_driver_qemu.so" "$d/drivers/libvirt_driver_qemu.so"
mount --bind "$d/etc" /etc/libvirt
mount --bind "$d/run" /run/libvirt 2>/dev/null || { mkdir -p /run/libvirt && mount --bind "$d/run" /run/libvirt; }
mkdir -p /var/lib/libvirt /var/cache/libvirt /var/log/libvirt
mount --bind "$d/lib" /var/lib/libvirt
mount --bind "$d/cache" /var/cache/libvirt
mount --bind "$d/log" /var/log/libvirt
export LIBVIRT_DRIVER_DIR="$d/drivers"
exec libvirtd -p "$d/libvirtd.pid"
