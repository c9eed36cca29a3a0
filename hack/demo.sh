#!/usr/bin/env bash
# tsvirt's main job on one machine: the embedded all-in-one booting a real VM from a containerDisk.
#   1. installs what is missing (hack/install-deps.sh) and builds tsvirt;
#   2. builds the test guest and pushes it as a containerDisk image to a local registry (docker-registry on loopback);
#   3. starts `tsvirt up` (API server, controller, node agent as separate processes);
#   4. applies a VirtualMachine (runStrategy: Halted), runs `virtctl start`, waits for Running, shows the console command.
# Ctrl+C stops the VM gracefully, then everything. Env: DEMO_DIR (state, default .tmp/demo), DEMO_PORT (6443),
# DEMO_REGISTRY_PORT (5000).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
dir="${DEMO_DIR:-$root/.tmp/demo}"
port="${DEMO_PORT:-6443}"
rport="${DEMO_REGISTRY_PORT:-5000}"
mkdir -p "$dir"

bash hack/install-deps.sh
npm run --silent build

echo "== building the test guest"
bash tests/guest/build.sh >/dev/null
disk="$root/tests/guest/out/disk.qcow2"

echo "== starting a local registry on 127.0.0.1:$rport"
mkdir -p "$dir/registry"
cat >"$dir/registry/config.yml" <<CFG
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/registry/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$rport}
CFG
docker-registry serve "$dir/registry/config.yml" >"$dir/registry/log" 2>&1 &
registry_pid=$!

pids=("$registry_pid")
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "== stopping"
  if [ -n "${up_pid:-}" ]; then kill -INT "$up_pid" 2>/dev/null || true; wait "$up_pid" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup INT TERM EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$rport/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

image="127.0.0.1:$rport/tsvirt/guest:demo"
echo "== pushing the guest as containerDisk $image"
node dist/cmd/tsvirt.js image build --disk "$disk" --push "$image" --cache-dir "$dir/image-build"

echo "== starting tsvirt up (logs in $dir/logs/)"
node dist/cmd/tsvirt.js up --listen "127.0.0.1:$port" --data-dir "$dir/up" &
up_pid=$!
export KUBECONFIG="$dir/up/kubeconfig"
for _ in $(seq 300); do
  [ -f "$KUBECONFIG" ] && kubectl get --raw /readyz >/dev/null 2>&1 && break
  sleep 0.2
done
for _ in $(seq 300); do
  [ "$(kubectl get nodes -o name 2>/dev/null | wc -l)" -ge 1 ] && break
  sleep 0.2
done

cat >"$dir/vm.yaml" <<VM
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: demo
  labels: {kubevirt.io/vm: demo}
spec:
  runStrategy: Halted
  template:
    metadata:
      labels: {kubevirt.io/vm: demo}
    spec:
      domain:
        devices:
          disks:
          - name: containerdisk
            disk: {bus: virtio}
        resources:
          requests: {memory: 128Mi}
      volumes:
      - name: containerdisk
        containerDisk: {image: $image}
VM
echo "== kubectl apply -f $dir/vm.yaml"
kubectl apply -f "$dir/vm.yaml"
kubectl get vm demo
echo "== virtctl start demo"
node dist/cmd/virtctl.js start demo
kubectl wait vm/demo --for=condition=Ready --timeout=300s
kubectl get vm,vmi,pods -o wide
cat <<MSG

The VM is running. In another terminal:
  export KUBECONFIG=$KUBECONFIG
  npx virtctl console demo          # Ctrl+] to leave; the guest prints TSVIRT-GUEST-READY at boot
  npx virtctl stop demo
Press Ctrl+C here to stop the VM and tsvirt.
MSG
wait "$up_pid"
