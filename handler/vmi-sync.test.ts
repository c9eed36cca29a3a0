import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mapPhase } from "./index.js";
import type { LauncherConnection, PreparedVmi } from "./ports.js";
import { refs } from "./ports.js";
import { FakeApi } from "./testing.js";
import type { DomainStatus, Pod, VirtualMachineInstance } from "./types.js";
import { VmiSync } from "./vmi-sync.js";

const VMI_UID = "11111111-2222-4333-8444-555555555555";
const POD_UID = "99999999-2222-4333-8444-555555555555";
const NOW = "2026-11-25T10:00:00Z";

function vmi(spec: Partial<VirtualMachineInstance["spec"]> = {}): VirtualMachineInstance {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "vm1", namespace: "default", uid: VMI_UID, labels: { "kubevirt.io/nodeName": "n1" } },
    spec: { volumes: [{ name: "containerdisk", containerDisk: { image: "reg/guest:1" } }], ...spec },
    status: {
      phase: "Scheduled",
      nodeName: "n1",
      phaseTransitionTimestamps: [{ phase: "Scheduled", phaseTransitionTimestamp: NOW }],
    },
  };
}

const pod: Pod = {
  metadata: { name: "virt-launcher-vm1-abcde", namespace: "default", uid: POD_UID },
  spec: { nodeName: "n1", containers: [{ name: "compute", image: "x" }] },
  status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] },
};

/** A VmiSync over a fake API and one fake launcher whose domain state the test sets. */
function setup(spec: Partial<VirtualMachineInstance["spec"]> = {}) {
  const api = new FakeApi();
  api.put(refs.vmis, vmi(spec));
  const synced: PreparedVmi[] = [];
  const shutdowns: number[] = [];
  let domain: DomainStatus | undefined;
  let attached = true;
  let connected = true;
  const conn = {
    sync: async (_v: VirtualMachineInstance, p: PreparedVmi) => {
      synced.push(p);
    },
    shutdown: async (grace: number) => {
      shutdowns.push(grace);
    },
  } as unknown as LauncherConnection;
  const sync = new VmiSync({
    node: "n1",
    api,
    launchers: {
      podForVmi: (u) => (u === VMI_UID && attached ? POD_UID : undefined),
      connection: () => (connected ? conn : undefined),
      domainOf: () => domain,
      ipOf: () => "10.244.0.5",
    },
    puller: { pull: async () => ({ path: "/images/guest.qcow2", digest: "sha256:x" }), release: async () => {} },
    getVmi: () => api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1"),
    getPod: () => pod,
    mapPhase,
    now: () => NOW,
  });
  const phase = () => api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1")?.status?.phase;
  return {
    api,
    sync,
    synced,
    shutdowns,
    phase,
    /** The launcher has exited: its connection is gone, its last domain state stays known. */
    launcherGone() {
      connected = false;
    },
    /** A restarted agent: no launcher re-attached yet. */
    detach() {
      attached = false;
    },
    async report(d: DomainStatus | undefined) {
      domain = d;
      await sync.trigger(VMI_UID);
    },
  };
}

