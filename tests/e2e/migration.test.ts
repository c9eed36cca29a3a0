// Live migration end to end, through `tsvirt up --nodes 2` with real QEMU: a guest counting in memory (/dev/shm)
// moves to the other node via `virtctl migrate` (the migration controller makes the target pod, the node agents
// prepare the target, drive libvirt's migration over the nodes' fabric and hand the VMI over), then back. Each time:
// the same boot (boot_id) and the counter continues, the VMI reports the target node, its IP and
// migrationState.completed, the console answers through the new node, and nothing of the VM is left on the source
// node (no QEMU, no process of the pod, no pod dir, netns or launcher socket).
// The guest also writes to a node-local disk (a blank DataVolume from a dataVolumeTemplate, tsvirt-local): a marker,
// then a line every half second. The disk moves with it (issue 12 item 4: a new claim `<claim>-m<hash>` on the target,
// block-copied in the same libvirt job; the VM's and the VMI's volumes name it after, status.migratedVolumes records
// old → new) and the old claim, its PV and its directory on the source node are gone; after the page cache is
// dropped the guest reads the marker and every line back from the moved disk. A second node-local disk in Block mode
// (volumeMode: Block: a loop device over the volume file, owned by QEMU's user) gets the same lines and moves the
// same way: the target agent prepares the new claim's loop device at full size before the stream, the domain's disk
// names the target's device, the data reads back after each move, and the source node's loop device is released
// (`losetup -a` lists none over the old volume). While the disks move, the VMI carries KubeVirt's VolumesChange
// condition; once the old disks are released its status.migratedVolumes and the condition are gone (KubeVirt's).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile, readlink, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { podNetns } from "../../handler/network/index.js";
import { podDirOf } from "../../handler/processes.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { volumeFile } from "../lib/storage.js";
import {
  askGuest as ask,
  type Cluster,
  netnsLink,
  qemuFor,
  startCluster,
  startCounting,
  until,
  vmiPods,
} from "../lib/up.js";

const VM = "mig1";
const MARK = "TSVIRT-LIVEMIG-MARK-7c41";
/** The guest's line k lives in 16-byte block LINE0 + k of /dev/vdb (the marker is at 0). */
const LINE0 = 16;

/** The VM's volume's claim (`data`: Filesystem, `blk`: Block), as the VM and the VMI name it. */
async function dataClaims(c: Cluster, volume = "data"): Promise<{ vm: string; vmi: string }> {
  const jp = `jsonpath={.spec.template.spec.volumes[?(@.name=="${volume}")].dataVolume.name}`;
  return {
    vm: await c.kubectl("get", "vm", VM, "-o", jp),
    vmi: await c.kubectl("get", "vmi", VM, "-o", `jsonpath={.spec.volumes[?(@.name=="${volume}")].dataVolume.name}`),
  };
}

/** The host's loop devices backed by `image` (`losetup -a`: "/dev/loopN: [dev]:ino (/path/disk.img)"). */
async function loopsOver(image: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)("losetup", ["-a"]);
  return stdout
    .split("\n")
    .filter((l) => l.includes(image))
    .map((l) => l.split(":")[0] ?? "");
}

/** The guest's check of a disk: the marker, the lines so far (a sample of them), first bad line (0: none). */
function diskCheck(dev: string): string {
  return `n=$(cat /dev/shm/lines); sync; echo 3 > /proc/sys/vm/drop_caches; m=$(head -c ${MARK.length} ${dev}); bad=0; s=$((n/40+1)); j=1; while [ $j -lt $n ]; do [ "$(dd if=${dev} bs=16 skip=$((j+${LINE0})) count=1 2>/dev/null | head -n1)" = "L$j" ] || { bad=$j; break; }; [ $j -lt $((n-s)) ] && j=$((j+s)) || j=$((j+1)); done; echo "$m $n $bad"`;
}

/** The VMI's Running launcher pods. */
const launcherPods = async (c: Cluster, vmiUid: string) =>
  (await vmiPods(c, vmiUid)).filter((p) => p.phase === "Running");

