import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { DomainStatus } from "../launcher/index.js";
import { mapPhase } from "./index.js";
import type { KObject, LauncherConnection, Pod, PreparedVmi, VirtualMachineInstance } from "./ports.js";
import { refs } from "./ports.js";
import { endedStatus, FakeApi } from "./testing.js";
import { VmiSync, type VmiSyncOptions } from "./vmi-sync.js";

const VMI_UID = "11111111-2222-4333-8444-555555555555";
const POD_UID = "99999999-2222-4333-8444-555555555555";
const NOW = "2026-11-25T10:00:00Z";
const KEY = "default/vm1";
const SOCKET = `/node/sockets/${VMI_UID}_sock`;

function vmi(spec: Partial<VirtualMachineInstance["spec"]> = {}): VirtualMachineInstance {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "vm1", namespace: "default", uid: VMI_UID, labels: { "kubevirt.io/nodeName": "n1" } },
    spec: {
      domain: { devices: {} },
      volumes: [{ name: "containerdisk", containerDisk: { image: "reg/guest:1" } }],
      ...spec,
    },
    status: {
      phase: "Scheduled",
      nodeName: "n1",
      phaseTransitionTimestamps: [{ phase: "Scheduled", phaseTransitionTimestamp: NOW }],
    },
  };
}

