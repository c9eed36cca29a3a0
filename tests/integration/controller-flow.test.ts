// virt-controller against the real embedded API server (in-memory SQLite) over HTTP, with a fake node agent that plays
// the pod runner and virt-handler: VM start → VMI → launcher pod → binding → Scheduled → Running; stop → all gone.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startApiServer } from "../../apiserver/index.js";
import {
  type Event,
  type Node,
  type Pod,
  type ResourceRef,
  RestClient,
  resources,
  type VirtualMachine,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { VirtController } from "../../controller/index.js";
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
    await client.create<Node>(resources.nodes, undefined, {
      metadata: { name: node, labels: { "kubevirt.io/schedulable": "true", "kubernetes.io/hostname": node } },
      status: {
        capacity: { cpu: "4", memory: "8Gi", pods: "110" },
        allocatable: { cpu: "4", memory: "8Gi", pods: "110" },
        conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }],
      },
    });
    // Node status is a subresource: write it explicitly too.
    const n = await client.get<Node>(resources.nodes, undefined, node);
    await client.updateStatus(resources.nodes, {
      ...n,
      status: {
        capacity: { cpu: "4", memory: "8Gi", pods: "110" },
        allocatable: { cpu: "4", memory: "8Gi", pods: "110" },
        conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }],
      },
    });
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
    await client.create<VirtualMachine>(resources.vms, "default", {
      metadata: { name: "big", namespace: "default" },
      spec: {
        runStrategy: "Always",
        template: { spec: { domain: { devices: {}, resources: { requests: { memory: "64Gi" } } } } },
      },
    });
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
      await client.create<VirtualMachine>(resources.vms, "default", {
        metadata: { name, namespace: "default" },
        spec: {
          runStrategy: "Always",
          template: { spec: { domain: { devices: {}, resources: { requests: { memory: "128Mi" } } } } },
        },
      });
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
