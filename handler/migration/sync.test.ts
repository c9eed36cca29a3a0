import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DomainStatus, MigrateStartParams, MigrateStatusResult } from "../../launcher/index.js";
import type { MigrationLauncher, Pod, VirtualMachineInstance } from "../ports.js";
import { refs } from "../ports.js";
import { endedStatus, FakeApi } from "../testing.js";
import { MIG, migratingVmi } from "./fixtures.js";
import { MIGRATION_DOMAIN_XML_ANNOTATION, MIGRATION_JOB_UID_LABEL, type MigrationState, portsMap } from "./plan.js";
import { MigrationSync, migratedMessage } from "./sync.js";

const KEY = "default/vm1";
const NOW = "2026-12-07T07:00:00Z";
const PORTS = { libvirt: 49152, qemu: 49153, nbd: 49154 };
const XML = `<domain><devices><disk><source file="/n2/ov.qcow2"/><target dev="vda"/><alias name="ua-containerdisk"/></disk></devices></domain>`;

const vmi = migratingVmi;

function pod(name: string, node: string, ip: string, extra: Partial<Pod["metadata"]> = {}): Pod {
  return {
    metadata: {
      name,
      namespace: "default",
      uid: `${name}-uid`,
      ownerReferences: [{ apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance", name: "vm1", uid: "vmi-uid" }],
      ...extra,
    },
    spec: { nodeName: node, containers: [] },
    status: { phase: "Running", podIP: ip, conditions: [{ type: "Ready", status: "True" }] },
  };
}

class FakeLauncher implements MigrationLauncher {
  calls: string[] = [];
  started?: MigrateStartParams;
  job: MigrateStatusResult = { state: "none" };
  dom: DomainStatus | undefined;
  async ping() {}
  async domain() {
    return this.dom;
  }
  async prepareMigrationTarget(p: { sourceNodeAddress?: string }) {
    this.calls.push(`prepare:${p.sourceNodeAddress}`);
    return { address: "10.244.1.5", ports: PORTS, domainXml: XML };
  }
  async migrateStart(p: MigrateStartParams) {
    this.calls.push("start");
    this.started = p;
    this.job = { state: "running", migrationUid: MIG };
    return this.job;
  }
  async migrateStatus() {
    return this.job;
  }
  async migrateAbort() {
    this.calls.push("abort");
    return { aborted: true };
  }
  close() {}
}

function setup(node: string) {
  const api = new FakeApi();
  const launcher = new FakeLauncher();
  const firewall: unknown[] = [];
  const released: string[] = [];
  const localPods: Pod[] = [];
  /** The launcher's socket refuses (it ended, or has not started). */
  const link = { down: false };
  const sync = new MigrationSync({
    node,
    api,
    dial: async () => {
      if (link.down) throw new Error("connect ENOENT");
      return launcher;
    },
    socketPath: (uid) => `/node/sockets/${uid}_sock`,
    getVmi: () => api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1"),
    podsOf: () => localPods,
    prepare: async () => ({ baseImages: { containerdisk: "/n2/images/base.qcow2" } }),
    release: async (uid) => {
      released.push(uid);
    },
    firewall: async (podUid, sourceIp, ports) => {
      firewall.push({ podUid, sourceIp, ports });
    },
    now: () => NOW,
  });
  const current = () => api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1") as VirtualMachineInstance;
  return { api, launcher, link, firewall, released, localPods, sync, current };
}

describe("MigrationSync, target", () => {
  it("prepares the target: launcher, firewall from the source pod IP only, XML on the pod, address and ports", async () => {
    const t = setup("n2");
    t.api.put(refs.vmis, vmi({}));
    t.api.put(refs.pods, pod("src", "n1", "10.244.0.7"));
    const target = t.api.put(refs.pods, pod("tgt", "n2", "10.244.1.5", { labels: { [MIGRATION_JOB_UID_LABEL]: MIG } }));
    t.localPods.push(target);
    await t.sync.reconcile(KEY);
    assert.deepEqual(t.launcher.calls, ["prepare:10.244.0.7"]);
    assert.deepEqual(t.firewall, [{ podUid: "tgt-uid", sourceIp: "10.244.0.7", ports: [49152, 49153, 49154] }]);
    const annotated = t.api.peek<Pod>(refs.pods, "default", "tgt");
    assert.equal(annotated?.metadata.annotations?.[MIGRATION_DOMAIN_XML_ANNOTATION], XML);
    const ms = t.current().status?.migrationState;
    assert.equal(ms?.targetNodeAddress, "10.244.1.5");
    assert.deepEqual(ms?.targetDirectMigrationNodePorts, portsMap(PORTS));
    // Level-triggered: the next round (pod event) sees everything published and writes nothing.
    t.localPods[0] = annotated as Pod;
    const writes = t.api.writes.length;
    await t.sync.reconcile(KEY);
    assert.equal(t.api.writes.length, writes);
    assert.deepEqual(t.launcher.calls, ["prepare:10.244.0.7"]);
  });

  it("without sourcePod, accepts the VMI's pod-network address (the source pod's IP under masquerade)", async () => {
    const t = setup("n2");
    const v = vmi({});
    delete v.status?.migrationState?.sourcePod;
    t.api.put(refs.vmis, v);
    t.localPods.push(
      t.api.put(refs.pods, pod("tgt", "n2", "10.244.1.5", { labels: { [MIGRATION_JOB_UID_LABEL]: MIG } })),
    );
    await t.sync.reconcile(KEY);
    assert.deepEqual(t.firewall, [{ podUid: "tgt-uid", sourceIp: "10.244.0.7", ports: [49152, 49153, 49154] }]);
  });

  it("hands over in ONE update once completed and the domain runs here", async () => {
    const t = setup("n2");
    t.api.put(
      refs.vmis,
      vmi({
        targetNodeAddress: "10.244.1.5",
        targetDirectMigrationNodePorts: portsMap(PORTS),
        startTimestamp: NOW,
        completed: true,
        endTimestamp: NOW,
      }),
    );
    t.localPods.push(pod("tgt", "n2", "10.244.1.5", { labels: { [MIGRATION_JOB_UID_LABEL]: MIG } }));
    t.launcher.dom = { state: "Paused", reason: "Migration" };
    assert.deepEqual(await t.sync.reconcile(KEY), { requeueAfterMs: 200 }, "not running yet: wait");
    t.launcher.dom = { state: "Running", reason: "Migrated" };
    const before = t.api.writes.length;
    await t.sync.reconcile(KEY);
    assert.equal(t.api.writes.length, before + 1, "one update");
    const v = t.current();
    assert.equal(v.status?.nodeName, "n2");
    assert.equal(v.metadata.labels?.["kubevirt.io/nodeName"], "n2");
    assert.equal(v.status?.interfaces?.[0]?.ipAddress, "10.244.1.5");
    assert.equal(v.status?.migrationState?.targetNodeDomainReadyTimestamp, NOW);
    assert.equal(v.status?.migrationState?.completed, true);
    // Handed over: this node is the owner now, not a target; nothing more to do.
    await t.sync.reconcile(KEY);
    assert.equal(t.api.writes.length, before + 1);
  });

  it("releases the target's preparation when the migration failed", async () => {
    const t = setup("n2");
    t.api.put(refs.vmis, vmi({}));
    t.api.put(refs.pods, pod("src", "n1", "10.244.0.7"));
    t.localPods.push(
      t.api.put(refs.pods, pod("tgt", "n2", "10.244.1.5", { labels: { [MIGRATION_JOB_UID_LABEL]: MIG } })),
    );
    await t.sync.reconcile(KEY);
    const cur = t.current();
    t.api.put(refs.vmis, {
      ...cur,
      status: { ...cur.status, migrationState: { ...cur.status?.migrationState, failed: true } },
    });
    await t.sync.reconcile(KEY);
    await t.sync.reconcile(KEY);
    assert.deepEqual(t.released, ["vmi-uid"]);
  });
});

describe("MigrationSync, source", () => {
  function ready(t: ReturnType<typeof setup>, ms: Partial<MigrationState> = {}) {
    t.api.put(
      refs.vmis,
      vmi({ targetNodeAddress: "10.244.1.5", targetDirectMigrationNodePorts: portsMap(PORTS), ...ms }),
    );
    t.api.put(refs.pods, pod("tgt", "n2", "10.244.1.5", { annotations: { [MIGRATION_DOMAIN_XML_ANNOTATION]: XML } }));
  }

  it("starts with the destination XML, follows the job, records completion", async () => {
    const t = setup("n1");
    ready(t);
    await t.sync.reconcile(KEY);
    assert.deepEqual(t.launcher.calls, ["start"]);
    assert.equal(t.launcher.started?.domainXml, XML);
    assert.equal(t.launcher.started?.destinationUri, "qemu+tcp://10.244.1.5:49152/system");
    assert.deepEqual(t.launcher.started?.copyStorage, ["vda"]);
    assert.equal(t.current().status?.migrationState?.startTimestamp, NOW);
    const writes = t.api.writes.length;
    assert.deepEqual(await t.sync.reconcile(KEY), { requeueAfterMs: 500 }, "running: followed");
    assert.equal(t.api.writes.length, writes);
    t.launcher.job = { state: "completed", migrationUid: MIG, downtimeMs: 40 };
    await t.sync.reconcile(KEY);
    const ms = t.current().status?.migrationState;
    assert.equal(ms?.completed, true);
    assert.equal(ms?.endTimestamp, NOW);
    assert.equal(ms?.failed, false);
    assert.equal(t.current().status?.nodeName, "n1", "the source never hands over");
    assert.deepEqual(t.launcher.calls, ["start"]);
  });

  it("a restarted agent finds the job running and only records the start", async () => {
    const t = setup("n1");
    ready(t);
    t.launcher.job = { state: "running", migrationUid: MIG };
    await t.sync.reconcile(KEY);
    assert.deepEqual(t.launcher.calls, [], "no second MigrateStart");
    assert.equal(t.current().status?.migrationState?.startTimestamp, NOW);
  });

  it("a restarted agent whose source launcher already ended reads where the domain went from its pod", async () => {
    const ended = (message: string): Pod => {
      const p = pod("src", "n1", "10.244.0.7");
      p.status = endedStatus(0, message);
      return p;
    };
    const t = setup("n1");
    ready(t, { startTimestamp: "t0" });
    t.link.down = true;
    t.localPods.push(pod("src", "n1", "10.244.0.7"));
    assert.deepEqual(await t.sync.reconcile(KEY), { requeueAfterMs: 1_000 }, "a launcher not answering yet");
    assert.equal(t.current().status?.migrationState?.completed, undefined);
    // It waited for this agent to read "completed" for 10 s, then ended: the domain left by migration.
    t.localPods[0] = ended('{"state":"Shutoff","reason":"Migrated"}\n');
    await t.sync.reconcile(KEY);
    let ms = t.current().status?.migrationState;
    assert.equal(ms?.completed, true);
    assert.equal(ms?.failed, false);
    assert.deepEqual(t.launcher.calls, [], "nothing started again");

    const f = setup("n1");
    ready(f, { startTimestamp: "t0" });
    f.link.down = true;
    f.localPods.push(ended('{"state":"Shutoff","reason":"Crashed"}'));
    await f.sync.reconcile(KEY);
    ms = f.current().status?.migrationState;
    assert.equal(ms?.failed, true);
    assert.match(ms?.failureReason ?? "", /source launcher ended during the migration \(domain Shutoff\/Crashed\)/);
  });

  it("aborts on abortRequested and reports abortStatus Succeeded with failed", async () => {
    const t = setup("n1");
    ready(t, { startTimestamp: NOW, abortRequested: true });
    t.launcher.job = { state: "running", migrationUid: MIG };
    await t.sync.reconcile(KEY);
    await t.sync.reconcile(KEY);
    assert.deepEqual(t.launcher.calls, ["abort"], "sent once");
    t.launcher.job = { state: "cancelled", migrationUid: MIG };
    await t.sync.reconcile(KEY);
    const ms = t.current().status?.migrationState;
    assert.equal(ms?.failed, true);
    assert.equal(ms?.abortStatus, "Succeeded");
    assert.equal(ms?.endTimestamp, NOW);
  });

  it("writes mode PostCopy once the launcher switched the job; then only follows it", async () => {
    const t = setup("n1");
    ready(t, { startTimestamp: NOW, mode: "PreCopy" });
    t.launcher.job = { state: "running", migrationUid: MIG, mode: "PostCopy" };
    await t.sync.reconcile(KEY);
    assert.equal(t.current().status?.migrationState?.mode, "PostCopy");
    const writes = t.api.writes.length;
    await t.sync.reconcile(KEY);
    assert.equal(t.api.writes.length, writes);
    t.launcher.job = { state: "completed", migrationUid: MIG, mode: "PostCopy" };
    await t.sync.reconcile(KEY);
    const ms = t.current().status?.migrationState;
    assert.deepEqual([ms?.completed, ms?.mode], [true, "PostCopy"]);
  });

  it("records a failed job with its reason", async () => {
    const t = setup("n1");
    ready(t, { startTimestamp: NOW });
    t.launcher.job = { state: "failed", migrationUid: MIG, message: "migration progress timeout (150 s)" };
    await t.sync.reconcile(KEY);
    const ms = t.current().status?.migrationState;
    assert.equal(ms?.failed, true);
    assert.equal(ms?.failureReason, "migration progress timeout (150 s)");
  });
});

it("the source's Migrated event names the node and what QEMU measured", () => {
  assert.equal(
    migratedMessage("node02", { state: "completed", downtimeMs: 42.4, elapsedMs: 3100, dataProcessed: 300 * 2 ** 20 }),
    "The VirtualMachineInstance migrated to node node02. (downtime 42 ms, took 3100 ms, 300 MiB sent)",
  );
  assert.equal(migratedMessage("node02", undefined), "The VirtualMachineInstance migrated to node node02.");
});
