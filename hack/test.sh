#!/usr/bin/env bash
# The one test command (README and .ci/run both call it): lint, typecheck, then every *.test.ts.
#   --unit   skip tests/e2e and tests/integration (fast inner loop)
#   FILES…   run only these test files (lint and typecheck still run unless SKIP_CHECKS=1)
# Every prerequisite (root, kubectl >= 1.29, QEMU >= 9, libvirtd, docker-registry, skopeo, ../shared, …: the list is
# tests/lib/prereqs.ts) is checked first: a missing one fails the run at once with one line naming it. Tests never
# skip: SKIP_PREREQS=1 (inner loop) only drops this up-front check, a suite that needs the tool still fails.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=0
files=()
for a in "$@"; do
  case "$a" in
    --unit) unit=1 ;;
    *) files+=("$a") ;;
  esac
done
# On a fresh machine this one command also installs what the tests need (a no-op once installed).
if [ "${SKIP_INSTALL:-0}" != 1 ] && [ "${SKIP_CHECKS:-0}" != 1 ]; then bash hack/install-deps.sh; fi
if [ "${SKIP_PREREQS:-0}" != 1 ] && ! why="$(node --import tsx tests/lib/prereqs.ts 2>&1)"; then
  echo "test.sh: ${why:-prerequisite check failed}" >&2
  exit 1
fi
# Lint, typecheck and the build (entry points run compiled JavaScript from dist/, so e2e tests need a fresh one) are
# independent: they run side by side (CI has 2 cores), each one's output printed whole once all are done.
out="$(mktemp -d)"
step() {
  local name="$1"
  shift
  ("$@" >"$out/$name" 2>&1; echo $? >"$out/$name.rc") &
}
steps=(build)
if [ "${SKIP_CHECKS:-0}" != 1 ]; then
  steps=(lint typecheck build)
  step lint npx biome ci .
  step typecheck npx tsc --noEmit -p tsconfig.json
fi
step build npx tsc -p tsconfig.build.json
wait
failed=0
for s in "${steps[@]}"; do
  echo "== $s"
  cat "$out/$s"
  [ "$(cat "$out/$s.rc" 2>/dev/null)" = 0 ] || failed=1
done
rm -rf "$out"
[ "$failed" = 0 ] || exit 1
if [ ${#files[@]} -eq 0 ]; then
  dirs=(api apiserver client controller handler launcher virtctl images storage lib cmd bench)
  [ "$unit" = 1 ] || dirs+=(tests)
  existing=()
  for d in "${dirs[@]}"; do [ -d "$d" ] && existing+=("$d"); done
  mapfile -t files < <(find "${existing[@]}" -name '*.test.ts' -not -path '*/node_modules/*' | sort)
fi
echo "== test (${#files[@]} files)"
exec node --import tsx --test --test-reporter=spec --test-concurrency="${TEST_CONCURRENCY:-1}" "${files[@]}"
