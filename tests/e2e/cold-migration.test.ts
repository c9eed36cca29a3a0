// Cold migration end to end through `tsvirt up --nodes 2` on real QEMU (issue 12's cold-migration "Done when"): a VM
// with a 1 GiB local DataVolume on node01 writes a marker from the guest, is stopped, and a
// VirtualMachineInstanceMigration of the stopped VM moves it: a clone DataVolume on node02 (streamed between the
// nodes, verified by sha256), the VM's volume and dataVolumeTemplate swapped, node01's copy released (its PV and
// volume directory gone). Started, the VM runs on node02 and the guest reads the marker. Crash cell: moving it back,
// the controller is killed with SIGKILL mid-clone; the migration still ends Succeeded and the VM boots on node01 with
// the same bytes.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { bootedConsole as bootedConsoleOf, readDiskHead, volumeFile } from "../lib/storage.js";
import { type Cluster, type Console, startCluster, until } from "../lib/up.js";

const VM = "coldvm";
const MARK = "TSVIRT-COLDMIG-MARK-5e17";
const MiB = 2 ** 20;
const SIZE = 1024 * MiB;

async function sha256(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

const readDisk = (con: Console, tag: string) => readDiskHead(con, tag, MARK.length);
const bootedConsole = (c: Cluster) => bootedConsoleOf(c, VM);

/** The VM's `data` volume: its claim, and where the claim's bytes are. */
async function dataDisk(c: Cluster): Promise<{ claim: string; pv: string; node: string; image: string }> {
  const claim = await c.kubectl(
    "get",
    "vm",
    VM,
    "-o",
    `jsonpath={.spec.template.spec.volumes[?(@.name=="data")].dataVolume.name}`,
  );
  return { claim, ...(await volumeFile(c, claim)) };
}

function migration(name: string, node: string): unknown {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceMigration",
    metadata: { name, namespace: "default" },
    spec: { vmiName: VM, addedNodeSelector: { "kubernetes.io/hostname": node } },
  };
}

async function stop(c: Cluster): Promise<void> {
  await c.virtctl("stop", VM);
  await c.waitFor(`vm/${VM}`, "{.status.printableStatus}", "Stopped", 120_000);
  await c.kubectl("wait", "--for=delete", `vmi/${VM}`, "--timeout=120s");
}

