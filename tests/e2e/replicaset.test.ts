// Fleets and placement on real QEMU through one `tsvirt up --nodes 2`: KubeVirt's VMI ReplicaSet example (image
// swapped for the test guest) scaled with `kubectl scale` and healed after `kubectl delete vmi`; a VM too large for
// any node (ErrorUnschedulable, then it runs once resized and restarted); VMs placed on either node by
// nodeSelector (their QEMU in a pod namespace wired to that node's bridge, their IP from that node's podCIDR); and
// required pod anti-affinity spreading two VMs over the two nodes. Everything asserted is what a user would check
// with kubectl, virtctl and ps. At most four guests run at once.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { podDirOf } from "../../handler/index.js";
import { contains, NODE_BRIDGE, nodeNetns, parseCidr, podNetns, podVeth } from "../../handler/network/index.js";
import { CLUSTER, EXAMPLES, requirePrereqs } from "../lib/prereqs.js";
import { type Cluster, guestAnswers, netnsLink, qemuFor, run, startCluster, until } from "../lib/up.js";

requirePrereqs(...CLUSTER, "shared");

const EXAMPLE = join(EXAMPLES, "vmi-replicaset-cirros.yaml");
const BOOT_MS = 600_000;

interface Vmi {
  metadata: { name: string; uid: string; labels?: Record<string, string>; deletionTimestamp?: string };
  status?: {
    phase?: string;
    nodeName?: string;
    interfaces?: { ipAddress?: string }[];
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}
interface Pod {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec: { nodeName?: string; affinity?: unknown };
  status: { phase?: string; podIP?: string };
}

/** KubeVirt's vmi-replicaset-cirros.yaml from shared/, with our image. */
function replicaSetManifest(image: string): Record<string, unknown> {
  const rs = parse(readFileSync(EXAMPLE, "utf8")) as Record<string, unknown>;
  const volumes = (rs as { spec: { template: { spec: { volumes: { containerDisk?: { image: string } }[] } } } }).spec
    .template.spec.volumes;
  for (const v of volumes) if (v.containerDisk) v.containerDisk.image = image;
  return rs;
}

async function vmis(c: Cluster, selector: string): Promise<Vmi[]> {
  return (await c.getJson<{ items: Vmi[] }>("vmi", "-l", selector)).items;
}

async function launcherPod(c: Cluster, vmi: Vmi): Promise<Pod> {
  const pods = await c.getJson<{ items: Pod[] }>("pods", "-l", `kubevirt.io/created-by=${vmi.metadata.uid}`);
  assert.equal(pods.items.length, 1, `one launcher pod for ${vmi.metadata.name}`);
  return pods.items[0]!;
}

/** The QEMU processes of a VMI: those running in its launcher pod's network namespace. */
async function qemuOf(c: Cluster, vmi: Vmi): Promise<number[]> {
  const pod = await launcherPod(c, vmi);
  return qemuFor(vmi.metadata.uid, await netnsLink(podNetns(pod.metadata.uid)));
}

/** A Running VMI's one QEMU process. */
async function oneQemu(c: Cluster, vmi: Vmi): Promise<number> {
  const pids = await qemuOf(c, vmi);
  assert.equal(pids.length, 1, `one QEMU for ${vmi.metadata.name}`);
  return pids[0]!;
}

async function isQemu(pid: number): Promise<boolean> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).includes("qemu-system");
}

/** Waits (bounded) until the given QEMU process has exited. */
async function qemuGone(pid: number): Promise<void> {
  await until(`QEMU ${pid} gone`, 180_000, async () => ((await isQemu(pid)) ? undefined : true), 500);
}

/** Waits until exactly `n` VMIs match, none terminating, all Running with one QEMU each; returns them with it. */
async function runningSet(c: Cluster, selector: string, n: number): Promise<(Vmi & { qemu: number })[]> {
  const set = await until(
    `${n} VMIs ${selector} Running`,
    BOOT_MS,
    async () => {
      const list = await vmis(c, selector);
      const ok = list.length === n && list.every((v) => !v.metadata.deletionTimestamp && v.status?.phase === "Running");
      return ok ? list : undefined;
    },
    1000,
  );
  return Promise.all(set.map(async (v) => ({ ...v, qemu: await oneQemu(c, v) })));
}

/** `kubectl get vmirs NAME`: KubeVirt's columns and their values. */
async function rsRow(c: Cluster, name: string): Promise<Record<string, string>> {
  const [head = "", row = ""] = (await c.kubectl("get", "vmirs", name)).trim().split("\n");
  const cols = head.trim().split(/\s+/);
  const vals = row.trim().split(/\s+/);
  return Object.fromEntries(cols.map((col, i) => [col, vals[i] ?? ""]));
}

