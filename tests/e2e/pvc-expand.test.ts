// Claims that grow, Block claims, and a claim that fits nowhere, end to end through `tsvirt up --node-storage` on
// real QEMU. One VM has two claims: `data` (Filesystem, disk.img) as vdb and `blk` (Block, a loop device) as vdc.
// Both are expanded while the guest runs and the guest's /sys/block/vdX/size shows the new sizes (libvirt block
// resize in the launcher); a shrink is refused (422) and a growth past the node's room gets VolumeResizeFailed with
// the size kept; an expansion made while the node agent is kill -9'd converges once it is back. The guest writes a
// marker on the Block disk and reads it back after stop/start. A claim too large
// for any node stays Pending with a ProvisioningFailed event, no PV, and no file on the node.
import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { type Console, startCluster, stopStart, until } from "../lib/up.js";

const VM = "growvm";
const MARK = "TSVIRT-BLOCK-MARK-51c2";
const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** Runs a shell expression in the guest and returns what it printed between the tag's brackets. */
async function ask(con: Console, tag: string, expr: string, timeoutMs = 60_000): Promise<string> {
  const from = con.out.text.length;
  // The tag is split in the typed line (TAG''=) so the console's echo of the command never matches.
  con.send(`echo ${tag}''=[${expr}]\n`);
  const re = new RegExp(`${tag}=\\[([^\\]\\r\\n]*)\\]`);
  return until(`${tag} on the console`, timeoutMs, async () => re.exec(con.out.text.slice(from))?.[1]);
}

/** The guest's view of a disk's size in bytes, polled until it is `want` (bounded). */
async function guestSees(con: Console, dev: string, want: number, tag: string): Promise<void> {
  let last = "";
  for (let i = 0; i < 30; i++) {
    last = await ask(con, `${tag}${i}`, `$(cat /sys/block/${dev}/size)`);
    if (Number(last) * 512 === want) return;
    await new Promise((r) => setTimeout(r, 2_000));
  }
  assert.fail(`the guest's ${dev} has ${Number(last) * 512} bytes, not ${want}`);
}

function claim(name: string, size: string, mode: "Filesystem" | "Block") {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, namespace: "default" },
    spec: {
      storageClassName: "tsvirt-local",
      accessModes: ["ReadWriteOnce"],
      volumeMode: mode,
      resources: { requests: { storage: size } },
    },
  };
}

