import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import type { DomainStatus } from "../launcher/index.js";
import { classifyPod, computePodStatus, UNPAUSED_GATE } from "./launcher-pod.js";
import {
  HEARTBEAT_ANNOTATION,
  nodeCapacity,
  nodeLease,
  nodeStatus,
  SCHEDULABLE_LABEL,
  withAgentMetadata,
} from "./node-status.js";
import { isPaused, vmiPhaseFor } from "./phase.js";
import type { Pod, VirtualMachineInstance } from "./ports.js";
import { computeVmiStatus } from "./vmi-status.js";

const VMI_UID = "11111111-2222-4333-8444-555555555555";
const T0 = "2026-11-25T10:00:00.000Z";
const T1 = "2026-11-25T10:00:05.000Z";

function pod(over: Partial<Pod["metadata"]> = {}, containers = [{ name: "compute", image: "x" }]): Pod {
  return {
    metadata: {
      name: "virt-launcher-vm1-abcde",
      namespace: "default",
      uid: "99999999-2222-4333-8444-555555555555",
      labels: { "kubevirt.io": "virt-launcher", "kubevirt.io/created-by": VMI_UID },
      ownerReferences: [
        { apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance", name: "vm1", uid: VMI_UID, controller: true },
      ],
      ...over,
    },
    spec: { nodeName: "n1", containers, readinessGates: [{ conditionType: UNPAUSED_GATE }] },
  };
}

describe("classifyPod", () => {
  it("accepts only launcher-shaped pods", () => {
    assert.deepEqual(classifyPod(pod()), {
      kind: "launcher",
      vmiName: "vm1",
      vmiUid: VMI_UID,
      namespace: "default",
      podUid: "99999999-2222-4333-8444-555555555555",
    });
    const cases: [string, Pod][] = [
      ["no label", pod({ labels: {} })],
      ["no owner", pod({ ownerReferences: [] })],
      [
        "owner not a VMI",
        pod({
          ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "r", uid: VMI_UID, controller: true }],
        }),
      ],
      ["no compute container", pod({}, [{ name: "nginx", image: "nginx" }])],
      ["created-by mismatch", pod({ labels: { "kubevirt.io": "virt-launcher", "kubevirt.io/created-by": "other" } })],
    ];
    for (const [name, p] of cases) assert.equal(classifyPod(p).kind, "unsupported", name);
  });
});

describe("computePodStatus", () => {
  it("is Ready only when the launcher answers and every readiness gate is True", () => {
    const p = pod();
    const run = { state: "running", ip: "10.244.0.2", startedAt: T0, answering: true, unpaused: true } as const;
    const s = computePodStatus(p, run, "127.0.0.1", T0);
    assert.equal(s.phase, "Running");
    assert.equal(s.podIP, "10.244.0.2");
    assert.equal(s.conditions?.find((c) => c.type === "Ready")?.status, "True");
    assert.equal(s.conditions?.find((c) => c.type === UNPAUSED_GATE)?.status, "True", "first report seeds the gate");
    // After that the gate is virt-controller's: the runner keeps the condition it finds and derives Ready from it.
    const gated = {
      ...s,
      conditions: s.conditions?.map((c) =>
        c.type === UNPAUSED_GATE ? { ...c, status: "False" as const, reason: "PausedByUser" } : c,
      ),
    };
    const paused = computePodStatus({ ...p, status: gated }, { ...run, unpaused: false }, "127.0.0.1", T1);
    assert.equal(paused.conditions?.find((c) => c.type === "Ready")?.status, "False");
    assert.equal(paused.conditions?.find((c) => c.type === UNPAUSED_GATE)?.status, "False");
    // A domain state that disagrees with the controller's gate does not overwrite it (one writer, no tug of war).
    const stale = computePodStatus({ ...p, status: gated }, run, "127.0.0.1", T1);
    assert.equal(stale.conditions?.find((c) => c.type === UNPAUSED_GATE)?.status, "False");
    assert.equal(stale.conditions?.find((c) => c.type === "Ready")?.status, "False");
    // Unchanged conditions keep their transition time; so a recomputation at a later time equals the stored status.
    assert.deepEqual(computePodStatus({ ...p, status: s }, run, "127.0.0.1", T1), s);
  });
  it("maps exits and refusals to terminal phases", () => {
    const ok = computePodStatus(pod(), { state: "exited", finishedAt: T1, exitCode: 0, reason: "Completed" }, "h", T1);
    assert.equal(ok.phase, "Succeeded");
    const bad = computePodStatus(pod(), { state: "exited", finishedAt: T1, exitCode: 137, reason: "Error" }, "h", T1);
    assert.equal(bad.phase, "Failed");
    const un = computePodStatus(pod(), { state: "unsupported", message: "no" }, "h", T1);
    assert.equal(un.phase, "Failed");
    assert.equal(un.reason, "Unsupported");
  });
});