function launcherPod(): Pod {
  return {
    metadata: {
      name: "virt-launcher-vm1-abcde",
      namespace: "default",
      uid: POD_UID,
      ownerReferences: [
        { apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance", name: "vm1", uid: VMI_UID, controller: true },
      ],
    },
    spec: { nodeName: "n1", containers: [{ name: "compute", image: "x" }] },
    status: { phase: "Running", podIP: "10.244.0.5", conditions: [{ type: "Ready", status: "True" }] },
  };
}

/** The launcher pod once its launcher ended, with its termination message, as a kubelet reports it. */
function endedPod(exitCode: number, message: string): Pod {
  const p = launcherPod();
  p.status = endedStatus(exitCode, message);
  return p;
}

/** A fake launcher behind the well-known socket: the test sets its domain and can close its connection. */
class FakeLauncher {
  readonly synced: PreparedVmi[] = [];
  readonly shutdowns: number[] = [];
  readonly dials: string[] = [];
  /** path → the size the guest sees; every ResizeDisks call. */
  readonly guestBytes = new Map<string, number>();
  readonly resizeCalls: { path: string; bytes: number }[][] = [];
  answering = true;
  refuse?: string;
  private onStatus?: (d: DomainStatus | undefined) => void;
  private closeConn?: () => void;

  dial = async (socket: string): Promise<LauncherConnection> => {
    this.dials.push(socket);
    if (!this.answering) throw new Error(`connect ENOENT ${socket}`);
    let closed!: () => void;
    const done = new Promise<void>((resolve) => {
      closed = resolve;
    });
    this.closeConn = closed;
    return {
      ping: async () => {},
      sync: async (_v, p) => {
        if (this.refuse) throw new Error(this.refuse);
        this.synced.push(p);
      },
      watch: (fn) => {
        this.onStatus = fn;
        return { stop() {}, done };
      },
      shutdown: async (grace) => {
        this.shutdowns.push(grace);
      },
      command: async () => {},
      resizeDisks: async (disks) => {
        this.resizeCalls.push(disks);
        const grown = disks.filter((d) => (this.guestBytes.get(d.path) ?? 0) < d.bytes);
        for (const d of grown) this.guestBytes.set(d.path, d.bytes);
        return grown.map((d) => d.path);
      },
      close() {},
    };
  };

  /** The launcher streams a domain state. */
  emit(d: DomainStatus | undefined): void {
    this.onStatus?.(d);
  }

  /** The launcher went away (its connection closed). */
  drop(): void {
    this.answering = false;
    this.closeConn?.();
  }
}

/** A VmiSync over the fake API, one fake launcher and a recorder that keeps the events. */
function setup(spec: Partial<VirtualMachineInstance["spec"]> = {}, extra: Partial<VmiSyncOptions> = {}) {
  const api = new FakeApi();
  api.put(refs.vmis, vmi(spec));
  const launcher = new FakeLauncher();
  const events: { obj: KObject; type: string; reason: string; message: string }[] = [];
  let pod: Pod | undefined = launcherPod();
  const opts: VmiSyncOptions = {
    node: "n1",
    api,
    dial: launcher.dial,
    socketPath: (uid) => `/node/sockets/${uid}_sock`,
    puller: { pull: async () => ({ path: "/images/guest.qcow2", digest: "sha256:x" }), release: async () => {} },
    getVmi: (key) => (key === KEY ? api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1") : undefined),
    podsOf: (uid) => (uid === VMI_UID && pod ? [pod] : []),
    mapPhase,
    recorder: { event: (obj, type, reason, message) => events.push({ obj, type, reason, message }) },
    now: () => NOW,
    ...extra,
  };
  const mk = () => new VmiSync(opts);
  let sync = mk();
  const cur = () => api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1");
  return {
    api,
    launcher,
    events,
    get sync() {
      return sync;
    },
    phase: () => cur()?.status?.phase,
    cond: (type: string) => cur()?.status?.conditions?.find((c) => c.type === type),
    setPod(p: Pod | undefined) {
      pod = p;
    },
    /** The agent restarts: a new VmiSync, nothing remembered. */
    restart() {
      sync.close();
      sync = mk();
    },
    /** The launcher reports a domain state; the round its watch enqueues runs. */
    async report(d: DomainStatus | undefined) {
      if (!sync.connection(KEY)) await sync.reconcile(KEY);
      launcher.emit(d);
      return sync.reconcile(KEY);
    },
  };
}

/** A VmiSync over setup()'s API and launcher whose node cache has the VMI only while `cached()` says so. */
function cacheSync(s: ReturnType<typeof setup>, cached: () => boolean): VmiSync {
  return new VmiSync({
    node: "n1",
    api: s.api,
    dial: s.launcher.dial,
    socketPath: () => SOCKET,
    puller: { pull: async () => ({ path: "/x", digest: "sha256:x" }), release: async () => {} },
    getVmi: () => (cached() ? s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1") : undefined),
    podsOf: () => [launcherPod()],
    mapPhase,
    now: () => NOW,
  });
}

describe("VmiSync: online expansion of claim disks", () => {
  it("sends the claims' sizes once the guest runs, again when a volume grew, and once more after an agent restart", async (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), "tsvirt-grow-"));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    mkdirSync(join(dataDir, "volumes", "pvc-1"), { recursive: true });
    const image = join(dataDir, "volumes", "pvc-1", "disk.img");
    writeFileSync(image, "");
    const sizes = new Map([[image, 1024]]);
    const s = setup(
      {
        volumes: [
          { name: "containerdisk", containerDisk: { image: "reg/guest:1" } },
          { name: "data", persistentVolumeClaim: { claimName: "data" } },
        ],
      },
      { dataDir, volumeBytes: async (p) => sizes.get(p) ?? 0 },
    );
    s.api.put(refs.pvcs, {
      metadata: { name: "data", namespace: "default" },
      spec: { volumeName: "pvc-1" },
      status: { phase: "Bound" },
    } as KObject);
    s.api.put(refs.pvs, {
      metadata: { name: "pvc-1", annotations: { "pv.kubernetes.io/provisioned-by": "tsvirt.io/local" } },
      spec: {
        nodeAffinity: {
          required: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["n1"] }] },
            ],
          },
        },
      },
    } as KObject);
    await s.sync.reconcile(KEY);
    assert.equal(s.launcher.resizeCalls.length, 0, "no running domain yet");
    await s.report({ state: "Running", reason: "Booted" });
    assert.deepEqual(s.launcher.resizeCalls, [[{ path: image, bytes: 1024 }]], "the first look after boot");
    await s.report({ state: "Running", reason: "Booted" });
    assert.equal(s.launcher.resizeCalls.length, 1, "unchanged: not asked again");
    sizes.set(image, 4096); // the volume sync grew disk.img
    await s.sync.reconcile(KEY);
    assert.deepEqual(s.launcher.resizeCalls.at(-1), [{ path: image, bytes: 4096 }]);
    assert.equal(s.launcher.guestBytes.get(image), 4096);
    const resized = s.events.findLast((e) => e.reason === "VolumeResized");
    assert.ok(resized);
    // names the volume and its size, not the node's path
    assert.doesNotMatch(resized.message, /\//);
    assert.match(resized.message, /: data to 4Ki$/);
    // kill -9 of the agent after growing the file, before telling the launcher: the new agent compares anew.
    sizes.set(image, 8192);
    s.restart();
    await s.report({ state: "Running", reason: "Booted" });
    assert.deepEqual(s.launcher.resizeCalls.at(-1), [{ path: image, bytes: 8192 }]);
    assert.equal(s.launcher.guestBytes.get(image), 8192);
  });
});

