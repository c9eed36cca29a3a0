#!/usr/bin/env bash
# Builds tsvirt's test guest from Debian packages, in seconds, installing nothing:
#   OUT/vmlinux       uncompressed kernel (PVH entry: fast `-kernel` boots under TCG)
#   OUT/vmlinuz       the Debian bzImage (what SYSLINUX loads)
#   OUT/initrd.gz     busybox-static initramfs (cpio newc, gzip) with the drivers for every disk bus the converter emits
#   OUT/disk.qcow2    bootable disk (BIOS + SYSLINUX on a FAT superfloppy) that boots from its disk alone
#   OUT/guest.json    the paths above plus the ready marker and kernel version
# Usage: bash tests/guest/build.sh [OUT_DIR]   (default tests/guest/out). Idempotent and cached.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/out}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cache="$out/cache"
mkdir -p "$cache"
export LC_ALL=C
# One builder at a time per output directory (parallel test processes share it).
exec 9>"$out/.lock"
flock 9

MARKER="TSVIRT-GUEST-READY"
log() { printf 'guest-build: %s\n' "$*" >&2; }

# 1. The kernel package linux-image-amd64 currently depends on (never hard-coded).
kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
if [ -z "$kpkg" ]; then
  log "cannot resolve the kernel package behind linux-image-amd64 (run apt-get update?)"
  exit 1
fi
kver_pkg="$(apt-cache policy "$kpkg" | awk '/Candidate:/ {print $2; exit}')"

# Cache key: the kernel package + version and the recipe (this script and the guest's init).
key="$(printf '%s %s\n' "$kpkg" "$kver_pkg" | cat - "$here/build.sh" "$here/init.sh" | sha256sum | cut -c1-16)"
if [ -f "$out/guest.json" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$key" ] &&
  [ -s "$out/vmlinux" ] && [ -s "$out/initrd.gz" ] && [ -s "$out/disk.qcow2" ] && [ -s "$out/vmlinuz" ]; then
  log "up to date ($kpkg $kver_pkg) in $out"
  exit 0
fi
rm -f "$out/.stamp"

# 2. Download (not install) the .deb into the cache, then unpack only what we need.
deb="$(ls "$cache/${kpkg}_"*.deb 2>/dev/null | head -1 || true)"
if [ -z "$deb" ]; then
  log "downloading $kpkg $kver_pkg"
  (cd "$cache" && apt-get download -q "$kpkg" >/dev/null 2>"$cache/download.err") || {
    log "apt-get download failed; refreshing the package index once"
    apt-get update -qq >/dev/null 2>&1 || true
    (cd "$cache" && apt-get download -q "$kpkg" >/dev/null)
  }
  deb="$(ls "$cache/${kpkg}_"*.deb | head -1)"
fi
root="$cache/root"
rm -rf "$root"
mkdir -p "$root"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$root" --wildcards './boot/vmlinuz-*' './lib/modules/*' './usr/lib/modules/*' 2>/dev/null || true
vmlinuz="$(ls "$root"/boot/vmlinuz-* | head -1)"
kver="${vmlinuz##*/vmlinuz-}"
moddir=""
for d in "$root/lib/modules/$kver" "$root/usr/lib/modules/$kver"; do [ -f "$d/modules.order" ] && moddir="$d"; done
[ -n "$moddir" ] || { log "no modules for $kver in $deb"; exit 1; }
depmod -b "${moddir%/lib/modules/$kver}" "$kver"

# 3. vmlinux: find the compressed payload inside the bzImage (the kernel's extract-vmlinux method) and inflate it.
extract_vmlinux() {
  local img="$1" dst="$2" magic cmd off
  for spec in 'xz:\xFD7zXZ\x00' 'zstd:\x28\xB5\x2F\xFD' 'gzip:\x1F\x8B\x08' 'lzma:\x5D\x00\x00\x00'; do
    cmd="${spec%%:*}"
    magic="${spec#*:}"
    command -v "$cmd" >/dev/null || continue
    for off in $(grep -aboP "$magic" "$img" | cut -d: -f1); do
      tail -c "+$((off + 1))" "$img" | "$cmd" -dc 2>/dev/null >"$dst.tmp" || true
      if [ "$(head -c 4 "$dst.tmp" | od -An -tx1 | tr -d ' \n')" = "7f454c46" ]; then
        mv "$dst.tmp" "$dst"
        return 0
      fi
    done
  done
  rm -f "$dst.tmp"
  return 1
}
cp "$vmlinuz" "$out/vmlinuz"
extract_vmlinux "$vmlinuz" "$out/vmlinux" || { log "could not extract vmlinux from $vmlinuz"; exit 1; }

# 4. Initramfs: busybox-static, /init, modules in dependency order (deps first), from modules.dep.
want=(
  virtio virtio_ring virtio_pci virtio_blk virtio_scsi scsi_mod sd_mod sr_mod cdrom isofs
  libata libahci ahci virtio_net net_failover failover virtio_console virtio_rng virtio_balloon
  crc32c_generic crc16 mbcache jbd2 ext4 button evdev pvpanic_mmio pvpanic_pci
)
declare -A done_mod=()
order=()
modpath() { # module name -> path relative to moddir ('' if builtin/absent)
  local n="${1//-/_}"
  awk -F: -v n="$n" '{ p=$1; b=p; sub(/.*\//, "", b); sub(/\.ko(\.(xz|zst|gz))?$/, "", b); gsub(/-/, "_", b); if (b == n) { print p; exit } }' "$moddir/modules.dep"
}
add_mod() { # path relative to moddir
  local p="$1" d
  [ -n "${done_mod[$p]:-}" ] && return 0
  done_mod[$p]=1
  for d in $(awk -F: -v p="$p" '$1 == p { print $2; exit }' "$moddir/modules.dep"); do add_mod "$d"; done
  order+=("$p")
}
for m in "${want[@]}"; do
  p="$(modpath "$m")"
  if [ -z "$p" ]; then
    grep -qE "/${m//_/[-_]}\.ko" "$moddir/modules.builtin" || { log "module $m: neither module nor builtin"; exit 1; }
    continue
  fi
  add_mod "$p"
done

ir="$cache/initramfs"
rm -rf "$ir"
mkdir -p "$ir"/{bin,dev,proc,sys,tmp,run,etc/acpi/PWRF,lib/modules,usr/share/udhcpc,mnt}
cp /bin/busybox "$ir/bin/busybox"
[ "$(head -c 4 "$ir/bin/busybox" | od -An -tx1 | tr -d ' \n')" = "7f454c46" ]
if ldd /bin/busybox >/dev/null 2>&1; then log "/bin/busybox is not static (install busybox-static)"; exit 1; fi
: >"$ir/etc/modules-order"
for p in "${order[@]}"; do
  b="${p##*/}"
  case "$b" in
    *.ko.xz) xz -dc "$moddir/$p" >"$ir/lib/modules/${b%.xz}"; b="${b%.xz}" ;;
    *.ko.zst) zstd -qdc "$moddir/$p" >"$ir/lib/modules/${b%.zst}"; b="${b%.zst}" ;;
    *.ko.gz) gzip -dc "$moddir/$p" >"$ir/lib/modules/${b%.gz}"; b="${b%.gz}" ;;
    *) cp "$moddir/$p" "$ir/lib/modules/$b" ;;
  esac
  echo "$b" >>"$ir/etc/modules-order"