function vmi(status: VirtualMachineInstance["status"] = {}): VirtualMachineInstance {
  return {
    metadata: { name: "vm1", namespace: "default", uid: VMI_UID },
    spec: { domain: { devices: {} }, networks: [{ name: "default", pod: {} }] },
    status,
  };
}

describe("computeVmiStatus", () => {
  const scheduled = {
    phase: "Scheduled" as const,
    nodeName: "n1",
    phaseTransitionTimestamps: [{ phase: "Scheduled" as const, phaseTransitionTimestamp: T0 }],
  };
  it("a source guest paused by the migration monitor: Paused condition PausedByMigrationMonitor (not by user)", () => {
    const obs = {
      nodeName: "n1",
      domain: { state: "Paused", reason: "Migration" } as const,
      phase: "Running" as const,
      podReady: true,
      now: T1,
    };
    const running = { ...scheduled, phase: "Running" as const };
    const ms = { migrationUid: "m", sourceNode: "n1", targetNode: "n2", mode: "Paused" };
    const s = computeVmiStatus(vmi({ ...running, migrationState: ms }), obs);
    const c = s?.conditions?.find((x) => x.type === "Paused");
    assert.deepEqual([c?.status, c?.reason], ["True", "PausedByMigrationMonitor"]);
    // the switch-over's own pause (mode PreCopy) is no condition
    const plain = computeVmiStatus(vmi({ ...running, migrationState: { ...ms, mode: "PreCopy" } }), obs);
    assert.equal(
      plain?.conditions?.find((x) => x.type === "Paused"),
      undefined,
    );
  });
  it("writes Running once with node, pod IP and Ready, then nothing while nothing changes", () => {
    const obs = {
      nodeName: "n1",
      podIP: "10.244.0.2",
      domain: { state: "Running", reason: "Booted" } as const,
      phase: "Running" as const,
      podReady: true,
      now: T1,
    };
    const s = computeVmiStatus(vmi(scheduled), obs);
    assert.ok(s);
    assert.equal(s.phase, "Running");
    assert.equal(s.interfaces?.[0]?.ipAddress, "10.244.0.2");
    assert.equal(s.interfaces?.[0]?.name, "default");
    assert.deepEqual(
      s.phaseTransitionTimestamps?.map((p) => p.phase),
      ["Scheduled", "Running"],
    );
    assert.equal(s.conditions?.find((c) => c.type === "Ready")?.status, "True");
    assert.equal(computeVmiStatus(vmi(s), { ...obs, now: "2026-11-25T11:00:00.000Z" }), undefined);
    // No regression: a late "Scheduled" report does not undo Running; a final phase stays final.
    assert.equal(computeVmiStatus(vmi(s), { ...obs, phase: "Scheduled" }), undefined);
    const done = computeVmiStatus(vmi(s), {
      ...obs,
      phase: "Succeeded",
      domain: { state: "Shutoff", reason: "Shutdown" },
    });
    assert.equal(done?.phase, "Succeeded");
    assert.equal(computeVmiStatus(vmi(done), { ...obs, phase: "Running" }), undefined);
  });
  it("shows pull failures as Ready=False with the puller's reason and message", () => {
    const s = computeVmiStatus(vmi(scheduled), {
      nodeName: "n1",
      podReady: true,
      pull: { reason: "ErrImagePull", message: "registry a: not found; registry b: connection refused" },
      now: T1,
    });
    const ready = s?.conditions?.find((c) => c.type === "Ready");
    assert.equal(ready?.reason, "ErrImagePull");
    assert.match(ready?.message ?? "", /registry a.*registry b/);
    assert.equal(s?.phase, "Scheduled");
    const cleared = computeVmiStatus(vmi(s), { nodeName: "n1", podReady: true, now: T1 });
    assert.equal(
      cleared?.conditions?.some((c) => c.type === "Ready"),
      false,
    );
  });
});