describe("cold migration of a stopped VM", () => {
  it("its 1 GiB local disk moves to node02 (verified), the VM boots there with its data; node01's copy goes; crash cell", {
    timeout: 1_500_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "cold", nodes: 2, args: ["--node-storage", "4Gi"] });
    const [n1 = "", n2 = ""] = c.nodes;
    const { kubectl, virtctl } = c;

    const vm = c.vm(VM, { runStrategy: "Always" }) as {
      spec: {
        dataVolumeTemplates?: unknown[];
        template: { spec: { domain: { devices: { disks: unknown[] } }; volumes: unknown[] } };
      };
    };
    vm.spec.dataVolumeTemplates = [
      {
        metadata: { name: `${VM}-data`, annotations: { "volume.kubernetes.io/selected-node": n1 } },
        spec: { source: { blank: {} }, storage: { resources: { requests: { storage: "1Gi" } } } },
      },
    ];
    vm.spec.template.spec.domain.devices.disks.push({ name: "data", disk: { bus: "virtio" } });
    vm.spec.template.spec.volumes.push({ name: "data", dataVolume: { name: `${VM}-data` } });
    await c.apply(vm);
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    assert.equal(await kubectl("get", "vmi", VM, "-o", "jsonpath={.status.nodeName}"), n1);
    let con = await bootedConsole(c);
    con.send(`echo -n ${MARK} > /dev/vdb && sync && echo WROTE''=ok\n`);
    await con.expect(/WROTE=ok/, 60_000);
    con.close();
    await stop(c);

    // More data behind the marker (written into the volume while the VM is stopped), so the stream takes a while.
    const old = await dataDisk(c);
    assert.equal(old.node, n1);
    const fh = await open(old.image, "r+");
    try {
      for (let at = 64 * MiB; at < 576 * MiB; at += 64 * MiB) await fh.write(randomBytes(32 * MiB), 0, 32 * MiB, at);
      await fh.write(randomBytes(4096), 0, 4096, SIZE - 4096);
      await fh.sync();
    } finally {
      await fh.close();
    }
    const want = await sha256(old.image);

    // ---- the move: a VMIM of the stopped VM (cold: labelled by admission) ----
    const t0 = Date.now();
    await c.apply(migration("cold1", n2));
    assert.equal(
      await kubectl("get", "vmim", "cold1", "-o", `jsonpath={.metadata.labels.tsvirt\\.io/migration-mode}`),
      "Cold",
    );
    await c.waitFor("vmim/cold1", "{.status.phase}", "Succeeded", 600_000);
    const coldMs = Date.now() - t0;
    // where the time went (phases; the clone's retries and its last Running condition)
    t.diagnostic(
      `cold1 phases ${await kubectl("get", "vmim", "cold1", "-o", "jsonpath={.status.phaseTransitionTimestamps}")}`,
    );
    assert.equal(await kubectl("get", "vmim", "cold1", "-o", "jsonpath={.status.migrationState.targetNode}"), n2);
    const moved = await dataDisk(c);
    assert.notEqual(moved.claim, old.claim);
    t.diagnostic(
      `clone ${moved.claim}: ${await kubectl("get", "dv", moved.claim, "-o", "jsonpath={.status.restartCount} {.status.conditions}")}`,
    );
    assert.equal(moved.node, n2, "the VM's data volume is on node02 now");
    assert.equal(await sha256(moved.image), want, "the bytes on node02 equal node01's");
    assert.equal(
      await kubectl("get", "vm", VM, "-o", "jsonpath={.spec.dataVolumeTemplates[0].metadata.name}"),
      moved.claim,
    );
    assert.equal(
      await kubectl(
        "get",
        "vm",
        VM,
        "-o",
        "jsonpath={.status.volumeUpdateState.volumeMigrationState.migratedVolumes[0].sourcePVCInfo.claimName}",
      ),
      old.claim,
    );
    // the VM stays stopped: node01's copy is released right after the verified swap
    await until(`PV ${old.pv} gone`, 120_000, async () =>
      (await kubectl("get", "pv", "-o", "name")).includes(old.pv) ? undefined : true,
    );
    await until("node01's volume directory gone", 60_000, async () =>
      existsSync(join(c.dir, "nodes", n1, "volumes", old.pv)) ? undefined : true,
    );
    const dvs = (await kubectl("get", "dv", "-o", "name")).split("\n");
    assert.ok(!dvs.includes(`datavolume.cdi.kubevirt.io/${old.claim}`), `old DataVolume gone: ${dvs.join(" ")}`);
    await until("the VMIM's finalizer off", 60_000, async () =>
      (await kubectl("get", "vmim", "cold1", "-o", "jsonpath={.metadata.finalizers}")) === "" ? true : undefined,
    );

    // ---- started: it runs on node02 and reads the marker ----
    await virtctl("start", VM);
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    assert.equal(await kubectl("get", "vmi", VM, "-o", "jsonpath={.status.nodeName}"), n2);
    con = await bootedConsole(c);
    assert.equal(await readDisk(con, "R1"), MARK, "the moved VM reads its marker on node02");
    con.close();
    await stop(c);
    const want2 = await sha256(moved.image);

    // ---- crash cell: moving it back, the controller killed mid-clone ----
    await c.apply(migration("cold2", n1));
    const uid = await until("cold2's uid", 30_000, async () => {
      const u = await kubectl("get", "vmim", "cold2", "-o", "jsonpath={.metadata.uid}");
      return u || undefined;
    });
    const cloneName = await until("the clone DataVolume", 120_000, async () => {
      const names = await kubectl("get", "dv", "-l", `tsvirt.io/cold-migration-uid=${uid}`, "-o", "name");
      return names.trim() || undefined;
    });
    const phase = await kubectl("get", cloneName, "-o", "jsonpath={.status.phase}");
    process.kill(await c.pid("controller"), "SIGKILL");
    t.diagnostic(`controller killed while ${cloneName} was ${phase || "new"}`);
    await c.waitFor("vmim/cold2", "{.status.phase}", "Succeeded", 600_000);
    const back = await dataDisk(c);
    // where the time went: the clone's retries after the crash and its last Running condition
    t.diagnostic(
      `clone ${back.claim}: ${await kubectl("get", "dv", back.claim, "-o", "jsonpath={.status.restartCount} {.status.conditions}")}`,
    );
    assert.equal(back.node, n1, "back on node01");
    assert.equal(await sha256(back.image), want2, "the bytes survived the crash");
    await until(`PV ${moved.pv} gone`, 120_000, async () =>
      (await kubectl("get", "pv", "-o", "name")).includes(moved.pv) ? undefined : true,
    );
    await virtctl("start", VM);
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    assert.equal(await kubectl("get", "vmi", VM, "-o", "jsonpath={.status.nodeName}"), n1);
    con = await bootedConsole(c);
    assert.equal(await readDisk(con, "R2"), MARK, "after the crashed move the VM reads its marker on node01");
    con.close();
    t.diagnostic(`cold migration of the 1 GiB disk (256 MiB of data): ${coldMs} ms`);
  });
});