done
install -m 0755 "$here/init.sh" "$ir/init"
printf '#!/bin/sh\necho "TSVIRT-GUEST-POWEROFF" >/dev/console\nsync\npoweroff -f\n' >"$ir/etc/acpi/PWRF/00000080"
chmod 0755 "$ir/etc/acpi/PWRF/00000080"
cat >"$ir/usr/share/udhcpc/default.script" <<'SCRIPT'
#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "TSVIRT-GUEST-DHCP $interface $ip/${mask:-24}" >/dev/console ;;
esac
exit 0
SCRIPT
chmod 0755 "$ir/usr/share/udhcpc/default.script"
echo "$kver" >"$ir/etc/kernel-release"
(cd "$ir" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet | gzip -6 -n) >"$out/initrd.gz.tmp"
mv "$out/initrd.gz.tmp" "$out/initrd.gz"

# 5. Bootable disk: FAT superfloppy + SYSLINUX + kernel + initramfs (no mount, no loop device).
img="$cache/disk.img"
rm -f "$img"
kb=$(( ($(stat -c %s "$out/vmlinuz") + $(stat -c %s "$out/initrd.gz")) / 1024 + 2048 ))
mkfs.vfat -n TSVIRTBOOT -C "$img" "$kb" >/dev/null
syslinux --install "$img"
printf 'DEFAULT tsvirt\nPROMPT 0\nTIMEOUT 0\nSERIAL 0 115200\nLABEL tsvirt\n  KERNEL vmlinuz\n  APPEND initrd=initrd.gz console=ttyS0 panic=-1\n' >"$cache/syslinux.cfg"
mcopy -o -i "$img" "$out/vmlinuz" ::vmlinuz
mcopy -o -i "$img" "$out/initrd.gz" ::initrd.gz
mcopy -o -i "$img" "$cache/syslinux.cfg" ::syslinux.cfg
qemu-img convert -q -f raw -O qcow2 "$img" "$out/disk.qcow2.tmp"
mv "$out/disk.qcow2.tmp" "$out/disk.qcow2"
rm -f "$img"
rm -rf "$root"

# Readable by QEMU's user (libvirt-qemu) when libvirt runs it.
chmod 0755 "$out"
chmod 0644 "$out/vmlinux" "$out/vmlinuz" "$out/initrd.gz" "$out/disk.qcow2"
printf '{"kernelPackage":"%s","kernelVersion":"%s","vmlinux":"%s","vmlinuz":"%s","initrd":"%s","qcow2":"%s","marker":"%s","modules":%d}\n' \
  "$kpkg" "$kver" "$out/vmlinux" "$out/vmlinuz" "$out/initrd.gz" "$out/disk.qcow2" "$MARKER" "${#order[@]}" >"$out/guest.json"
echo "$key" >"$out/.stamp"
log "built $kpkg ($kver), ${#order[@]} modules, in $out"
