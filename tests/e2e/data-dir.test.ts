// `tsvirt up --data-dir` in a directory of mode 0700 (what `mktemp -d` makes): QEMU runs as libvirt-qemu and must
// still reach the pod's disks below it, so a VM with an emptyDisk boots (it crash-looped with "Permission denied").
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { test } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { startCluster } from "../lib/up.js";

test("tsvirt up in a 0700 data dir boots a VM with an emptyDisk", { timeout: 600_000 }, async (t) => {
  requirePrereqs(...CLUSTER);
  const c = await startCluster(t, { name: "ddir", dataDirMode: 0o700 });
  // the data dir is opened to QEMU's group for search only: others still get nothing
  assert.equal((await stat(c.dir)).mode & 0o007, 0);
  const vm = c.vm("scratch", { runStrategy: "Always" }) as {
    spec: { template: { spec: { domain: { devices: { disks: object[] } }; volumes: object[] } } };
  };
  vm.spec.template.spec.domain.devices.disks.push({ name: "scratch", disk: { bus: "virtio" } });
  vm.spec.template.spec.volumes.push({ name: "scratch", emptyDisk: { capacity: "64Mi" } });
  await c.apply(vm);
  await c.waitFor("vmi/scratch", "{.status.phase}", "Running", 300_000);
  const con = c.console("scratch");
  await con.expect(new RegExp(c.guest.marker), 300_000);
  // the guest sees the emptyDisk as its second virtio disk
  con.send("cat /sys/block/vdb/size\n");
  await con.expect(/^131072\s*$/m, 60_000);
});
