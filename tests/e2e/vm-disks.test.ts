// Disks that outlive their VM, end to end through `tsvirt up` on real QEMU (issue 11's first "Done when"): a VM whose
// dataVolumeTemplate imports the test guest through the registry list (its first registry down, the second serving)
// goes Provisioning → Running; the guest writes a marker to a second, blank DataVolume; stop/start keeps it;
// `kubectl delete vm` leaves both DataVolumes/claims and the data; `virtctl recover` brings the VM back on the same
// disks (adopted, not re-imported) and the guest reads the marker; a kill -9 of the controller during a second
// deletion still leaves the disks retained (crash cell); deleting the DataVolumes frees the node's space (its
// CSIStorageCapacity goes back up, the volume directories are gone).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { freePort } from "../../images/testing/registry.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { bootedConsole as bootedConsoleOf, readDiskHead } from "../lib/storage.js";
import { type Cluster, type Console, collect, startCluster, until } from "../lib/up.js";

const VM = "diskvm";
const MARK = "TSVIRT-VMDISK-MARK-91c2";
const RETAINED = "tsvirt.io/retained-from-vm";

const readDisk = (con: Console, tag: string) => readDiskHead(con, tag, MARK.length);
const bootedConsole = (c: Cluster) => bootedConsoleOf(c, VM);

function vmWithDisks(c: Cluster): Record<string, unknown> {
  const vm = c.vm(VM, { runStrategy: "Always" }) as {
    spec: {
      dataVolumeTemplates?: unknown[];
      template: { spec: { domain: { devices: { disks: unknown[] } }; volumes: unknown[] } };
    };
  };
  const storage = (size: string) => ({ resources: { requests: { storage: size } } });
  vm.spec.dataVolumeTemplates = [
    {
      metadata: { name: `${VM}-root` },
      spec: { source: { registry: { url: "docker://images.test/tsvirt/guest:e2e" } }, storage: storage("64Mi") },
    },
    { metadata: { name: `${VM}-data` }, spec: { source: { blank: {} }, storage: storage("64Mi") } },
  ];
  vm.spec.template.spec.volumes = [{ name: "containerdisk", dataVolume: { name: `${VM}-root` } }];
  vm.spec.template.spec.domain.devices.disks.push({ name: "data", disk: { bus: "virtio" } });
  vm.spec.template.spec.volumes.push({ name: "data", dataVolume: { name: `${VM}-data` } });
  return vm as unknown as Record<string, unknown>;
}