describe("VmiSync: owns the launcher client at the well-known socket", () => {
  it("dials <node dir>/sockets/<uid>_sock once, sends the VMI with its pulled disk once, writes Running once", async () => {
    const s = setup();
    await s.sync.reconcile(KEY);
    assert.deepEqual(s.launcher.dials, [SOCKET]);
    assert.deepEqual(s.launcher.synced, [
      { baseImages: { containerdisk: "/images/guest.qcow2" }, taps: { default: "tap0" } },
    ]);
    assert.equal(s.phase(), "Scheduled");
    assert.equal(s.api.writes.length, 0, "no domain yet: nothing to write");
    await s.report({ state: "Running", reason: "Booted" });
    assert.equal(s.phase(), "Running");
    const v = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1");
    assert.equal(v?.status?.interfaces?.[0]?.ipAddress, "10.244.0.5", "the pod IP, from the pod in the API");
    assert.equal(s.cond("Ready")?.status, "True");
    assert.deepEqual(
      v?.status?.volumeStatus,
      [{ name: "containerdisk", target: "", containerDiskVolume: { digest: "sha256:x" } }],
      "the digest the disk booted from is recorded",
    );
    const writes = s.api.writes.length;
    await s.report({ state: "Running", reason: "Booted" });
    await s.report({ state: "Paused", reason: "User" });
    assert.equal(s.phase(), "Running", "paused is still Running");
    await s.report({ state: "Running", reason: "Unpaused" });
    assert.equal(s.launcher.synced.length, 1, "Sync sent once");
    assert.deepEqual(s.launcher.dials, [SOCKET], "one client per VMI");
    assert.equal(s.api.writes.length, writes + 2, "one write for Paused, one for its end; none for a repeat");
    assert.ok(s.sync.connection(KEY), "virt-api's verbs reach the same client");
  });

  it("a volume the node cannot prepare (missing ConfigMap) is Synchronized=False naming it; nothing is sent", async () => {
    const s = setup({
      volumes: [
        { name: "containerdisk", containerDisk: { image: "reg/guest:1" } },
        { name: "cfg", configMap: { name: "absent" } },
      ],
    });
    const r = await s.sync.reconcile(KEY);
    assert.ok(r?.requeueAfterMs !== undefined, "retried");
    assert.deepEqual(s.launcher.synced, []);
    const c = s.cond("Synchronized");
    assert.equal(c?.status, "False");
    assert.equal(c?.reason, "SyncFailed");
    assert.match(c?.message ?? "", /spec\.volumes\[1\]\.configMap\.name.*ConfigMap "absent" not found/);
  });

  it("a launcher pod that is not Running yet is not dialled; one whose socket does not answer yet is retried", async () => {
    const s = setup();
    s.setPod({ ...launcherPod(), status: { phase: "Pending" } });
    assert.equal(await s.sync.reconcile(KEY), undefined);
    assert.deepEqual(s.launcher.dials, []);
    s.setPod(launcherPod());
    s.launcher.answering = false;
    const r = await s.sync.reconcile(KEY);
    assert.ok(r?.requeueAfterMs !== undefined && r.requeueAfterMs <= 1_000, "requeued shortly");
    assert.equal(s.cond("Synchronized"), undefined, "a launcher starting up is no failure");
    s.launcher.answering = true;
    await s.sync.reconcile(KEY);
    assert.equal(s.launcher.synced.length, 1);
  });

  it("re-dials after the connection drops and after an agent restart; a restarted agent writes nothing until the launcher reports", async () => {
    const s = setup();
    await s.report({ state: "Running", reason: "Booted" });
    assert.equal(s.cond("Ready")?.status, "True");
    // The connection drops (e.g. the launcher is busy restarting its socket): the next round dials again.
    s.launcher.drop();
    await new Promise((r) => setImmediate(r));
    s.launcher.answering = true;
    await s.sync.reconcile(KEY);
    assert.equal(s.launcher.dials.length, 2);
    assert.equal(s.launcher.synced.length, 1, "the VMI is not sent twice");
    // The agent restarts (kill -9): the new one dials the same socket; no write before the launcher reports.
    const writes = s.api.writes.length;
    s.restart();
    await s.sync.reconcile(KEY);
    assert.deepEqual(s.launcher.dials.slice(-1), [SOCKET]);
    assert.equal(s.api.writes.length, writes, "no write before the launcher reports");
    assert.equal(s.cond("Ready")?.status, "True", "Ready does not flip");
    await s.report({ state: "Running", reason: "Booted" });
    assert.equal(s.api.writes.length, writes, "nothing changed");
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
    { name: "defined, not started yet", spec: {}, domain: { state: "Shutoff", reason: "Unknown" }, want: "Running" },
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

  it("a deleted VMI: one Shutdown with its grace period; the guest's end in the pod's termination message makes it Succeeded", async () => {
    const s = setup({ terminationGracePeriodSeconds: 30 });
    await s.report({ state: "Running", reason: "Booted" });
    deleting(s);
    await s.report({ state: "Running", reason: "Booted" });
    await s.report({ state: "ShuttingDown", reason: "User" });
    assert.deepEqual(s.launcher.shutdowns, [30], "asked once");
    // The agent restarts while the launcher ends; the launcher's last words are in its pod's status.
    s.restart();
    s.launcher.drop();
    const p = endedPod(0, '{"state":"Shutoff","reason":"Shutdown"}');
    p.metadata.deletionTimestamp = NOW;
    s.setPod(p);
    await s.sync.reconcile(KEY);
    assert.equal(s.phase(), "Succeeded");
  });

  it("a VMI missing from the node's cache: its launcher is shut down only once the API confirms it gone", async () => {
    let cached = true;
    const s = setup({}, {});
    const sync = cacheSync(s, () => cached);
    await sync.reconcile(KEY);
    cached = false;
    await sync.reconcile(KEY);
    assert.deepEqual(s.launcher.shutdowns, [], "still in the API: the cache lags");
    await s.api.delete(refs.vmis, "default", "vm1");
    await sync.reconcile(KEY);
    assert.deepEqual(s.launcher.shutdowns, [30], "gone: its guest is shut down");
    assert.equal(sync.connection(KEY), undefined, "and its client dropped");
  });

  it("a VMI migrated away: nothing written while its domain leaves; then forgotten without a Shutdown", async () => {
    let cached = true;
    const s = setup({}, {});
    const sync = cacheSync(s, () => cached);
    await sync.reconcile(KEY);
    s.launcher.emit({ state: "Running", reason: "Booted" });
    await sync.reconcile(KEY);
    assert.equal(s.phase(), "Running");
    // The source agent recorded the migration's end; the domain leaves (Shutoff/Migrated), the pod ends.
    const v = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1") as VirtualMachineInstance;
    s.api.put(refs.vmis, {
      ...v,
      status: {
        ...v.status,
        migrationState: { migrationUid: "m", sourceNode: "n1", targetNode: "n2", completed: true },
      },
    });
    const writes = s.api.writes.length;
    s.launcher.emit({ state: "Shutoff", reason: "Migrated" });
    await sync.reconcile(KEY);
    assert.equal(s.api.writes.length, writes, "not this node's to write any more");
    // The target's handover moves the VMI (and its label) to n2: it leaves this node's cache.
    const h = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1") as VirtualMachineInstance;
    s.api.put(refs.vmis, { ...h, status: { ...h.status, nodeName: "n2" } });
    cached = false;
    await sync.reconcile(KEY);
    assert.deepEqual(s.launcher.shutdowns, [], "no Shutdown of a migrated domain");
    assert.equal(sync.connection(KEY), undefined, "forgotten");
    assert.equal(s.phase(), "Running", "never Failed or Succeeded by the source");
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
    const launcher = new FakeLauncher();
    const sync = new VmiSync({
      node: "n1",
      api: s.api,
      dial: launcher.dial,
      socketPath: () => SOCKET,
      puller: { pull: async () => ({ path: "/x", digest: "sha256:x" }), release: async () => {} },
      getVmi: () => stale,
      podsOf: () => [launcherPod()],
      mapPhase,
      now: () => NOW,
    });
    await sync.reconcile(KEY);
    launcher.emit({ state: "Shutoff", reason: "Shutdown" });
    await sync.reconcile(KEY);
    const v = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1");
    assert.equal(v?.status?.phase, "Succeeded");
    assert.equal(v?.metadata.labels?.other, "writer", "the other writer's change kept");
  });
});

describe("VmiSync: failures say why", () => {
  it("a Sync the launcher refuses: Synchronized=False/SyncFailed with the message, one event, requeued with back-off", async () => {
    const refusal = "Cannot access storage file '/data/pods/x/qemu/scratch/disk.qcow2': Permission denied";
    const s = setup({}, { syncBackoffMs: { initial: 1_000, max: 8_000 } });
    s.launcher.refuse = refusal;
    const r1 = await s.sync.reconcile(KEY);
    const c = s.cond("Synchronized");
    assert.equal(c?.status, "False");
    assert.equal(c?.reason, "SyncFailed");
    assert.match(c?.message ?? "", /Permission denied/);
    assert.equal(r1?.requeueAfterMs, 1_000);
    const r2 = await s.sync.reconcile(KEY);
    assert.equal(r2?.requeueAfterMs, 2_000, "the back-off grows");
    assert.equal(s.events.length, 1, "the same failure is not posted again within the interval");
    const ev = s.events[0]!;
    assert.equal(ev.type, "Warning");
    assert.equal(ev.reason, "SyncFailed");
    assert.match(ev.message, /Permission denied/);
    assert.equal(ev.obj.kind, "VirtualMachineInstance");
    assert.equal(ev.obj.metadata.uid, VMI_UID);
    // The launcher accepts it later: the condition goes.
    delete s.launcher.refuse;
    await s.sync.reconcile(KEY);
    assert.equal(s.cond("Synchronized"), undefined);
  });

  it("events of a failure repeat only after the interval", async () => {
    const s = setup({}, { eventIntervalMs: 0 });
    s.launcher.refuse = "boom";
    await s.sync.reconcile(KEY);
    await s.sync.reconcile(KEY);
    assert.equal(s.events.length, 2);
  });

  it("a launcher pod that failed: its log's last words reach the VMI's condition and an event, even once the VMI is Failed", async () => {
    const s = setup();
    s.launcher.answering = false;
    const p = endedPod(1, "starting libvirtd\nlibvirtd died: no space");
    s.setPod(p);
    // The VMI controller has already failed the VMI on the pod's failure.
    const v = s.api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1")!;
    v.status = { ...v.status, phase: "Failed", reason: "PodFailed" };
    s.api.put(refs.vmis, v);
    await s.sync.reconcile(KEY);
    const c = s.cond("Synchronized");
    assert.equal(c?.reason, "SyncFailed");
    assert.match(c?.message ?? "", /exit code 1.*libvirtd died: no space/s);
    assert.equal(s.events.length, 1);
    const writes = s.api.writes.length;
    await s.sync.reconcile(KEY);
    assert.equal(s.api.writes.length, writes, "written once");
  });

  it("a socket that never answers while its pod runs becomes a failure after the dial timeout", async () => {
    const s = setup({}, { dialTimeoutMs: -1 });
    s.launcher.answering = false;
    await s.sync.reconcile(KEY);
    assert.match(s.cond("Synchronized")?.message ?? "", new RegExp(`does not answer on ${SOCKET}`));
  });

  it("an image that cannot be pulled: ErrImagePull on Ready and a SyncFailed event", async () => {
    const s = setup(
      {},
      {
        puller: {
          pull: async () => {
            throw new Error("reg/guest:1: not found in any registry");
          },
          release: async () => {},
        },
      },
    );
    await s.sync.reconcile(KEY);
    assert.equal(s.cond("Ready")?.reason, "ErrImagePull");
    assert.equal(s.events[0]?.reason, "SyncFailed");
    assert.match(s.events[0]?.message ?? "", /not found in any registry/);
    s.sync.close();
  });
});

describe("VmiSync on the work queue", () => {
  it("runs level-triggered: a domain event enqueues the VMI's key and the workers converge", async () => {
    const s = setup();
    s.sync.start();
    s.sync.enqueue(KEY);
    for (let i = 0; i < 200 && s.launcher.synced.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    s.launcher.emit({ state: "Running", reason: "Booted" });
    for (let i = 0; i < 200 && s.phase() !== "Running"; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(s.phase(), "Running");
    s.sync.close();
  });
});
