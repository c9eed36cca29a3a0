// Nothing accepted and then ignored: `kubectl apply` of a kind nothing acts on yet prints the API server's Warning,
// and a migration (acted on by the migration controller, which is not running here, so it carries no finalizer)
// gets no Warning and it and its namespace can be deleted.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { type ApiProcess, removeDir, startApiProcess, tempDir } from "../../apiserver/testutil.js";

const run = promisify(execFile);

test("kubectl apply of a stored-but-inert kind prints its Warning; a VMIM and its namespace delete", {
  timeout: 180_000,
}, async (t) => {
  await run("sh", ["-c", "command -v kubectl"]).catch(() => assert.fail("kubectl is not installed (on PATH)"));
  const dir = tempDir("tsvirt-inert-");
  const api: ApiProcess = await startApiProcess(dir);
  t.after(async () => {
    await api.kill();
    removeDir(dir);
  });
  const env = { ...process.env, KUBECONFIG: join(dir, "kubeconfig"), KUBECACHEDIR: join(dir, "cache") };
  const kubectl = async (...args: string[]): Promise<{ out: string; err: string }> => {
    const r = await run("kubectl", args, { env, timeout: 60_000 }).catch((e) => {
      const x = e as { stdout?: string; stderr?: string };
      assert.fail(`kubectl ${args.join(" ")}: ${x.stdout ?? ""}${x.stderr ?? ""}`);
    });
    return { out: r.stdout, err: r.stderr };
  };
  const file = join(dir, "objs.yaml");
  writeFileSync(
    file,
    `apiVersion: v1
kind: Namespace
metadata:
  name: inert
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata:
  name: v
  namespace: inert
spec:
  domain:
    devices: {}
    resources:
      requests:
        memory: 64Mi
---
apiVersion: cdi.kubevirt.io/v1beta1
kind: DataVolume
metadata:
  name: dv
  namespace: inert
spec:
  source:
    registry:
      url: docker://registry.example/disk:1
  storage:
    resources:
      requests:
        storage: 1Gi
---
apiVersion: snapshot.kubevirt.io/v1beta1
kind: VirtualMachineSnapshot
metadata:
  name: snap
  namespace: inert
spec:
  source:
    apiGroup: kubevirt.io
    kind: VirtualMachine
    name: vm
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstanceMigration
metadata:
  name: mig
  namespace: inert
spec:
  vmiName: v
`,
  );
  const applied = await kubectl("apply", "-f", file);
  assert.match(
    applied.err,
    /Warning: snapshot\.kubevirt\.io\/v1beta1 VirtualMachineSnapshot is stored but not acted on yet: no snapshot controller runs in this version/,
  );
  // DataVolumes are acted on (the DataVolume controller): no inert Warning
  assert.doesNotMatch(applied.err, /DataVolume is stored/);
  // the migration controller acts on VMIMs: no inert Warning
  assert.doesNotMatch(applied.err, /VirtualMachineInstanceMigration is stored/);
  assert.doesNotMatch(applied.err, /Warning: .*VirtualMachineInstance is stored/);
  const fin = await kubectl("get", "vmim", "mig", "-n", "inert", "-o", "jsonpath={.metadata.finalizers}");
  assert.equal(fin.out, "");
  // an update answers the warning too
  const labelled = await kubectl("label", "virtualmachinesnapshot", "snap", "-n", "inert", "a=b");
  assert.match(
    labelled.err,
    /Warning: snapshot\.kubevirt\.io\/v1beta1 VirtualMachineSnapshot is stored but not acted on yet/,
  );

  await kubectl("delete", "vmim", "mig", "-n", "inert", "--timeout=30s");
  // only the API server runs here: the VMI's own finalizer is the (absent) controller's to remove
  await kubectl(
    "patch",
    "vmi",
    "v",
    "-n",
    "inert",
    "--type=json",
    "-p",
    '[{"op":"remove","path":"/metadata/finalizers"}]',
  );
  await kubectl("delete", "namespace", "inert", "--timeout=60s");
  const left = await run("kubectl", ["get", "namespace", "inert"], { env }).then(
    (r) => r.stdout,
    (e) => (e as { stderr: string }).stderr,
  );
  assert.match(left, /NotFound/);
});