describe("VM disks through tsvirt up", () => {
  it("registry import → Running; marker on a blank DV; delete keeps the disks; recover; crash cell; space freed", {
    timeout: 900_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "vmd", args: ["--node-storage", "4Gi"] });
    const { kubectl, virtctl } = c;
    const node = c.nodes[0] ?? "";
    const capacity = () =>
      kubectl("get", "csistoragecapacity", "-n", "kubevirt", `tsvirt-local-${node}`, "-o", "jsonpath={.capacity}");
    const freeBefore = await until("the node's CSIStorageCapacity", 60_000, async () => {
      const v = await capacity().catch(() => "");
      return /\d/.test(v) ? v : undefined;
    });

    // The registry list: a mirror that is down (nothing listens on its port) first, the cluster's registry second.
    const dead = await freePort();
    const conf = [
      "[[registry]]",
      'prefix = "images.test/tsvirt"',
      `location = "${c.registry.host}/tsvirt"`,
      "[[registry.mirror]]",
      `location = "127.0.0.1:${dead}/tsvirt"`,
      "",
    ].join("\n");
    await c.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "tsvirt-registries", namespace: "kubevirt" },
      data: { "registries.conf": conf },
    });

    // Watch the list (the VM does not exist yet: a watch of one name would end at once with NotFound).
    const watch = spawn(
      "kubectl",
      ["get", "vm", "--watch", "-o", "custom-columns=N:.metadata.name,S:.status.printableStatus", "--no-headers"],
      { env: c.env, stdio: ["ignore", "pipe", "pipe"] },
    );
    t.after(() => watch.kill("SIGKILL"));
    const watched = collect(watch);
    await c.apply(vmWithDisks(c));
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    await c.waitFor(`vm/${VM}`, "{.status.printableStatus}", "Running", 60_000);
    const ofVm = () =>
      watched.text.split("\n").flatMap((l) => {
        const [n, st] = l.trim().split(/\s+/);
        return n === VM && st && st !== "<none>" ? [st] : [];
      });
    await until("the watch saw Running", 10_000, async () => (ofVm().includes("Running") ? true : undefined));
    watch.kill("SIGKILL");
    const seen = ofVm();
    const statuses = seen.filter((s, i) => s !== seen[i - 1]);
    assert.ok(statuses.includes("Provisioning"), `Provisioning seen: ${statuses.join(" → ")}`);
    assert.ok(
      statuses.indexOf("Provisioning") < statuses.lastIndexOf("Running"),
      `Provisioning → Running: ${statuses.join(" → ")}`,
    );
    for (const dv of [`${VM}-root`, `${VM}-data`]) {
      assert.equal(await kubectl("get", "dv", dv, "-o", "jsonpath={.status.phase}"), "Succeeded");
      assert.equal(
        await kubectl("get", "dv", dv, "-o", "jsonpath={.metadata.ownerReferences[0].kind}"),
        "VirtualMachine",
      );
    }
    const rootUid = await kubectl("get", "dv", `${VM}-root`, "-o", "jsonpath={.metadata.uid}");
    const dataPv = await kubectl("get", "pvc", `${VM}-data`, "-o", "jsonpath={.spec.volumeName}");
    const rootPv = await kubectl("get", "pvc", `${VM}-root`, "-o", "jsonpath={.spec.volumeName}");
    const volDir = (pv: string) => join(c.dir, "nodes", node, "volumes", pv);

    let con = await bootedConsole(c);
    con.send(`echo -n ${MARK} > /dev/vdb && sync && echo WROTE''=ok\n`);
    await con.expect(/WROTE=ok/, 60_000);
    assert.equal(await readDisk(con, "R1"), MARK);
    con.close();

    await virtctl("stop", VM);
    await c.waitFor(`vm/${VM}`, "{.status.printableStatus}", "Stopped", 120_000);
    await kubectl("wait", "--for=delete", `vmi/${VM}`, "--timeout=60s");
    await virtctl("start", VM);
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    con = await bootedConsole(c);
    assert.equal(await readDisk(con, "R2"), MARK, "the marker survived stop/start");
    con.close();

    // ---- delete: the disks stay, released and marked ----
    await kubectl("delete", "vm", VM, "--timeout=120s");
    await kubectl("wait", "--for=delete", `vmi/${VM}`, "--timeout=120s");
    for (const dv of [`${VM}-root`, `${VM}-data`]) {
      assert.equal(
        await kubectl("get", "dv", dv, "-o", `jsonpath={.metadata.labels.tsvirt\\.io/retained-from-vm}`),
        VM,
      );
      assert.equal(await kubectl("get", "dv", dv, "-o", "jsonpath={.metadata.ownerReferences}"), "");
      assert.equal(await kubectl("get", "pvc", dv, "-o", "jsonpath={.status.phase}"), "Bound");
    }
    const fh = await open(join(volDir(dataPv), "disk.img"), "r");
    const buf = Buffer.alloc(MARK.length);
    await fh.read(buf, 0, MARK.length, 0);
    await fh.close();
    assert.equal(buf.toString(), MARK, "the data stays on the node");
    const list = await virtctl("recover", "--list");
    assert.match(list, new RegExp(`${VM}\\s+\\S+\\s+${VM}-data,${VM}-root`));

    // ---- recover: the same disks, adopted (no new import), the marker read back ----
    assert.match(await virtctl("recover", VM), /recovered from its retained disks/);
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    assert.equal(
      await kubectl("get", "dv", `${VM}-root`, "-o", "jsonpath={.metadata.uid}"),
      rootUid,
      "same DataVolume",
    );
    assert.equal(
      await kubectl("get", "dv", `${VM}-root`, "-o", `jsonpath={.metadata.labels}`).then((l) => l.includes(RETAINED)),
      false,
    );
    assert.equal(
      await kubectl("get", "dv", `${VM}-root`, "-o", "jsonpath={.metadata.ownerReferences[0].kind}"),
      "VirtualMachine",
    );
    con = await bootedConsole(c);
    assert.equal(await readDisk(con, "R3"), MARK, "the recovered VM reads the marker");
    con.close();
    await assert.rejects(virtctl("recover", VM), /already exists/, "recover refuses an existing VM");

    // ---- crash cell: kill -9 of the controller during the deletion ----
    await kubectl("delete", "vm", VM, "--wait=false");
    process.kill(await c.pid("controller"), "SIGKILL");
    await until(`vm ${VM} gone`, 180_000, async () =>
      (await kubectl("get", "vm", "-o", "name")).includes(VM) ? undefined : true,
    );
    for (const dv of [`${VM}-root`, `${VM}-data`]) {
      assert.equal(
        await kubectl("get", "dv", dv, "-o", `jsonpath={.metadata.labels.tsvirt\\.io/retained-from-vm}`),
        VM,
      );
    }

    // ---- reclaim: delete the DataVolumes; their claims, PVs and volume dirs go, the space comes back ----
    await kubectl("wait", "--for=delete", `vmi/${VM}`, "--timeout=120s");
    await kubectl("delete", "dv", `${VM}-root`, `${VM}-data`);
    for (const pv of [rootPv, dataPv]) {
      await until(`PV ${pv} gone`, 120_000, async () =>
        (await kubectl("get", "pv", "-o", "name")).includes(pv) ? undefined : true,
      );
      await until(`${volDir(pv)} gone`, 60_000, async () => (existsSync(volDir(pv)) ? undefined : true));
    }
    await until("the node's free space is back", 60_000, async () =>
      (await capacity()) === freeBefore ? true : undefined,
    );
  });
});
