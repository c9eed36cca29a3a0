// `tsvirt controller --kubeconfig` as a real process against the embedded API server: it drives a VM to a bound
// launcher pod; kill -9 at that observed state; a restarted controller converges without a second pod or VMI.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { describe, it } from "node:test";
import {
  type Node,
  type Pod,
  resources,
  type VirtualMachine,
  type VirtualMachineInstance,
} from "../../client/index.js";
import { kill9, startTestApi, TSVIRT, waitFor } from "../lib/process.js";

function startController(kubeconfig: string, logs: string[]): ChildProcess {
  const p = spawn(process.execPath, [TSVIRT, "controller", "--kubeconfig", kubeconfig], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  p.stderr?.on("data", (d: Buffer) => logs.push(d.toString()));
  return p;
}

describe("tsvirt controller process", () => {
  it("survives kill -9 with a bound pod: the restarted controller adopts it and finishes the job", async (t) => {
    const { kc, client } = await startTestApi(t, "ctrl-");
    const node = await client.create<Node>(resources.nodes, undefined, {
      metadata: { name: "node01", labels: { "kubevirt.io/schedulable": "true" } },
    });
    await client.updateStatus(resources.nodes, {
      ...node,
      status: {
        allocatable: { cpu: "2", memory: "4Gi", pods: "110" },
        conditions: [{ type: "Ready", status: "True" }],
      },
    });
    await client.create<VirtualMachine>(resources.vms, "default", {
      metadata: { name: "vm1", namespace: "default" },
      spec: {
        runStrategy: "Always",
        template: { spec: { domain: { devices: {}, resources: { requests: { memory: "64Mi" } } } } },
      },
    });

    const logs: string[] = [];
    const first = startController(kc, logs);
    t.after(() => kill9(first));
    const pod = await waitFor("a bound launcher pod", async () => {
      const l = await client.list<Pod>(resources.pods, "default", { labelSelector: "kubevirt.io=virt-launcher" });
      return l.items.find((p) => p.spec.nodeName === "node01");
    });
    await kill9(first);

    const second = startController(kc, logs);
    t.after(() => kill9(second));
    // Play the pod runner: the pod runs. Only a live controller can move the VMI to Scheduled.
    await waitFor("pod Running written", async () => {
      const cur = await client.get<Pod>(resources.pods, "default", pod.metadata.name!);
      return client.updateStatus(resources.pods, { ...cur, status: { ...cur.status, phase: "Running" } });
    });
    const vmi = await waitFor("VMI Scheduled", async () => {
      const v = await client.get<VirtualMachineInstance>(resources.vmis, "default", "vm1");
      return v.status?.phase === "Scheduled" ? v : undefined;
    });
    const pods = await client.list<Pod>(resources.pods, "default", { labelSelector: "kubevirt.io=virt-launcher" });
    assert.deepEqual(
      pods.items.map((p) => p.metadata.uid),
      [pod.metadata.uid],
      "still exactly the first pod",
    );
    assert.equal(vmi.metadata.ownerReferences?.[0]?.kind, "VirtualMachine");
    const vmis = await client.list<VirtualMachineInstance>(resources.vmis, "default");
    assert.equal(vmis.items.length, 1);
    const line = logs
      .join("")
      .split("\n")
      .find((l) => l.includes("virt-controller started"));
    assert.ok(line, "the controller logs JSON lines");
    assert.equal(JSON.parse(line).component, "virt-controller");
  });
});