describe("tsvirt-local claims: online expansion, Block mode, too large", () => {
  it("grows a running guest's Filesystem and Block claims, keeps Block data across stop/start, and leaves a too-large claim Pending", {
    timeout: 900_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "grow", args: ["--node-storage", "4Gi"] });
    const { kubectl, guest } = c;
    const node = c.nodes[0] ?? "";
    const volumesDir = join(c.dir, "nodes", node, "volumes");
    const events = async (name: string) =>
      kubectl(
        "get",
        "events",
        "--field-selector",
        `involvedObject.name=${name}`,
        "-o",
        'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}',
      );

    // ---- a claim no node can hold, with a consumer: Pending, an event that says why, nothing on the node ----
    await c.apply(claim("huge", "100Gi", "Filesystem"));
    const big = c.vm("bigvm", { runStrategy: "Always" }) as {
      spec: { template: { spec: { domain: { devices: { disks: unknown[] } }; volumes: unknown[] } } };
    };
    big.spec.template.spec.domain.devices.disks.push({ name: "huge", disk: { bus: "virtio" } });
    big.spec.template.spec.volumes.push({ name: "huge", persistentVolumeClaim: { claimName: "huge" } });
    await c.apply(big);
    const why = await until("the huge claim's ProvisioningFailed event", 60_000, async () => {
      const ev = await events("huge");
      return /ProvisioningFailed: requested 100Gi fits no node: \S+ has 4Gi free/.test(ev) ? ev : undefined;
    });
    assert.match(why, /fits no node/);
    assert.equal(await kubectl("get", "pvc", "huge", "-o", "jsonpath={.status.phase}"), "Pending");
    assert.equal(await kubectl("get", "pvc", "huge", "-o", "jsonpath={.spec.volumeName}"), "", "no volume bound");
    assert.equal(await kubectl("get", "pv", "-o", "name"), "", "no PV made");
    assert.deepEqual(await readdir(volumesDir).catch(() => []), [], "no byte written on the node");
    await kubectl("delete", "vm", "bigvm");
    await kubectl("delete", "pvc", "huge");

    // ---- one VM, a Filesystem claim (vdb) and a Block claim (vdc) ----
    await c.apply(claim("data", "1Gi", "Filesystem"));
    await c.apply(claim("blk", "256Mi", "Block"));
    const vm = c.vm(VM, { runStrategy: "Always" }) as typeof big;
    vm.spec.template.spec.domain.devices.disks.push(
      { name: "data", disk: { bus: "virtio" } },
      { name: "blk", disk: { bus: "virtio" } },
    );
    vm.spec.template.spec.volumes.push(
      { name: "data", persistentVolumeClaim: { claimName: "data" } },
      { name: "blk", persistentVolumeClaim: { claimName: "blk" } },
    );
    await c.apply(vm);
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    const dataPv = await kubectl("get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}");
    const blkPv = await kubectl("get", "pvc", "blk", "-o", "jsonpath={.spec.volumeName}");
    assert.equal(await kubectl("get", "pv", blkPv, "-o", "jsonpath={.spec.volumeMode}"), "Block");
    let con = c.console(VM);
    await con.expect(new RegExp(guest.marker), 300_000);
    con.send("\n");
    await guestSees(con, "vdb", GiB, "S1-");
    await guestSees(con, "vdc", 256 * MiB, "S2-");

    // Block: the guest writes a raw marker on its device.
    con.send(`echo -n ${MARK} > /dev/vdc && sync && echo WROTE''=ok\n`);
    await con.expect(/WROTE=ok/, 60_000);

    // ---- online expansion of both ----
    const request = (name: string, size: string) =>
      kubectl(
        "patch",
        "pvc",
        name,
        "--type",
        "merge",
        "-p",
        JSON.stringify({ spec: { resources: { requests: { storage: size } } } }),
      );
    const shrink = await request("data", "512Mi").then(
      () => "accepted",
      (e: Error) => e.message,
    );
    assert.match(shrink, /field can not be less than previous value/, "a claim never shrinks");
    const t0 = Date.now();
    const growTo: [string, string][] = [
      ["data", "2Gi"],
      ["blk", "512Mi"],
    ];
    for (const [name, size] of growTo) await request(name, size);
    await c.waitFor("pvc/data", "{.status.capacity.storage}", "2Gi", 60_000);
    await c.waitFor("pvc/blk", "{.status.capacity.storage}", "512Mi", 60_000);
    assert.equal(await kubectl("get", "pvc", "data", "-o", "jsonpath={.status.conditions}"), "", "Resizing is over");
    assert.match(await events("data"), /Resizing: External resizer is resizing volume/);
    assert.match(await events("data"), /VolumeResizeSuccessful/);
    assert.equal((await stat(join(volumesDir, dataPv, "disk.img"))).size, 2 * GiB, "disk.img grew");
    assert.equal((await stat(join(volumesDir, blkPv, "disk.img"))).size, 512 * MiB, "the loop device's file grew");
    await guestSees(con, "vdb", 2 * GiB, "G1-");
    await guestSees(con, "vdc", 512 * MiB, "G2-");
    t.diagnostic(`request → guest sees both new sizes: ${Date.now() - t0} ms`);
    assert.match(await events(VM), /VolumeResized/);

    // Growth past the node's room: refused with an event, the claim keeps its size.
    await request("data", "10Gi");
    const failed = await until("VolumeResizeFailed", 60_000, async () => {
      const ev = await events("data");
      return /VolumeResizeFailed/.test(ev) ? ev : undefined;
    });
    assert.match(
      failed,
      /needs 8Gi more on node "[^"]+", which has 1536Mi of local storage free; the claim keeps its size/,
    );
    assert.equal(await kubectl("get", "pvc", "data", "-o", "jsonpath={.status.capacity.storage}"), "2Gi");
    assert.equal(await kubectl("get", "pv", dataPv, "-o", "jsonpath={.spec.capacity.storage}"), "2Gi");

    // kill -9 of the node agent, and the expansion arrives while it is down: the restarted agent grows the loop
    // device's file, reports it, and (remembering nothing) compares the guest's disks anew. The console goes through
    // the agent, so a new one is opened once it is back.
    con.close();
    const agent = `handler-${node}`;
    const oldPid = await c.pid(agent);
    process.kill(oldPid, "SIGKILL");
    await request("blk", "768Mi");
    await until("the node agent restarted", 120_000, async () => ((await c.pid(agent)) !== oldPid ? true : undefined));
    await c.waitFor("pvc/blk", "{.status.capacity.storage}", "768Mi", 120_000);
    con = c.console(VM);
    con.send("\n");
    await guestSees(con, "vdc", 768 * MiB, "K1-");
    con.close();

    // ---- the Block disk's bytes survive stop/start ----
    con = await stopStart(c, VM);
    assert.equal(
      await ask(con, "R1", `$(head -c ${MARK.length} /dev/vdc | tr -c 'A-Za-z0-9-' '.')`),
      MARK,
      "the Block disk kept its bytes",
    );
    await guestSees(con, "vdc", 768 * MiB, "B1-");
    con.close();
  });
});
