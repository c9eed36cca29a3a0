// A disk that lives, end to end through `tsvirt up --node-storage` on real QEMU: a tsvirt-local claim (1Gi,
// Filesystem) is provisioned on the node the VM's launcher pod is scheduled to, the node agent makes its sparse
// disk.img, the guest sees it as its second disk and writes a marker; the bytes survive stop/start and the VM's
// deletion (the claim and its data stay); deleting the claim removes the PV and the node's volume directory.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { type Console, startCluster, stopStart, until } from "../lib/up.js";

const VM = "pvcvm";
const CLAIM = "data";
const MARK = "TSVIRT-PVC-MARK-7f3a";

/** Reads what the guest's /dev/vdb starts with, over the serial console. */
async function readDisk(con: Console, tag: string): Promise<string> {
  const from = con.out.text.length;
  // The tag is split in the typed line (TAG''=) so the console's echo of the command never matches.
  con.send(`echo ${tag}''=[$(head -c ${MARK.length} /dev/vdb | tr -c 'A-Za-z0-9-' '.')]\n`);
  const re = new RegExp(`${tag}=\\[([^\\]\\r\\n]*)\\]`);
  return until(`${tag} on the console`, 60_000, async () => re.exec(con.out.text.slice(from))?.[1]);
}

describe("tsvirt-local claims reach the guest and outlive its VM", () => {
  it("PVC as a second disk: write, stop/start, read back; VM deleted keeps it; PVC deleted frees it", {
    timeout: 600_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "pvc", args: ["--node-storage", "4Gi"] });
    const { kubectl, guest } = c;
    const node = c.nodes[0] ?? "";
    assert.equal(
      await kubectl("get", "node", node, "-o", "jsonpath={.status.allocatable.tsvirt\\.io/local-storage}"),
      String(4 * 2 ** 30),
      "the node offers --node-storage",
    );
    await c.apply({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: CLAIM, namespace: "default" },
      spec: {
        storageClassName: "tsvirt-local",
        accessModes: ["ReadWriteOnce"],
        volumeMode: "Filesystem",
        resources: { requests: { storage: "1Gi" } },
      },
    });
    // WaitForFirstConsumer: no PV before a pod uses the claim.
    assert.equal(await kubectl("get", "pvc", CLAIM, "-o", "jsonpath={.status.phase}"), "Pending");
    const vm = c.vm(VM, { runStrategy: "Always" }) as {
      spec: { template: { spec: { domain: { devices: { disks: unknown[] } }; volumes: unknown[] } } };
    };
    vm.spec.template.spec.domain.devices.disks.push({ name: "data", disk: { bus: "virtio" } });
    vm.spec.template.spec.volumes.push({ name: "data", persistentVolumeClaim: { claimName: CLAIM } });
    await c.apply(vm);
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    await c.waitFor(`pvc/${CLAIM}`, "{.status.phase}", "Bound", 30_000);
    const pv = await kubectl("get", "pvc", CLAIM, "-o", "jsonpath={.spec.volumeName}");
    const pod = JSON.parse(await kubectl("get", "pods", "-l", `vm.kubevirt.io/name=${VM}`, "-o", "json")) as {
      items: { spec: { volumes?: { persistentVolumeClaim?: { claimName: string } }[] } }[];
    };
    assert.deepEqual(
      pod.items[0]?.spec.volumes?.map((v) => v.persistentVolumeClaim?.claimName),
      [CLAIM],
      "the launcher pod lists the claim (the scheduler's volume binding reads it)",
    );
    const volDir = join(c.dir, "nodes", node, "volumes", pv);
    const image = join(volDir, "disk.img");
    const st = await stat(image);
    assert.equal(st.size, 2 ** 30, "disk.img has the claim's size");
    assert.ok(st.blocks * 512 < 64 * 2 ** 20, "sparse");

    let con = c.console(VM);
    await con.expect(new RegExp(guest.marker), 300_000);
    con.send("\n");
    con.send(`echo -n ${MARK} > /dev/vdb && sync && echo WROTE''=ok\n`);
    await con.expect(/WROTE=ok/, 60_000);
    assert.equal(await readDisk(con, "R1"), MARK);
    con.close();

    con = await stopStart(c, VM);
    assert.equal(await readDisk(con, "R2"), MARK, "the bytes survived stop/start");
    con.close();

    await kubectl("delete", "vm", VM);
    assert.equal(await kubectl("get", "pvc", CLAIM, "-o", "jsonpath={.status.phase}"), "Bound", "the claim stays");
    const fh = await open(image, "r");
    const buf = Buffer.alloc(MARK.length);
    await fh.read(buf, 0, MARK.length, 0);
    await fh.close();
    assert.equal(buf.toString(), MARK, "the data stays on the node after the VM is deleted");

    await kubectl("delete", "pvc", CLAIM);
    await until(`PV ${pv} gone`, 60_000, async () =>
      (await kubectl("get", "pv", "-o", "name")).includes(pv) ? undefined : true,
    );
    assert.equal(existsSync(volDir), false, "the node's volume directory is gone");
  });
});