/** A VM and where it runs: its VMI Running on `node`, its QEMU in its pod's namespace wired to that node. */
async function assertPlacedOn(c: Cluster, name: string, node: string): Promise<number> {
  await c.waitFor(`vmi/${name}`, "{.status.phase}", "Running", BOOT_MS);
  const vmi = await c.getJson<Vmi>("vmi", name);
  assert.equal(vmi.status?.nodeName, node, `${name} runs on ${node}`);
  const pod = await launcherPod(c, vmi);
  assert.equal(pod.spec.nodeName, node);
  // Its QEMU runs in the pod's network namespace...
  const qemu = await qemuFor(vmi.metadata.uid, await netnsLink(podNetns(pod.metadata.uid)));
  assert.equal(qemu.length, 1, `one QEMU for ${name}`);
  assert.equal(await readlink(`/proc/${qemu[0]}/ns/net`), await netnsLink(podNetns(pod.metadata.uid)));
  // ...whose veth's node end sits in this node's namespace (on its bridge), not the other node's.
  const links = await run("ip", ["-n", nodeNetns(node), "-o", "link", "show", "master", NODE_BRIDGE]);
  assert.match(links, new RegExp(`\\b${podVeth(pod.metadata.uid)}@`), `${name}'s veth on ${node}'s bridge`);
  for (const other of c.nodes.filter((x) => x !== node)) {
    const o = await run("ip", ["-n", nodeNetns(other), "-o", "link", "show"]);
    assert.doesNotMatch(o, new RegExp(`\\b${podVeth(pod.metadata.uid)}@`));
  }
  // The pod's directory lives in this node agent's own data dir only.
  for (const n of c.nodes) {
    assert.equal(existsSync(podDirOf(join(c.dir, "nodes", n), pod.metadata.uid)), n === node, `pod dir on ${n}`);
  }
  // Its IP comes from this node's podCIDR.
  const nodeObj = await c.getJson<{ spec: { podCIDR: string } }>("node", node);
  const ip = vmi.status?.interfaces?.[0]?.ipAddress ?? "";
  assert.equal(ip, pod.status.podIP);
  assert.ok(contains(parseCidr(nodeObj.spec.podCIDR), ip), `${ip} in ${node}'s podCIDR ${nodeObj.spec.podCIDR}`);
  return qemu[0]!;
}

function withAntiAffinity(vm: Record<string, unknown>, app: string): Record<string, unknown> {
  const spec = (
    vm as { spec: { template: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> } } }
  ).spec.template;
  spec.metadata.labels.app = app;
  spec.spec.affinity = {
    podAntiAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: [
        { labelSelector: { matchLabels: { app } }, topologyKey: "kubernetes.io/hostname" },
      ],
    },
  };
  return vm;
}