describe("a VM start, as the pod runner and the VMI sync see it", () => {
  // What the launcher reports while a VM starts: it answers with no domain yet, QEMU is launched paused (-S, libvirt's
  // Paused/StartingUp), then runs. The pod runner reports the pod on every change of what it sees (its unpaused view
  // from isPaused, as pod-runner.ts does); the VMI sync writes the VMI from the domain and the pod in its cache, which
  // may be one pod write behind. Ready — the pod's, hence the VMI's, hence the VM's — must never drop on the way:
  // it did when the start-up pause counted as a pause (the runner set the gate False, then True again).
  const start: (DomainStatus | undefined)[] = [
    undefined,
    { state: "Paused", reason: "StartingUp" },
    { state: "Running", reason: "Booted" },
    { state: "Running", reason: "Unpaused" },
  ];
  const readyOf = (conds: { type: string; status: string }[] | undefined): string =>
    conds?.find((c) => c.type === "Ready")?.status ?? "-";
  const dropped = (trail: string[]): boolean =>
    trail.some((r, i) => r !== "True" && trail.slice(0, i).includes("True"));

  for (const behind of [0, 1]) {
    it(`keeps pod and VMI Ready once True (VMI sync's pod cache ${behind} write(s) behind)`, () => {
      let p = pod();
      const podWrites: Pod[] = [];
      let v = vmi({
        phase: "Scheduled",
        nodeName: "n1",
        phaseTransitionTimestamps: [{ phase: "Scheduled", phaseTransitionTimestamp: T0 }],
      });
      const podTrail: string[] = [];
      const vmiTrail: string[] = [];
      for (const [i, domain] of start.entries()) {
        const now = `2026-11-25T10:00:0${i + 1}.000Z`;
        const unpaused = !isPaused(domain);
        const run = { state: "running" as const, ip: "10.244.0.2", startedAt: T0, answering: true, unpaused };
        const st = computePodStatus(p, run, "127.0.0.1", now);
        if (!isDeepStrictEqual(st, p.status)) {
          p = { ...p, status: st };
          podWrites.push(p);
          podTrail.push(readyOf(st.conditions));
        }
        if (domain === undefined) continue; // no domain yet: the VMI sync writes nothing
        // The VMI sync runs on the domain event (its pod cache maybe behind), then again on the pod's own event.
        for (const cached of [podWrites[Math.max(0, podWrites.length - 1 - behind)], p]) {
          const phase = vmiPhaseFor(domain, v);
          const podReady = readyOf(cached?.status?.conditions) === "True";
          const s = computeVmiStatus(v, { nodeName: "n1", podIP: "10.244.0.2", domain, phase, podReady, now });
          if (!s) continue;
          v = { ...v, status: s };
          vmiTrail.push(readyOf(s.conditions));
        }
      }
      assert.ok(!dropped(podTrail), `pod Ready went ${podTrail.join(" > ")}`);
      assert.ok(!dropped(vmiTrail), `VMI Ready went ${vmiTrail.join(" > ")}`);
      assert.equal(podWrites.length, 1, "the pod runner writes the pod once: the start-up pause changes nothing");
      assert.deepEqual(vmiTrail, ["True"], "the VMI is written once, Running and Ready");
      assert.equal(
        v.status?.conditions?.some((c) => c.type === "Paused"),
        false,
      );
    });
  }
});

describe("node status", () => {
  const m = {
    cpus: 2,
    memoryBytes: 8 * 1024 ** 3,
    address: "127.0.0.1",
    hostname: "host",
    port: 10250,
    kernelVersion: "6.1",
    osImage: "Debian",
    arch: "x64",
    version: "v0.1.0",
  };
  it("publishes capacity, allocatable, Ready, its endpoint, KubeVirt's label and heartbeat", () => {
    const { capacity, allocatable } = nodeCapacity(m);
    assert.equal(capacity.cpu, "2");
    assert.equal(capacity.memory, "8388608Ki");
    assert.equal(allocatable.memory, "8126464Ki");
    assert.equal(capacity["tsvirt.io/local-storage"], "0", "no --node-storage: no local volume space");
    const withDisk = nodeCapacity({ ...m, localStorageBytes: 20 * 1024 ** 3 });
    assert.equal(withDisk.capacity["tsvirt.io/local-storage"], String(20 * 1024 ** 3));
    assert.equal(withDisk.allocatable["tsvirt.io/local-storage"], String(20 * 1024 ** 3));
    const st = nodeStatus({ metadata: { name: "n1" } }, m, T0);
    assert.equal(st.daemonEndpoints?.kubeletEndpoint?.Port, 10250);
    assert.deepEqual(st.addresses?.[0], { type: "InternalIP", address: "127.0.0.1" });
    const ready = st.conditions?.find((c) => c.type === "Ready");
    assert.equal(ready?.status, "True");
    const later = nodeStatus({ metadata: { name: "n1" }, status: st }, m, T1);
    const r2 = later.conditions?.find((c) => c.type === "Ready");
    assert.equal(r2?.lastTransitionTime, T0);
    assert.equal(r2?.lastHeartbeatTime, T1);
    const n = withAgentMetadata({ metadata: { name: "n1", labels: { a: "b" } } }, "n1", m, T1);
    assert.equal(n.metadata.labels?.[SCHEDULABLE_LABEL], "true");
    assert.equal(n.metadata.labels?.a, "b");
    assert.equal(n.metadata.annotations?.[HEARTBEAT_ANNOTATION], T1);
    const lease = nodeLease("n1", T1);
    assert.equal(lease.metadata.namespace, "kube-node-lease");
    assert.equal(lease.spec?.renewTime, "2026-11-25T10:00:05.000000Z");
  });
});
