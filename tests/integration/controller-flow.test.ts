// virt-controller against the real embedded API server (in-memory SQLite) over HTTP, with a fake node agent that plays
// the pod runner and virt-handler: VM start → VMI → launcher pod → binding → Scheduled → Running; stop → all gone.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { startApiServer } from "../../apiserver/index.js";
import {
  type Event,
  Informer,
  type Node,
  type Pod,
  type ResourceRef,
  RestClient,
  resources,
  type VirtualMachine,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { VirtController } from "../../controller/index.js";
import { computePodStatus, computeVmiStatus, isPaused, mapPhase } from "../../handler/index.js";
import { isNotFound } from "../../lib/errors.js";
import { nullLogger } from "../../lib/log.js";

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Registers a Ready, schedulable node (status is a subresource: written explicitly too). */
async function registerNode(client: RestClient, node: string): Promise<void> {
  const status = {
    capacity: { cpu: "4", memory: "8Gi", pods: "110" },
    allocatable: { cpu: "4", memory: "8Gi", pods: "110" },
    conditions: [{ type: "Ready", status: "True" as const, reason: "KubeletReady" }],
  };
  await client.create<Node>(resources.nodes, undefined, {
    metadata: { name: node, labels: { "kubevirt.io/schedulable": "true", "kubernetes.io/hostname": node } },
    status,
  });
  const n = await client.get<Node>(resources.nodes, undefined, node);
  await client.updateStatus(resources.nodes, { ...n, status });
}

/** A VirtualMachine with runStrategy Always in "default". */
async function createVm(client: RestClient, name: string, memory = "128Mi"): Promise<void> {
  await client.create<VirtualMachine>(resources.vms, "default", {
    metadata: { name, namespace: "default" },
    spec: {
      runStrategy: "Always",
      template: { spec: { domain: { devices: {}, resources: { requests: { memory } } } } },
    },
  });
}

async function isGone(client: RestClient, ref: ResourceRef, name: string): Promise<boolean> {
  try {
    await client.get(ref, "default", name);
    return false;
  } catch (e) {
    if (isNotFound(e)) return true;
    throw e;
  }
}

/**
 * A fake node agent: registers a Ready node, runs pods bound to it, and reports VMIs Running once Scheduled. While
 * `hold.pods` is set it leaves deleted pods alone (a guest still shutting down).
 */
function fakeNodeAgent(client: RestClient, node: string, hold = { pods: false }) {
  let stopped = false;
  const loop = (async () => {
    await registerNode(client, node);
    while (!stopped) {
      try {
        await step();
      } catch {
        /* a transient API error: try again next round */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  async function step(): Promise<void> {
    const pods = await client.list<Pod>(resources.pods, undefined, { fieldSelector: `spec.nodeName=${node}` });
    for (const p of pods.items) {
      if (p.metadata.deletionTimestamp) {
        if (hold.pods) continue;
        await client
          .delete(resources.pods, p.metadata.namespace, p.metadata.name!, { gracePeriodSeconds: 0 })
          .catch(() => {});
      } else if (p.status?.phase !== "Running") {
        await client
          .updateStatus(resources.pods, {
            ...p,
            status: {
              ...p.status,
              phase: "Running",
              podIP: "10.244.0.5",
              conditions: [...(p.status?.conditions ?? []), { type: "ContainersReady", status: "True" }],
            },
          })
          .catch(() => {});
      }
    }
    const vmis = await client.list<VirtualMachineInstance>(resources.vmis, undefined, {
      labelSelector: `kubevirt.io/nodeName=${node}`,
    });
    for (const v of vmis.items) {
      if (v.status?.phase === "Scheduled" && !v.metadata.deletionTimestamp) {
        const ts = [
          ...(v.status.phaseTransitionTimestamps ?? []),
          { phase: "Running" as const, phaseTransitionTimestamp: new Date().toISOString() },
        ];
        await client
          .update(resources.vmis, {
            ...v,
            status: {
              ...v.status,
              phase: "Running",
              phaseTransitionTimestamps: ts,
              conditions: [{ type: "Ready", status: "True" }],
            },
          })
          .catch(() => {});
      }
    }
  }
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

type HPod = Parameters<typeof computePodStatus>[0];
type HVmi = Parameters<typeof computeVmiStatus>[0];
type Domain = Parameters<typeof mapPhase>[0];

/** What a launcher reports while its VM starts: no domain yet, QEMU launched paused (-S), then running. */
const LIBVIRT_START: Domain[] = [
  undefined,
  { state: "Paused", reason: "StartingUp" },
  { state: "Running", reason: "Booted" },
];

/**
 * A node agent made of the real one's pure functions (handler/): the pod runner's computePodStatus with its unpaused
 * view from isPaused, and the VMI sync's computeVmiStatus with mapPhase, each writing only what changed. Its launcher
 * walks LIBVIRT_START, one state per round once it has the VMI, so every start passes libvirt's start-up pause.
 */
function startupPauseAgent(client: RestClient, node: string) {
  let stopped = false;
  const launcher = new Map<string, number>(); // VMI uid → index into LIBVIRT_START
  const now = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");
  async function step(): Promise<void> {
    const pods = await client.list<Pod>(resources.pods, undefined, { fieldSelector: `spec.nodeName=${node}` });
    const vmis = await client.list<VirtualMachineInstance>(resources.vmis, undefined, {
      labelSelector: `kubevirt.io/nodeName=${node}`,
    });
    for (const p of pods.items) {
      const vmiUid = p.metadata.labels?.["kubevirt.io/created-by"] ?? "";
      const unpaused = !isPaused(LIBVIRT_START[launcher.get(vmiUid) ?? 0]);
      const run = { state: "running" as const, ip: "10.244.0.5", startedAt: "2026-11-25T10:00:00Z", answering: true };
      const status = computePodStatus(p as unknown as HPod, { ...run, unpaused }, "127.0.0.1", now());
      if (!isDeepStrictEqual(status, p.status))
        await client.updateStatus(resources.pods, { ...p, status } as Pod).catch(() => {});
    }
    for (const v of vmis.items) {
      const uid = v.metadata.uid ?? "";
      if (v.metadata.deletionTimestamp || !["Scheduled", "Running"].includes(v.status?.phase ?? "")) continue;
      const i = Math.min((launcher.get(uid) ?? 0) + 1, LIBVIRT_START.length - 1);
      launcher.set(uid, i);
      const domain = LIBVIRT_START[i];
      const pod = pods.items.find((p) => p.metadata.labels?.["kubevirt.io/created-by"] === uid);
      const podReady = pod?.status?.conditions?.find((c) => c.type === "Ready")?.status === "True";
      const hvmi = v as unknown as HVmi;
      const phase = mapPhase(domain, hvmi);
      const obs = { nodeName: node, podIP: "10.244.0.5", podReady, now: now(), ...(phase ? { phase } : {}) };
      const status = computeVmiStatus(hvmi, domain ? { ...obs, domain } : obs);
      if (status) await client.update(resources.vmis, { ...v, status } as VirtualMachineInstance).catch(() => {});
    }
  }
  let rounds = 0;
  const loop = (async () => {
    await registerNode(client, node);
    while (!stopped) {
      await step().catch(() => {});
      rounds++;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    launcherState: (vmiUid: string) => LIBVIRT_START[launcher.get(vmiUid) ?? 0],
    rounds: () => rounds,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Successful writes (PUT/PATCH) of pods and VMIs, from the API server's request counter. */
async function podAndVmiWrites(url: string): Promise<number> {
  let n = 0;
  for (const line of (await (await fetch(`${url}/metrics`)).text()).split("\n")) {
    const m = /^apiserver_request_total\{(.*)\} (\d+)$/.exec(line);
    const l = m?.[1] ?? "";
    if (/verb="(PUT|PATCH)"/.test(l) && /resource="(pods|virtualmachineinstances)"/.test(l) && /code="2/.test(l))
      n += Number(m?.[2]);
  }
  return n;
}

describe("virt-controller against the embedded API server", () => {
  it("start → Running with phases in order, stop → Stopped with VMI and pod gone", async (t) => {
    const api = await startApiServer({ memory: true, logger: nullLogger });
    t.after(() => api.close());
    const client = new RestClient({ server: api.url, namespace: "default" });
    t.after(() => client.close());
    const agent = fakeNodeAgent(client, "node01");
    t.after(() => agent.stop());
    const ctrl = new VirtController({ client, log: nullLogger });
    await ctrl.start();
    t.after(() => ctrl.stop());

    await client.create<VirtualMachine>(resources.vms, "default", {
      metadata: { name: "testvm", namespace: "default" },
      spec: {
        runStrategy: "Halted",
        template: {
          metadata: { labels: { app: "demo" } },
          spec: {
            domain: { devices: {}, resources: { requests: { memory: "128Mi" } } },
          },
        },
      },
    });
    await waitFor("Stopped", async () => {
      const vm = await client.get<VirtualMachine>(resources.vms, "default", "testvm");
      return vm.status?.printableStatus === "Stopped" ? vm : undefined;
    });
    const node = await waitFor("pod CIDR", async () => {
      const n = await client.get<Node>(resources.nodes, undefined, "node01");
      return n.spec?.podCIDR ? n : undefined;
    });
    assert.equal(node.spec?.podCIDR, "10.244.0.0/24");

    await client.patch(resources.vms, "default", "testvm", "json", [
      { op: "test", path: "/spec/runStrategy", value: "Halted" },
      { op: "replace", path: "/spec/runStrategy", value: "Always" },
    ]);
    const running = await waitFor("Running", async () => {
      const vm = await client.get<VirtualMachine>(resources.vms, "default", "testvm");
      return vm.status?.printableStatus === "Running" && vm.status.ready ? vm : undefined;
    });
    assert.equal(running.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    const vmi = await client.get<VirtualMachineInstance>(resources.vmis, "default", "testvm");
    assert.deepEqual(
      vmi.status?.phaseTransitionTimestamps?.map((p) => p.phase),
      ["Pending", "Scheduling", "Scheduled", "Running"],
    );
    assert.equal(vmi.status?.nodeName, "node01");
    assert.equal(vmi.metadata.labels?.["kubevirt.io/nodeName"], "node01");
    assert.equal(vmi.metadata.labels?.app, "demo");
    const pods = await client.list<Pod>(resources.pods, "default", {
      labelSelector: `kubevirt.io/created-by=${vmi.metadata.uid}`,
    });
    assert.equal(pods.items.length, 1);
    assert.equal(pods.items[0]?.spec.nodeName, "node01");
    assert.equal(
      pods.items[0]?.status?.conditions?.find((c) => c.type === "kubevirt.io/virtual-machine-unpaused")?.status,
      "True",
    );

    await client.patch(resources.vms, "default", "testvm", "merge", { spec: { runStrategy: "Halted" } });
    await waitFor("Stopped again", async () => {
      const vm = await client.get<VirtualMachine>(resources.vms, "default", "testvm");
      return vm.status?.printableStatus === "Stopped" ? vm : undefined;
    });
    await waitFor("VMI gone", async () => {
      try {
        await client.get(resources.vmis, "default", "testvm");
        return undefined;
      } catch (e) {
        return isNotFound(e) ? true : undefined;
      }
    });
    await waitFor("pod gone", async () => {
      const l = await client.list<Pod>(resources.pods, "default", { labelSelector: "kubevirt.io=virt-launcher" });
      return l.items.length === 0 ? true : undefined;
    });
    const events = await client.list<Event>(resources.events, "default");
    const reasons = new Set(events.items.map((e) => e.reason));
    for (const r of ["SuccessfulCreate", "Scheduled", "SuccessfulDelete"])
      assert.ok(reasons.has(r), `event ${r} recorded`);
  });

  it("a VM too large for any node shows ErrorUnschedulable, then starts once resized", async (t) => {
    const api = await startApiServer({ memory: true, logger: nullLogger });
    t.after(() => api.close());
    const client = new RestClient({ server: api.url, namespace: "default" });
    t.after(() => client.close());
    const agent = fakeNodeAgent(client, "node01");
    t.after(() => agent.stop());
    const ctrl = new VirtController({ client, log: nullLogger });
    await ctrl.start();
    t.after(() => ctrl.stop());
    await createVm(client, "big", "64Gi");
    const vm = await waitFor("ErrorUnschedulable", async () => {
      const v = await client.get<VirtualMachine>(resources.vms, "default", "big");
      return v.status?.printableStatus === "ErrorUnschedulable" ? v : undefined;
    });
    assert.equal(vm.status?.printableStatus, "ErrorUnschedulable");
    const vmi = await client.get<VirtualMachineInstance>(resources.vmis, "default", "big");
    assert.match(
      vmi.status?.conditions?.find((c) => c.type === "PodScheduled")?.message ?? "",
      /^0\/1 nodes are available: 1 Insufficient memory\.$/,
    );
    // Resize: the template changes and the VM is restarted (delete the VMI; Always recreates it).
    await client.patch(resources.vms, "default", "big", "merge", {
      spec: { template: { spec: { domain: { resources: { requests: { memory: "128Mi" } } } } } },
    });
    await client.delete(resources.vmis, "default", "big");
    await waitFor("Running after resize", async () => {
      const v = await client.get<VirtualMachine>(resources.vms, "default", "big");
      return v.status?.printableStatus === "Running" ? v : undefined;
    });
  });

  it("a start through libvirt's start-up pause: VM Ready never drops once True, 4 pod/VMI writes", async (t) => {
    const api = await startApiServer({ memory: true, logger: nullLogger });
    t.after(() => api.close());
    const client = new RestClient({ server: api.url, namespace: "default" });
    t.after(() => client.close());
    const agent = startupPauseAgent(client, "node01");
    t.after(() => agent.stop());
    // What `kubectl get vm -w` shows: every version of the VM, in order.
    const vms = new Informer<VirtualMachine>(client, resources.vms, { namespace: "default" });
    const ready: string[] = [];
    const record = (vm: VirtualMachine) =>
      ready.push(vm.status?.conditions?.find((c) => c.type === "Ready")?.status ?? "-");
    vms.addEventHandler({ onAdd: record, onUpdate: (_o, vm) => record(vm) });
    vms.start();
    t.after(() => vms.stop());
    const ctrl = new VirtController({ client, log: nullLogger });
    await ctrl.start();
    t.after(() => ctrl.stop());
    await waitFor("node ready for pods", async () => {
      const n = await client.get<Node>(resources.nodes, undefined, "node01");
      return n.spec?.podCIDR ? n : undefined;
    });
    const before = await podAndVmiWrites(api.url);

    await createVm(client, "vm1");
    const vmi = await waitFor("VM Running and Ready, its launcher past the start-up pause", async () => {
      const vm = vms.get("default/vm1");
      if (vm?.status?.printableStatus !== "Running" || !vm.status.ready) return undefined;
      const v = await client.get<VirtualMachineInstance>(resources.vmis, "default", "vm1");
      return agent.launcherState(v.metadata.uid ?? "")?.reason === "Booted" ? v : undefined;
    });
    // Five more rounds of the agent (and the controller's answers to them): a late write would show.
    const until = agent.rounds() + 5;
    await waitFor("five more agent rounds", async () => (agent.rounds() >= until ? true : undefined));
    const first = ready.indexOf("True");
    assert.ok(first >= 0, `VM Ready: ${ready.join(" > ")}`);
    assert.deepEqual(
      ready.slice(first).filter((r) => r !== "True"),
      [],
      `VM Ready: ${ready.join(" > ")}`,
    );
    assert.equal(
      vmi.status?.conditions?.some((c) => c.type === "Paused"),
      false,
      "the start-up pause is no pause",
    );
    // The pod's status once (node agent), the VMI Scheduling and Scheduled (controller) and Running (node agent): the
    // start-up pause adds no gate write and no Paused round trip.
    assert.equal((await podAndVmiWrites(api.url)) - before, 4, "pod and VMI writes for one VM start");
  });

  describe("deleting a VM (the controller's finalizer)", () => {
    async function running(t: { after: (fn: () => unknown) => void }, name: string) {
      const api = await startApiServer({ memory: true, logger: nullLogger });
      t.after(() => api.close());
      const client = new RestClient({ server: api.url, namespace: "default" });
      t.after(() => client.close());
      const hold = { pods: false };
      const agent = fakeNodeAgent(client, "node01", hold);
      t.after(() => agent.stop());
      const ctrl = new VirtController({ client, log: nullLogger });
      await ctrl.start();
      const ctrls = [ctrl];
      t.after(() => Promise.all(ctrls.map((c) => c.stop())));
      await createVm(client, name);
      const vm = await waitFor("Running", async () => {
        const v = await client.get<VirtualMachine>(resources.vms, "default", name);
        return v.status?.printableStatus === "Running" ? v : undefined;
      });
      assert.deepEqual(vm.metadata.finalizers, ["kubevirt.io/virtualMachineControllerFinalize"]);
      const vmi = await client.get<VirtualMachineInstance>(resources.vmis, "default", name);
      return { api, client, hold, ctrl, ctrls, vmi };
    }

    it("kubectl's default delete (Background) returns a VM that stays Terminating until its VMI is gone", async (t) => {
      const { client, hold, ctrl, ctrls, vmi } = await running(t, "del1");
      hold.pods = true;
      await client.delete(resources.vms, "default", "del1", { propagationPolicy: "Background" });
      // The VMI is being deleted and its launcher pod is shutting down (held): the VM is still there, Terminating.
      await waitFor("launcher pod terminating", async () => {
        const l = await client.list<Pod>(resources.pods, "default", {
          labelSelector: `kubevirt.io/created-by=${vmi.metadata.uid}`,
        });
        return l.items[0]?.metadata.deletionTimestamp ? true : undefined;
      });
      const vmi2 = await client.get<VirtualMachineInstance>(resources.vmis, "default", "del1");
      assert.ok(vmi2.metadata.deletionTimestamp, "VMI being deleted");
      const terminating = await waitFor("Terminating", async () => {
        const v = await client.get<VirtualMachine>(resources.vms, "default", "del1");
        return v.status?.printableStatus === "Terminating" ? v : undefined;
      });
      assert.ok(terminating.metadata.deletionTimestamp);
      assert.deepEqual(terminating.metadata.finalizers, ["kubevirt.io/virtualMachineControllerFinalize"]);

      // A controller killed mid-deletion: the finalizer is in the API, a new one finishes the job.
      await ctrl.stop();
      const next = new VirtController({ client, log: nullLogger });
      ctrls.push(next);
      await next.start();
      // Watch both objects go, in order: the VM's DELETED comes after the VMI's.
      const gone: string[] = [];
      const rv = (await client.list(resources.vms, "default")).metadata.resourceVersion ?? "0";
      const watches = [resources.vms, resources.vmis].map((ref) =>
        client.watch(ref, "default", { resourceVersion: rv }, (ev) => {
          if (ev.type === "DELETED") gone.push(`${ref.resource}/${(ev.object as VirtualMachine).metadata.name}`);
        }),
      );
      for (const w of watches) w.done.catch(() => {}); // ends with the server
      t.after(() => {
        for (const w of watches) w.stop();
      });
      hold.pods = false;
      await waitFor("VM gone", async () => ((await isGone(client, resources.vms, "del1")) ? true : undefined));
      await waitFor("both DELETED events", async () => (gone.length >= 2 ? true : undefined));
      assert.deepEqual(gone, ["virtualmachineinstances/del1", "virtualmachines/del1"]);
    });

    it("propagationPolicy=Foreground: the garbage collector's finalizer and the controller's both hold the VM", async (t) => {
      const { client, hold } = await running(t, "fg1");
      hold.pods = true;
      await client.delete(resources.vms, "default", "fg1", { propagationPolicy: "Foreground" });
      const vm = await waitFor("Terminating", async () => {
        const v = await client.get<VirtualMachine>(resources.vms, "default", "fg1");
        return v.status?.printableStatus === "Terminating" ? v : undefined;
      });
      assert.deepEqual([...(vm.metadata.finalizers ?? [])].sort(), [
        "foregroundDeletion",
        "kubevirt.io/virtualMachineControllerFinalize",
      ]);
      assert.ok(
        (await client.get<VirtualMachineInstance>(resources.vmis, "default", "fg1")).metadata.deletionTimestamp,
      );
      hold.pods = false;
      await waitFor("VM gone", async () => ((await isGone(client, resources.vms, "fg1")) ? true : undefined));
      assert.ok(await isGone(client, resources.vmis, "fg1"), "its VMI went first");
    });

    it("propagationPolicy=Orphan: the VM goes at once, its VMI keeps running without an ownerReference", async (t) => {
      const { client, vmi } = await running(t, "orph1");
      await client.delete(resources.vms, "default", "orph1", { propagationPolicy: "Orphan" });
      await waitFor("VM gone", async () => ((await isGone(client, resources.vms, "orph1")) ? true : undefined));
      const left = await client.get<VirtualMachineInstance>(resources.vmis, "default", "orph1");
      assert.equal(left.metadata.uid, vmi.metadata.uid);
      assert.equal(left.metadata.deletionTimestamp, undefined);
      assert.equal(left.metadata.ownerReferences, undefined);
      assert.equal(left.status?.phase, "Running");
      const pods = await client.list<Pod>(resources.pods, "default", {
        labelSelector: `kubevirt.io/created-by=${vmi.metadata.uid}`,
      });
      assert.equal(pods.items.length, 1);
      assert.equal(pods.items[0]?.metadata.deletionTimestamp, undefined);
    });
  });
});