async function processesMentioning(text: string): Promise<number[]> {
  const out: number[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const cmd = await readFile(`/proc/${d}/cmdline`, "utf8").catch(() => "");
    if (cmd.includes(text)) out.push(Number(d));
  }
  return out;
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

describe("live migration (tsvirt up --nodes 2)", async () => {
  it("moves a running guest to the other node and back: same boot, counter continues, source left clean", {
    timeout: 1_800_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { nodes: 2, name: "mig" });
    const vm = c.vm(VM, { runStrategy: "Always", memory: "128Mi" }) as {
      spec: {
        dataVolumeTemplates?: unknown[];
        template: { spec: { domain: { devices: { disks: unknown[] } }; volumes: unknown[] } };
      };
    };
    vm.spec.dataVolumeTemplates = [
      {
        metadata: { name: `${VM}-data`, annotations: { "volume.kubernetes.io/selected-node": c.nodes[0] } },
        spec: { source: { blank: {} }, storage: { resources: { requests: { storage: "256Mi" } } } },
      },
      {
        metadata: { name: `${VM}-blk`, annotations: { "volume.kubernetes.io/selected-node": c.nodes[0] } },
        spec: {
          source: { blank: {} },
          storage: { volumeMode: "Block", resources: { requests: { storage: "64Mi" } } },
        },
      },
    ];
    vm.spec.template.spec.domain.devices.disks.push({ name: "data", disk: { bus: "virtio" } });
    vm.spec.template.spec.volumes.push({ name: "data", dataVolume: { name: `${VM}-data` } });
    vm.spec.template.spec.domain.devices.disks.push({ name: "blk", disk: { bus: "virtio" } });
    vm.spec.template.spec.volumes.push({ name: "blk", dataVolume: { name: `${VM}-blk` } });
    await c.apply(vm);
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    // a VMI on a node-local disk is live-migratable, by block migration
    await c.waitFor(`vmi/${VM}`, `{.status.conditions[?(@.type=="LiveMigratable")].status}`, "True", 60_000);
    await c.waitFor(`vmi/${VM}`, "{.status.migrationMethod}", "BlockMigration", 60_000);
    const uid = await c.kubectl("get", "vmi", VM, "-o", "jsonpath={.metadata.uid}");
    let con = c.console(VM);
    const counting = await startCounting(c, con);
    const bootId = counting.bootId;
    let last = counting.count;
    // the disks (vdb: Filesystem, vdc: Block): the marker (synced), then line k into block LINE0+k every half
    // second (k in /dev/shm/lines)
    assert.equal(await ask(con, `echo -n ${MARK} > /dev/vdb && echo -n ${MARK} > /dev/vdc && sync && echo ok`), "ok");
    con.send(
      `(k=0; while :; do k=$((k+1)); for d in /dev/vdb /dev/vdc; do echo L$k | dd of=$d bs=16 seek=$((k+${LINE0})) conv=notrunc 2>/dev/null; done; echo $k > /dev/shm/lines; sleep 0.5; done) >/dev/null 2>&1 &\n`,
    );

    for (const round of [1, 2]) {
      const [src] = await launcherPods(c, uid);
      assert.ok(src, "one running launcher pod");
      const from = src.node;
      const to = c.nodes.find((n) => n !== from) as string;
      const before = await dataClaims(c);
      assert.equal(before.vm, before.vmi);
      const oldDisk = await volumeFile(c, before.vm);
      assert.equal(oldDisk.node, from, "the data disk is on the source node");
      const blkBefore = await dataClaims(c, "blk");
      const oldBlk = await volumeFile(c, blkBefore.vm);
      assert.equal(oldBlk.node, from, "the Block disk is on the source node");
      assert.equal((await loopsOver(oldBlk.image)).length, 1, "the Block disk's loop device on the source");
      con.close();
      const started = Date.now();
      await c.virtctl("migrate", VM);
      // KubeVirt's condition while the volumes move (set with the record, before the target pod)
      await c.waitFor(`vmi/${VM}`, `{.status.conditions[?(@.type=="VolumesChange")].status}`, "True", 120_000);
      await c.waitFor(`vmi/${VM}`, "{.status.migrationState.completed}", "true", 600_000);
      await c.waitFor(`vmi/${VM}`, "{.status.nodeName}", to, 120_000);
      const vmim = await until("the migration Succeeded", 120_000, async () => {
        const l = await c.getJson<{ items: { metadata: { name: string }; status?: { phase?: string } }[] }>("vmim");
        const done = l.items.filter((m) => m.status?.phase === "Succeeded");
        return done.length === round ? done : undefined;
      });
      assert.equal(vmim.length, round);
      t.diagnostic(`round ${round}: ${from} → ${to} in ${Date.now() - started} ms (virtctl migrate → completed)`);
      const vmi = await c.getJson<{
        metadata: { labels?: Record<string, string> };
        status: {
          nodeName: string;
          phase: string;
          interfaces?: { ipAddress?: string }[];
          migrationState: Record<string, unknown>;
        };
      }>("vmi", VM);
      assert.equal(vmi.status.phase, "Running");
      assert.equal(vmi.metadata.labels?.["kubevirt.io/nodeName"], to);
      assert.equal(vmi.status.migrationState.sourceNode, from);
      assert.equal(vmi.status.migrationState.targetNode, to);
      assert.ok(vmi.status.migrationState.startTimestamp && vmi.status.migrationState.endTimestamp);
      assert.ok(vmi.status.migrationState.targetNodeDomainReadyTimestamp);
      assert.notEqual(vmi.status.migrationState.failed, true);

      // The source pod goes (controller), and with it everything of the VM on the source node.
      await until(`source pod ${src.name} gone`, 120_000, async () =>
        (await c.kubectl("get", "pod", src.name).catch(() => "gone")) === "gone" ? true : undefined,
      );
      const [dst] = await launcherPods(c, uid);
      assert.ok(dst && dst.node === to, `the launcher pod runs on ${to}`);
      assert.equal(vmi.status.interfaces?.[0]?.ipAddress, dst.ip, "the VMI's IP is the target pod's");
      const fromDir = join(c.dir, "nodes", from);
      await until(`nothing of the VM left on ${from}`, 60_000, async () => {
        const srcDir = podDirOf(fromDir, src.uid);
        const left = [
          ...(await processesMentioning(srcDir)).map((p) => `process ${p} of the source pod`),
          ...((await exists(srcDir)) ? [`pod dir ${srcDir}`] : []),
          ...((await exists(`/run/netns/${podNetns(src.uid)}`)) ? [`netns ${podNetns(src.uid)}`] : []),
          ...((await exists(join(fromDir, "sockets", `${uid}_sock`))) ? ["the launcher socket"] : []),
        ];
        if (left.length) t.diagnostic(`left on ${from}: ${left.join(", ")}`);
        return left.length === 0 ? true : undefined;
      });
      const qemus = await qemuFor(uid);
      assert.equal(qemus.length, 1, `exactly one QEMU of the VM (found ${qemus.join(", ")})`);
      const qemuNs = await readlink(`/proc/${qemus[0]}/ns/net`);
      assert.equal(qemuNs, await netnsLink(podNetns(dst.uid)), "QEMU runs in the target pod's netns");
      // The migration ports close behind the arrived domain (else the pod's libvirtd stays reachable by whatever
      // pod gets the old source's IP next).
      const ports = Object.keys(vmi.status.migrationState.targetDirectMigrationNodePorts ?? {});
      assert.equal(ports.length, 3);
      const { stdout: ss } = await promisify(execFile)("ip", ["netns", "exec", podNetns(dst.uid), "ss", "-Htln"]);
      const open = ports.filter((p) => new RegExp(`:${p}\\s`).test(ss));
      assert.deepEqual(open, [], `no migration port listens in the VM's pod after the migration:\n${ss}`);

      // The disk moved: new claim on the target named by VM and VMI, recorded old → new, the old one gone from
      // the source node (claim, PV, its directory).
      const after = await dataClaims(c);
      assert.notEqual(after.vm, before.vm, "the VM names a new claim");
      assert.equal(after.vmi, after.vm, "the VMI names the same new claim");
      assert.match(after.vm, new RegExp(`^${VM}-data-m[0-9a-f]{6}$`));
      const newDisk = await volumeFile(c, after.vm);
      assert.equal(newDisk.node, to, "the data disk is on the target node");
      const blkAfter = await dataClaims(c, "blk");
      assert.equal(blkAfter.vmi, blkAfter.vm, "the VMI names the new Block claim");
      assert.match(blkAfter.vm, new RegExp(`^${VM}-blk-m[0-9a-f]{6}$`));
      const newBlk = await volumeFile(c, blkAfter.vm);
      assert.equal(newBlk.node, to, "the Block disk is on the target node");
      assert.equal((await loopsOver(newBlk.image)).length, 1, "the new Block disk has its loop device on the target");
      const rec = JSON.parse(
        await c.kubectl(
          "get",
          "vm",
          VM,
          "-o",
          "jsonpath={.status.volumeUpdateState.volumeMigrationState.migratedVolumes}",
        ),
      ) as { volumeName: string; sourcePVCInfo: { claimName: string }; destinationPVCInfo: { claimName: string } }[];
      assert.deepEqual(
        rec.map((m) => [m.volumeName, m.sourcePVCInfo.claimName, m.destinationPVCInfo.claimName]).sort(),
        [
          ["blk", blkBefore.vm, blkAfter.vm],
          ["data", before.vm, after.vm],
        ],
      );
      await until(`old claim ${before.vm}, PV ${oldDisk.pv} and its directory on ${from} gone`, 120_000, async () => {
        const dvs = await c.kubectl("get", "dv", "-o", "name");
        const pvcs = await c.kubectl("get", "pvc", "-o", "name");
        const pvs = await c.kubectl("get", "pv", "-o", "name");
        const left = [
          ...(dvs.split("\n").includes(`datavolume.cdi.kubevirt.io/${before.vm}`) ? ["DataVolume"] : []),
          ...(pvcs.split("\n").includes(`persistentvolumeclaim/${before.vm}`) ? ["claim"] : []),
          ...(pvs.includes(oldDisk.pv) ? ["PV"] : []),
          ...((await exists(join(fromDir, "volumes", oldDisk.pv))) ? ["volume directory"] : []),
          ...(pvs.includes(oldBlk.pv) ? ["Block PV"] : []),
          ...((await exists(join(fromDir, "volumes", oldBlk.pv))) ? ["Block volume directory"] : []),
          ...(await loopsOver(oldBlk.image)).map((d) => `loop device ${d}`),
        ];
        if (left.length) t.diagnostic(`old disk left: ${left.join(", ")}`);
        return left.length === 0 ? true : undefined;
      });
      await until("the VMIMs' finalizers off", 60_000, async () =>
        (await c.kubectl("get", "vmim", "-o", "jsonpath={.items[*].metadata.finalizers}")) === "" ? true : undefined,
      );
      // the move done: the VMI's record and its VolumesChange condition are gone (KubeVirt's)
      await until("the VMI's migratedVolumes and VolumesChange gone", 60_000, async () => {
        const left = await c.kubectl(
          "get",
          "vmi",
          VM,
          "-o",
          `jsonpath={.status.migratedVolumes}{.status.conditions[?(@.type=="VolumesChange")].type}`,
        );
        return left === "" ? true : undefined;
      });
      t.diagnostic(
        `round ${round}: disk ${before.vm} (${from}) → ${after.vm} (${to}), ${Date.now() - started} ms to release`,
      );

      // The console answers through the new node; same boot, the counter went on.
      con = c.console(VM);
      con.send("\n");
      assert.equal(await ask(con, "cat /proc/sys/kernel/random/boot_id"), bootId, "same boot: no reset");
      // The disks' data, read from the moved disks (page cache dropped): the marker and every line so far.
      for (const dev of ["/dev/vdb", "/dev/vdc"]) {
        const [mark, lines, bad] = (await ask(con, diskCheck(dev))).split(" ");
        assert.equal(mark, MARK, `the marker reads back from the moved disk ${dev}`);
        assert.ok(Number(lines) > 4, `lines were appended (${lines})`);
        assert.equal(bad, "0", `every line checked reads back from ${dev} (first bad: ${bad} of ${lines})`);
      }
      const now = Number(await ask(con, "cat /dev/shm/count"));
      assert.ok(now > last, `the counter continues (${last} → ${now})`);
      last = await until("the counter still runs on the target", 30_000, async () => {
        const v = Number(await ask(con, "cat /dev/shm/count"));
        return v > now ? v : undefined;
      });
    }
    con.close();
  });
});