describe("ReplicaSets, unschedulable VMs and two nodes through tsvirt up --nodes 2", () => {
  it("replicas, resize, placement by selector and anti-affinity", { timeout: 3_000_000 }, async (t) => {
    const c = await startCluster(t, { nodes: 2, name: "rs" });
    const [n1, n2] = c.nodes as [string, string];
    // Distinct podCIDRs, one per node.
    const cidrs = await Promise.all(c.nodes.map((n) => c.waitFor(`node/${n}`, "{.spec.podCIDR}", /\//, 60_000)));
    assert.notEqual(cidrs[0], cidrs[1]);
    // Each node agent stays in the host's network namespace; each node has its own namespace for its pods' bridge.
    const hostNs = await readlink("/proc/self/ns/net");
    for (const n of c.nodes) assert.equal(await readlink(`/proc/${await c.pid(`handler-${n}`)}/ns/net`), hostNs);
    const nodeNs = await Promise.all(c.nodes.map((n) => netnsLink(nodeNetns(n))));
    assert.notEqual(nodeNs[0], nodeNs[1]);

    await t.test("a VMI ReplicaSet: 3, scale to 1, scale to 2, a deleted VMI is replaced", async () => {
      const rs = replicaSetManifest(c.image);
      const name = (rs.metadata as { name: string }).name;
      const sel = `kubevirt.io/vmReplicaSet=${name}`;
      await c.apply(rs);
      const three = await runningSet(c, sel, 3);
      await c.waitFor(`vmirs/${name}`, "{.status.readyReplicas}", "3", 120_000);
      assert.deepEqual(
        Object.entries(await rsRow(c, name)).filter(([k]) => k !== "AGE"),
        [
          ["NAME", name],
          ["DESIRED", "3"],
          ["CURRENT", "3"],
          ["READY", "3"],
        ],
      );
      // Every replica's launcher pod carries the VMI's labels (what pod affinity terms select).
      for (const v of three)
        assert.equal((await launcherPod(c, v)).metadata.labels?.["kubevirt.io/vmReplicaSet"], name);

      assert.match(await c.kubectl("scale", "vmirs", name, "--replicas=1"), /scaled/);
      const one = await until(
        "one VMI left",
        300_000,
        async () => {
          const l = await vmis(c, sel);
          return l.length === 1 ? l : undefined;
        },
        1000,
      );
      const kept = one[0]!;
      for (const v of three.filter((x) => x.metadata.uid !== kept.metadata.uid)) await qemuGone(v.qemu);
      assert.ok(
        await isQemu(three.find((x) => x.metadata.uid === kept.metadata.uid)!.qemu),
        "the kept replica's QEMU runs",
      );
      await c.waitFor(`vmirs/${name}`, "{.status.replicas}", "1", 60_000);

      await c.kubectl("scale", "vmirs", name, "--replicas=2");
      const two = await runningSet(c, sel, 2);
      assert.ok(two.some((v) => v.metadata.uid === kept.metadata.uid));
      const added = two.find((v) => v.metadata.uid !== kept.metadata.uid)!;
      assert.ok(!three.some((v) => v.metadata.uid === added.metadata.uid), "a new VMI");

      await c.kubectl("delete", "vmi", added.metadata.name, "--wait=false");
      const healed = await until(
        "a replacement VMI",
        120_000,
        async () => {
          const l = await vmis(c, sel);
          const fresh = l.filter((v) => v.metadata.uid !== kept.metadata.uid && v.metadata.uid !== added.metadata.uid);
          return fresh.length === 1 ? fresh[0] : undefined;
        },
        1000,
      );
      await qemuGone(added.qemu);
      const after = await runningSet(c, sel, 2);
      assert.ok(
        after.some((v) => v.metadata.uid === healed.metadata.uid),
        "the replacement runs",
      );
      // The replacement's guest really boots: its serial console shows the marker and answers.
      await guestAnswers(c, healed.metadata.name, "replica");
      await c.waitFor(`vmirs/${name}`, "{.status.readyReplicas}", "2", 120_000);
      assert.deepEqual(
        [(await rsRow(c, name)).DESIRED, (await rsRow(c, name)).CURRENT, (await rsRow(c, name)).READY],
        ["2", "2", "2"],
      );

      // Deleting the ReplicaSet takes its VMIs and their QEMUs with it.
      await c.kubectl("delete", "vmirs", name);
      await until(
        "the ReplicaSet's VMIs gone",
        300_000,
        async () => ((await vmis(c, sel)).length === 0 ? true : undefined),
        1000,
      );
      for (const v of after) await qemuGone(v.qemu);
    });

    await t.test("a VM too large for any node: ErrorUnschedulable, then it runs once resized", async () => {
      await c.apply(c.vm("big", { runStrategy: "Always", memory: "4Ti" }));
      await c.waitFor("vm/big", "{.status.printableStatus}", "ErrorUnschedulable", 120_000);
      await c.waitFor("vmi/big", '{.status.conditions[?(@.type=="PodScheduled")].status}', "False", 60_000);
      const vmi = await c.getJson<Vmi>("vmi", "big");
      const ps = vmi.status?.conditions?.find((x) => x.type === "PodScheduled");
      assert.equal(ps?.reason, "Unschedulable");
      assert.equal(ps?.message, "0/2 nodes are available: 2 Insufficient memory.");
      const pods = await c.getJson<{ items: Pod[] }>("pods", "-l", `kubevirt.io/created-by=${vmi.metadata.uid}`);
      assert.deepEqual(
        pods.items.map((p) => p.spec.nodeName),
        [undefined],
        "its launcher pod waits, bound to no node",
      );
      await c.kubectl(
        "patch",
        "vm",
        "big",
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { template: { spec: { domain: { resources: { requests: { memory: "128Mi" } } } } } } }),
      );
      await c.virtctl("restart", "big");
      await c.waitFor("vm/big", "{.status.printableStatus}", "Running", BOOT_MS);
      const running = await c.getJson<Vmi>("vmi", "big");
      assert.notEqual(running.metadata.uid, vmi.metadata.uid, "a new VMI");
      const bigQemu = await oneQemu(c, running);
      await guestAnswers(c, "big", "big");
      await c.kubectl("delete", "vm", "big");
      await qemuGone(bigQemu);
    });

    await t.test("nodeSelector places a VM on either node", async () => {
      const host = "kubernetes.io/hostname";
      await c.apply(c.vm("on2", { runStrategy: "Always", nodeSelector: { [host]: n2 } }));
      await c.apply(c.vm("on1", { runStrategy: "Always", nodeSelector: { [host]: n1 } }));
      const q2 = await assertPlacedOn(c, "on2", n2);
      const q1 = await assertPlacedOn(c, "on1", n1);
      // Both guests really booted: their consoles (each proxied by its own node's agent) show the marker.
      for (const vm of ["on2", "on1"]) {
        await guestAnswers(c, vm, `on-${vm}`);
      }
      await c.kubectl("delete", "vm", "on1", "on2");
      for (const q of [q1, q2]) await qemuGone(q);
    });

    await t.test(
      "required pod anti-affinity spreads VMs over the two nodes; required affinity joins them",
      async () => {
        await c.apply(withAntiAffinity(c.vm("spread1", { runStrategy: "Always" }), "spread"));
        await c.apply(withAntiAffinity(c.vm("spread2", { runStrategy: "Always" }), "spread"));
        await c.waitFor("vmi/spread1", "{.status.phase}", "Running", BOOT_MS);
        await c.waitFor("vmi/spread2", "{.status.phase}", "Running", BOOT_MS);
        const [a, b] = await Promise.all(["spread1", "spread2"].map((v) => c.getJson<Vmi>("vmi", v)));
        assert.deepEqual([a!.status?.nodeName, b!.status?.nodeName].sort(), [n1, n2].sort());
        const pod = await launcherPod(c, a!);
        assert.deepEqual(pod.spec.affinity, {
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              { labelSelector: { matchLabels: { app: "spread" } }, topologyKey: "kubernetes.io/hostname" },
            ],
          },
        });
        const qa = await oneQemu(c, a!);
        const qb = await oneQemu(c, b!);
        // Both guests really booted (and so handle the ACPI button: the delete below is graceful and prompt).
        await Promise.all(["spread1", "spread2"].map((v) => guestAnswers(c, v, v)));
        // A third has nowhere to go: ErrorUnschedulable with kube-scheduler's reason.
        await c.apply(withAntiAffinity(c.vm("spread3", { runStrategy: "Always" }), "spread"));
        await c.waitFor("vm/spread3", "{.status.printableStatus}", "ErrorUnschedulable", 120_000);
        await c.waitFor(
          "vmi/spread3",
          '{.status.conditions[?(@.type=="PodScheduled")].message}',
          // The pair's own anti-affinity repels it first (kube-scheduler checks existing pods' rules first).
          "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules.",
          60_000,
        );
        // One of the pair goes: the third takes its node.
        const gone = a!.status?.nodeName;
        await c.kubectl("delete", "vm", "spread1");
        await qemuGone(qa);
        await c.waitFor("vmi/spread3", "{.status.phase}", "Running", BOOT_MS);
        assert.equal((await c.getJson<Vmi>("vmi", "spread3")).status?.nodeName, gone);
        const q3 = await oneQemu(c, await c.getJson<Vmi>("vmi", "spread3"));
        // Required pod affinity: a VM that must share spread2's node goes there.
        const buddy = c.vm("buddy", { runStrategy: "Always" }) as {
          spec: { template: { spec: Record<string, unknown> } };
        };
        buddy.spec.template.spec.affinity = {
          podAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              {
                labelSelector: { matchLabels: { "kubevirt.io/vm": "spread2" } },
                topologyKey: "kubernetes.io/hostname",
              },
            ],
          },
        };
        await c.apply(buddy);
        await c.waitFor("vmi/buddy", "{.status.phase}", "Running", BOOT_MS);
        const bud = await c.getJson<Vmi>("vmi", "buddy");
        assert.equal(bud.status?.nodeName, b!.status?.nodeName, "buddy shares spread2's node");
        const qBuddy = await oneQemu(c, bud);
        await Promise.all(["spread3", "buddy"].map((v) => guestAnswers(c, v, v)));
        await c.kubectl("delete", "vm", "spread2", "spread3", "buddy");
        for (const q of [qb, q3, qBuddy]) await qemuGone(q);
      },
    );
  });
});
