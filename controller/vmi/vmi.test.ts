import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type DataVolume, type Pod, resources, type VirtualMachineInstance } from "../../client/index.js";
import { bytes } from "../quantity.js";
import { newNode, newVmi, withMemory, withNodeSelector } from "../testing/factories.js";
import { type Harness, startHarness } from "../testing/harness.js";
import { dataVolumesGate, missingClaims } from "./plan.js";
import { launcherResources, memoryOverhead, renderLauncherPod } from "./pod.js";

const vmiOf = (h: Harness, name = "testvmi") => h.client.peek<VirtualMachineInstance>(resources.vmis, "default", name);
const podsOf = (h: Harness) => h.client.all<Pod>(resources.pods);

/** Plays the node's pod runner: the pod's container runs. */
async function runPod(h: Harness, pod: Pod) {
  const cur = h.client.peek<Pod>(resources.pods, "default", pod.metadata.name!)!;
  await h.client.updateStatus(resources.pods, {
    ...cur,
    status: {
      ...cur.status,
      phase: "Running",
      conditions: [...(cur.status?.conditions ?? []), { type: "ContainersReady", status: "True" }],
    },
  });
}

describe("VMI controller", () => {
  it("creates one launcher pod shaped like KubeVirt's and moves the VMI to Scheduling", async (t) => {
    const h = await startHarness([
      { ref: resources.vmis, objs: [newVmi("testvmi", withMemory("1Gi"), withNodeSelector({ disk: "ssd" }))] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    const pods = podsOf(h);
    assert.equal(pods.length, 1);
    const pod = pods[0]!;
    const vmi = vmiOf(h)!;
    assert.match(pod.metadata.name!, /^virt-launcher-testvmi-[a-z0-9]{5}$/);
    assert.equal(pod.metadata.labels?.["kubevirt.io"], "virt-launcher");
    assert.equal(pod.metadata.labels?.["kubevirt.io/created-by"], vmi.metadata.uid);
    assert.deepEqual(
      pod.metadata.ownerReferences?.map((r) => [r.kind, r.name, r.uid, r.controller]),
      [["VirtualMachineInstance", "testvmi", vmi.metadata.uid, true]],
    );
    assert.equal(pod.spec.containers[0]?.name, "compute");
    assert.equal(pod.spec.restartPolicy, "Never");
    assert.deepEqual(pod.spec.readinessGates, [{ conditionType: "kubevirt.io/virtual-machine-unpaused" }]);
    assert.deepEqual(pod.spec.nodeSelector, { disk: "ssd", "kubevirt.io/schedulable": "true" });
    // 1 vCPU, 1Gi guest, VNC on: 240Mi fixed + 8Mi vCPU + 8Mi IOThread + 32Mi video + 2Mi page tables = 290Mi.
    assert.equal(pod.spec.containers[0]?.resources?.requests?.memory, "1314Mi");
    assert.equal(pod.spec.containers[0]?.resources?.requests?.cpu, "100m");
    assert.equal(vmi.status?.phase, "Scheduling");
    assert.deepEqual(
      vmi.status?.phaseTransitionTimestamps?.map((p) => p.phase),
      ["Pending", "Scheduling"],
    );
    assert.ok((await h.eventReasons()).includes("SuccessfulCreate"));
  });

  it("after a crash the existing pod is found by owner reference; no second pod is made", async (t) => {
    const h1 = await startHarness([{ ref: resources.vmis, objs: [newVmi()] }]);
    await h1.drain();
    const state = { vmis: h1.client.all(resources.vmis), pods: h1.client.all(resources.pods) };
    await h1.stop();
    // A fresh controller over the same objects, the VMI's status write lost (phase back to Pending).
    const vmi = { ...state.vmis[0]!, status: { phase: "Pending" } } as VirtualMachineInstance;
    const h2 = await startHarness([
      { ref: resources.vmis, objs: [vmi] },
      { ref: resources.pods, objs: state.pods },
    ]);
    t.after(() => h2.stop());
    await h2.drain();
    assert.equal(podsOf(h2).length, 1);
    assert.equal(vmiOf(h2)?.status?.phase, "Scheduling");
  });

  it("Scheduled once the pod is bound and running: nodeName, label, readiness gate on the pod", async (t) => {
    const h = await startHarness([
      { ref: resources.vmis, objs: [newVmi()] },
      { ref: resources.nodes, objs: [newNode("node01")] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    const pod = podsOf(h)[0]!;
    assert.equal(pod.spec.nodeName, "node01", "the scheduler bound it");
    assert.equal(vmiOf(h)?.status?.phase, "Scheduling");
    await runPod(h, pod);
    await h.drain();
    const vmi = vmiOf(h)!;
    assert.equal(vmi.status?.phase, "Scheduled");
    assert.equal(vmi.status?.nodeName, "node01");
    assert.equal(vmi.metadata.labels?.["kubevirt.io/nodeName"], "node01");
    assert.deepEqual(
      vmi.status?.phaseTransitionTimestamps?.map((p) => p.phase),
      ["Pending", "Scheduling", "Scheduled"],
    );
    const gate = h.client
      .peek<Pod>(resources.pods, "default", pod.metadata.name!)
      ?.status?.conditions?.find((c) => c.type === "kubevirt.io/virtual-machine-unpaused");
    assert.equal(gate?.status, "True");
  });

  it("a pod that disappears after scheduling fails the VMI with a reason", async (t) => {
    const h = await startHarness([
      { ref: resources.vmis, objs: [newVmi()] },
      { ref: resources.nodes, objs: [newNode("node01")] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    const pod = podsOf(h)[0]!;
    await runPod(h, pod);
    await h.drain();
    await h.client.delete(resources.pods, "default", pod.metadata.name!, { gracePeriodSeconds: 0 });
    await h.drain();
    const vmi = vmiOf(h)!;
    assert.equal(vmi.status?.phase, "Failed");
    assert.equal(vmi.status?.reason, "PodNotExists");
    assert.equal(podsOf(h).length, 0, "no replacement pod for a failed VMI");
  });

  it("a failed launcher pod fails the VMI", async (t) => {
    const h = await startHarness([
      { ref: resources.vmis, objs: [newVmi()] },
      { ref: resources.nodes, objs: [newNode("node01")] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    const pod = podsOf(h)[0]!;
    await runPod(h, pod);
    await h.drain();
    const cur = h.client.peek<Pod>(resources.pods, "default", pod.metadata.name!)!;
    await h.client.updateStatus(resources.pods, {
      ...cur,
      status: { ...cur.status, phase: "Failed", reason: "Error" },
    });
    await h.drain();
    assert.equal(vmiOf(h)?.status?.phase, "Failed");
    assert.equal(vmiOf(h)?.status?.reason, "PodFailed");
  });

  it("deleting the VMI deletes its pod, then removes the finalizer so the VMI goes", async (t) => {
    const h = await startHarness([
      { ref: resources.vmis, objs: [newVmi()] },
      { ref: resources.nodes, objs: [newNode("node01")] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    const pod = podsOf(h)[0]!;
    await runPod(h, pod);
    await h.drain();
    await h.client.delete(resources.vmis, "default", "testvmi");
    await h.drain();
    // A bound pod stays Terminating until its node agent removes it; the VMI waits for that.
    const terminating = h.client.peek<Pod>(resources.pods, "default", pod.metadata.name!);
    assert.ok(terminating?.metadata.deletionTimestamp);
    assert.deepEqual(vmiOf(h)?.metadata.finalizers, ["foregroundDeleteVirtualMachine"]);
    await h.client.delete(resources.pods, "default", pod.metadata.name!, { gracePeriodSeconds: 0 });
    await h.drain();
    assert.equal(vmiOf(h), undefined);
  });

  it("an unschedulable pod surfaces as the VMI's PodScheduled=False condition", async (t) => {
    const h = await startHarness([
      { ref: resources.vmis, objs: [newVmi("testvmi", withMemory("64Gi"))] },
      { ref: resources.nodes, objs: [newNode("node01", { memory: "8Gi" })] },
    ]);
    t.after(() => h.stop());
    await h.drain();
    const cond = vmiOf(h)?.status?.conditions?.find((c) => c.type === "PodScheduled");
    assert.equal(cond?.status, "False");
    assert.equal(cond?.reason, "Unschedulable");
    assert.equal(cond?.message, "0/1 nodes are available: 1 Insufficient memory.");
  });
});

describe("launcher overhead", () => {
  it("follows KubeVirt's formula: vCPUs from topology, no video without graphics, dedicated CPUs", () => {
    const vmi = newVmi("x", withMemory("2Gi"));
    vmi.spec.domain.cpu = { sockets: 2, cores: 2 };
    vmi.spec.domain.devices = { autoattachGraphicsDevice: false };
    // 240 + 4 (2Gi/512) + 32 (4 vCPU) + 8 (IOThread) = 284Mi
    assert.equal(memoryOverhead(vmi), 284 * 2 ** 20);
    vmi.spec.domain.cpu.dedicatedCpuPlacement = true;
    assert.equal(memoryOverhead(vmi), 384 * 2 ** 20);
    vmi.spec.domain.resources = { requests: { memory: "2Gi", cpu: "1500m" }, limits: { memory: "2Gi", cpu: "2" } };
    const r = launcherResources(vmi);
    assert.equal(r.requests.cpu, "1500m");
    assert.equal(bytes(r.limits?.memory), bytes("2Gi") + 384 * 2 ** 20);
  });
});

describe("launcher pod volumes", () => {
  it("lists the VMI's claims (persistentVolumeClaim, dataVolume's claim) for the scheduler's volume binding", () => {
    const vmi = newVmi("v");
    vmi.metadata.uid = "uid-v";
    vmi.spec.volumes = [
      { name: "root", containerDisk: { image: "reg.test/disk" } },
      { name: "data", persistentVolumeClaim: { claimName: "claim-1" } },
      { name: "dv", dataVolume: { name: "dv-1" } },
    ];
    assert.deepEqual(renderLauncherPod(vmi).spec.volumes, [
      { name: "data", persistentVolumeClaim: { claimName: "claim-1" } },
      { name: "dv", persistentVolumeClaim: { claimName: "dv-1" } },
    ]);
    vmi.spec.volumes = [{ name: "root", containerDisk: { image: "reg.test/disk" } }];
    assert.equal(renderLauncherPod(vmi).spec.volumes, undefined, "no claims: no volumes");
  });
});

describe("VMI controller: DataVolume gate (storage contract §4)", () => {
  const PLAY = { playDataVolumes: true };
  const dv = (name: string, phase: string): DataVolume => ({
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: { name, namespace: "default" },
    spec: { source: { blank: {} } },
    status: { phase: phase as never },
  });
  const withDv = (vmi: VirtualMachineInstance) => {
    vmi.spec.volumes = [{ name: "root", dataVolume: { name: "root" } }];
  };
  const cond = (h: Harness) => vmiOf(h)?.status?.conditions?.find((c) => c.type === "DataVolumesReady");

  it("no launcher pod while a DataVolume is missing or being filled: Pending, DataVolumesReady names it and its phase", async (t) => {
    const h = await startHarness([{ ref: resources.vmis, objs: [newVmi("testvmi", withDv)] }], undefined, PLAY);
    t.after(() => h.stop());
    await h.drain();
    assert.equal(podsOf(h).length, 0);
    assert.equal(vmiOf(h)?.status?.phase, "Pending");
    assert.match(cond(h)?.message ?? "", /root \(not found\)/);
    await h.client.create(resources.datavolumes, "default", dv("root", "ImportInProgress"));
    await h.drain();
    assert.equal(podsOf(h).length, 0);
    assert.equal(cond(h)?.status, "False");
    assert.equal(cond(h)?.reason, "NotAllDVsReady");
    assert.match(cond(h)?.message ?? "", /root \(phase ImportInProgress\)/);
    const cur = h.client.peek<DataVolume>(resources.datavolumes, "default", "root")!;
    await h.client.updateStatus(resources.datavolumes, { ...cur, status: { phase: "Succeeded" } });
    await h.drain();
    assert.equal(podsOf(h).length, 1, "the pod once the DataVolume is Succeeded");
    assert.equal(cond(h)?.status, "True");
    assert.equal(cond(h)?.reason, "AllDVsReady");
  });

  it("a WaitForFirstConsumer DataVolume lets the pod go (it is the first consumer)", async (t) => {
    const h = await startHarness(
      [
        { ref: resources.datavolumes, objs: [dv("root", "WaitForFirstConsumer")] },
        { ref: resources.vmis, objs: [newVmi("testvmi", withDv)] },
      ],
      undefined,
      PLAY,
    );
    t.after(() => h.stop());
    await h.drain();
    assert.equal(podsOf(h).length, 1);
    assert.equal(cond(h)?.status, "False");
  });

  it("a persistentVolumeClaim volume naming a missing claim: no pod, Synchronized=False FailedPvcNotFound, until it appears", async (t) => {
    const withClaim = (vmi: VirtualMachineInstance) => {
      vmi.spec.volumes = [{ name: "data", persistentVolumeClaim: { claimName: "missing" } }];
    };
    const h = await startHarness([{ ref: resources.vmis, objs: [newVmi("testvmi", withClaim)] }], undefined, PLAY);
    t.after(() => h.stop());
    await h.drain();
    assert.equal(podsOf(h).length, 0);
    assert.equal(vmiOf(h)?.status?.phase, "Pending");
    const sync = () => vmiOf(h)?.status?.conditions?.find((c) => c.type === "Synchronized");
    assert.equal(sync()?.status, "False");
    assert.equal(sync()?.reason, "FailedPvcNotFound");
    assert.equal(sync()?.message, "PVC default/missing does not exist, waiting for it to appear");
    assert.ok((await h.eventReasons()).includes("FailedPvcNotFound"));
    await h.client.create(resources.pvcs, "default", {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "missing", namespace: "default" },
      spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
    } as never);
    await h.drain();
    assert.equal(podsOf(h).length, 1, "the pod once the claim exists");
    assert.equal(sync(), undefined, "the controller's condition is gone");
  });

  it("missingClaims names each absent claim once", () => {
    const vmi = newVmi("v", (v) => {
      v.spec.volumes = [
        { name: "a", persistentVolumeClaim: { claimName: "x" } },
        { name: "b", persistentVolumeClaim: { claimName: "x" } },
        { name: "c", persistentVolumeClaim: { claimName: "here" } },
        { name: "d", dataVolume: { name: "dv" } },
      ];
    });
    assert.deepEqual(
      missingClaims(vmi, (n) => (n === "here" ? {} : undefined)),
      ["x"],
    );
  });

  it("dataVolumesGate is absent without dataVolume volumes", () => {
    assert.equal(
      dataVolumesGate(newVmi(), () => undefined),
      undefined,
    );
  });
});