describe("VmiSync (phase from handler/phase.ts)", () => {
  it("a restarted agent writes nothing for a Running VMI until its launcher reports (Ready does not flip)", async () => {
    const s = setup();
    await s.report({ state: "Running", reason: "Booted" });
    const ready = () =>
      s.api
        .peek<VirtualMachineInstance>(refs.vmis, "default", "vm1")
        ?.status?.conditions?.find((c) => c.type === "Ready")?.status;
    assert.equal(ready(), "True");
    const writes = s.api.writes.length;
    // The new agent: no launcher re-attached yet, so no pod, connection or domain state.
    s.detach();
    await s.report(undefined);
    assert.equal(s.api.writes.length, writes, "no write before the launcher reports");
    assert.equal(ready(), "True");
  });

  it("sends the VMI with its pulled disk once, then writes Running once", async () => {
    const s = setup();
    await s.report(undefined);
    assert.deepEqual(s.synced, [{ baseImages: { containerdisk: "/images/guest.qcow2" }, taps: { default: "tap0" } }]);
    assert.equal(s.phase(), "Scheduled");
    assert.equal(s.api.writes.length, 0, "no domain yet: nothing to write");
    await s.report({ state: "Running", reason: "Booted" });
    assert.equal(s.phase(), "Running");
    const v = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1");
    assert.equal(v?.status?.interfaces?.[0]?.ipAddress, "10.244.0.5");
    assert.equal(v?.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    assert.deepEqual(
      (v?.status as { volumeStatus?: unknown } | undefined)?.volumeStatus,
      [{ name: "containerdisk", target: "", containerDiskVolume: { digest: "sha256:x" } }],
      "the digest the disk booted from is recorded",
    );
    const writes = s.api.writes.length;
    await s.report({ state: "Running", reason: "Booted" });
    await s.report({ state: "Paused", reason: "User" });
    assert.equal(s.phase(), "Running", "paused is still Running");
    await s.report({ state: "Running", reason: "Unpaused" });
    assert.equal(s.synced.length, 1, "Sync sent once");
    assert.equal(s.api.writes.length, writes + 2, "one write for Paused, one for its end; none for a repeat");
  });

  it("a volume the node cannot prepare (missing ConfigMap) is Synchronized=False naming it; nothing is sent", async () => {
    const s = setup({
      volumes: [
        { name: "containerdisk", containerDisk: { image: "reg/guest:1" } },
        { name: "cfg", configMap: { name: "absent" } },
      ],
    });
    await s.report(undefined);
    s.sync.close(); // stop the retry timer
    assert.deepEqual(s.synced, []);
    const c = s.api
      .peek<VirtualMachineInstance>(refs.vmis, "default", "vm1")
      ?.status?.conditions?.find((x) => x.type === "Synchronized");
    assert.equal(c?.status, "False");
    assert.equal(c?.reason, "SyncFailed");
    assert.match(c?.message ?? "", /spec\.volumes\[1\]\.configMap\.name.*ConfigMap "absent" not found/);
  });

  it("the start-up pause (QEMU launched, not yet continued) writes Running without a Paused condition, once", async () => {
    const s = setup();
    await s.report({ state: "Paused", reason: "StartingUp" });
    assert.equal(s.phase(), "Running");
    const v = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1");
    assert.equal(
      v?.status?.conditions?.find((c) => c.type === "Paused"),
      undefined,
    );
    assert.equal(v?.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    const writes = s.api.writes.length;
    await s.report({ state: "Running", reason: "Unpaused" });
    assert.equal(s.api.writes.length, writes, "its end changes nothing");
  });

  const stops: { name: string; spec: Partial<VirtualMachineInstance["spec"]>; domain: DomainStatus; want: string }[] = [
    { name: "guest shut down", spec: {}, domain: { state: "Shutoff", reason: "Shutdown" }, want: "Succeeded" },
    { name: "QEMU crashed", spec: {}, domain: { state: "Shutoff", reason: "Crashed" }, want: "Failed" },
    {
      name: "destroyed after the grace period (ACPI)",
      spec: {},
      domain: { state: "Shutoff", reason: "Destroyed" },
      want: "Failed",
    },
    {
      name: "destroyed with grace period 0",
      spec: { terminationGracePeriodSeconds: 0 },
      domain: { state: "Shutoff", reason: "Destroyed" },
      want: "Succeeded",
    },
    {
      name: "defined, not started yet",
      spec: {},
      domain: { state: "Shutoff", reason: "Unknown" },
      want: "Running",
    },
  ];
  for (const c of stops) {
    it(`Running, then ${c.name} → ${c.want}`, async () => {
      const s = setup(c.spec);
      await s.report({ state: "Running", reason: "Booted" });
      await s.report(c.domain);
      assert.equal(s.phase(), c.want);
    });
  }

  /** The VMI as the API has it, with a deletionTimestamp (a stop or a delete). */
  const deleting = (s: ReturnType<typeof setup>): VirtualMachineInstance => {
    const v = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1")!;
    v.metadata.deletionTimestamp = NOW;
    v.metadata.finalizers = ["foregroundDeleteVirtualMachine"];
    return s.api.put(refs.vmis, v);
  };

  it("a deleted VMI: one Shutdown with its grace period; the guest's power-off makes it Succeeded", async () => {
    const s = setup({ terminationGracePeriodSeconds: 30 });
    await s.report({ state: "Running", reason: "Booted" });
    deleting(s);
    await s.report({ state: "Running", reason: "Booted" });
    await s.report({ state: "ShuttingDown", reason: "User" });
    assert.deepEqual(s.shutdowns, [30], "asked once");
    assert.equal(s.sync.settled(VMI_UID), true, "nothing final to record yet: Running");
    // The launcher has gone; the domain's end is what it reported last (or left in its termination log).
    s.launcherGone();
    await s.report({ state: "Shutoff", reason: "Shutdown" });
    assert.equal(s.phase(), "Succeeded");
    assert.equal(s.sync.settled(VMI_UID), true);
  });

  it("a final phase whose write meets a stale VMI is written on the latest one (before the pod may go)", async () => {
    const s = setup();
    await s.report({ state: "Running", reason: "Booted" });
    deleting(s);
    await s.report({ state: "Running", reason: "Booted" });
    // The agent's cache lags one write behind the API (another writer added a label).
    const stale = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1")!;
    const cur = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1")!;
    cur.metadata.labels = { ...cur.metadata.labels, other: "writer" };
    s.api.put(refs.vmis, cur);
    const sync = new VmiSync({
      node: "n1",
      api: s.api,
      launchers: {
        podForVmi: () => POD_UID,
        connection: () => undefined,
        domainOf: () => ({ state: "Shutoff", reason: "Shutdown" }),
        ipOf: () => "10.244.0.5",
      },
      puller: { pull: async () => ({ path: "/x", digest: "sha256:x" }), release: async () => {} },
      getVmi: () => stale,
      getPod: () => pod,
      mapPhase,
      now: () => NOW,
    });
    assert.equal(sync.settled(VMI_UID), false, "Succeeded is due and not recorded");
    await sync.trigger(VMI_UID);
    const v = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1");
    assert.equal(v?.status?.phase, "Succeeded");
    assert.equal(v?.metadata.labels?.other, "writer", "the other writer's change kept");
    assert.equal(sync.settled(VMI_UID), true);
  });
});
