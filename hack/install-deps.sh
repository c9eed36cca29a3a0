#!/usr/bin/env bash
# Installs everything tsvirt's run and tests need on Debian 12. Idempotent: safe to run again.
# Debian packages come from bookworm and bookworm-backports (QEMU 10 and libvirt 11.3); npm deps from the lockfile.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# bookworm-backports, on the same mirror as the system's own Debian source (never a hard-coded host).
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  if [ -z "$uri" ]; then uri="$(awk '/^deb / && /debian/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"; fi
  if [ -n "$uri" ]; then
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" |
      $SUDO tee /etc/apt/sources.list.d/tsvirt-backports.sources >/dev/null
  fi
fi

BASE_PKGS=(
  busybox-static cpio kmod xz-utils zstd dosfstools mtools syslinux syslinux-common
  xorriso iproute2 iptables docker-registry skopeo umoci libxml2-utils procps psmisc socat unzip openssl curl
  util-linux # setpriv: the node agent's cp dies with it (--pdeathsig); Essential on Debian, named for the record
)
BP_PKGS=(qemu-system-x86 qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-daemon-system)

need=0
for p in "${BASE_PKGS[@]}" "${BP_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need=1
done
# QEMU 10 from backports is required (QEMU 7.2 + TCG corrupts memory during migration).
if ! qemu-system-x86_64 --version 2>/dev/null | grep -Eq 'version (9|[1-9][0-9])\.'; then need=1; fi

if [ "$need" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${BASE_PKGS[@]}" >/dev/null
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${BP_PKGS[@]}" >/dev/null
fi

# kubectl >= 1.29 (Debian's kubernetes-client is 1.20 and fails against tsvirt: see the script).
bash hack/install-kubectl.sh

# The packaged services are ours to start per test, never the system's.
for svc in libvirtd virtlogd docker-registry; do
  if command -v service >/dev/null 2>&1; then $SUDO service "$svc" stop >/dev/null 2>&1 || true; fi
done

# npm deps: a fresh `npm ci` only when node_modules is missing or older than the lockfile (it wipes node_modules).
# A node_modules that is a symlink is shared with other worktrees: `npm ci` would wipe it for all of them (a git
# checkout or rebase makes package-lock.json look newer), so it is left alone.
if [ -L node_modules ]; then
  echo "install-deps: node_modules is a shared link ($(readlink node_modules)); not reinstalling"
elif [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "install-deps: ok (qemu: $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), libvirt: $(libvirtd --version | awk '{print $3}'), kubectl: $(kubectl version --client | grep -oE 'v1\.[0-9.]+' | head -1))"
