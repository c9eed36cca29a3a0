import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DataVolume, PersistentVolume, PersistentVolumeClaim, Pod } from "../../client/index.js";
import { localStorageClass } from "../plan.js";
import { CloneAnnotations } from "./clone.js";
import {
  backoffMs,
  chooseNode,
  type DvAction,
  type DvInput,
  failureAnnotations,
  planClaimFor,
  planDataVolume,
} from "./plan.js";
import {
  DATA_VOLUME_NAME,
  DvAnnotations,
  formatOutcome,
  importerPodName,
  parseOutcome,
  ROLE_LABEL,
  renderImporterPod,
  workerPodName,
} from "./pods.js";
import { workerStatus } from "./testing.js";

const NOW = new Date("2026-01-01T00:00:00Z");
const GI = 1024 ** 3;

function dv(source: DataVolume["spec"]["source"], extra: Partial<DataVolume["metadata"]> = {}): DataVolume {
  return {
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: { name: "disk", namespace: "default", uid: "dv-uid", ...extra },
    spec: { source, storage: { resources: { requests: { storage: "1Gi" } } } },
  };
}

function claimOf(d: DataVolume, phase?: "Pending" | "Bound" | "Lost", extra: Record<string, string> = {}) {
  const plan = planClaimFor(d, [localStorageClass()]);
  assert.ok(plan.ok);
  const c: PersistentVolumeClaim = structuredClone(plan.claim);
  c.metadata.uid = "pvc-uid";
  c.metadata.annotations = { ...c.metadata.annotations, ...extra };
  if (phase === "Bound") c.spec.volumeName = "pvc-pvc-uid";
  if (phase) c.status = { phase };
  return c;
}

function pv(node: string, name = "pvc-pvc-uid"): PersistentVolume {
  return {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name, annotations: { "pv.kubernetes.io/provisioned-by": "tsvirt.io/local" } },
    spec: {
      capacity: { storage: "1Gi" },
      nodeAffinity: {
        required: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [node] }] },
          ],
        },
      },
    },
  };
}

function withPhase(pod: Pod, phase: "Pending" | "Running" | "Succeeded" | "Failed", uid = "pod-1", line?: string) {
  const p = structuredClone(pod);
  p.metadata.uid = uid;
  p.status = workerStatus(phase, parseOutcome(line));
  return p;
}

function input(d: DataVolume, extra: Partial<DvInput> = {}): DvInput {
  return { dv: d, classes: [localStorageClass()], free: new Map([["node01", 10 * GI]]), now: NOW, ...extra };
}

const kinds = (a: DvAction[]) => a.map((x) => x.kind);
const events = (a: DvAction[]) => a.flatMap((x) => (x.kind === "event" ? [x.reason] : []));
const cond = (
  s: { conditions?: { type: string; status: string; reason?: string; message?: string }[] },
  type: string,
) => s.conditions?.find((c) => c.type === type);

/** Runs the planner and applies its status to the DV, as the controller does. */
function step(i: DvInput) {
  const plan = planDataVolume(i);
  i.dv = { ...i.dv, status: plan.status };
  return plan;
}

describe("worker pods", () => {
  it("names: importer-<dv>, truncated to 63 with a stable hash", () => {
    assert.equal(workerPodName("importer-", "disk"), "importer-disk");
    const long = workerPodName("importer-", "x".repeat(80));
    assert.equal(long.length <= 63, true);
    assert.equal(long, workerPodName("importer-", "x".repeat(80)));
    assert.notEqual(long, workerPodName("importer-", `${"x".repeat(79)}y`));
  });
  it("the importer pod: labels, node, claim volume, controller owner", () => {
    const d = dv({ blank: {} });
    const pod = renderImporterPod(d, claimOf(d), "node01");
    assert.equal(pod.metadata.name, "importer-disk");
    assert.equal(pod.metadata.labels?.app, "containerized-data-importer");
    assert.equal(pod.metadata.labels?.[ROLE_LABEL], "importer");
    assert.equal(pod.spec.nodeName, "node01");
    assert.equal(pod.spec.restartPolicy, "Never");
    assert.equal(pod.spec.containers[0]?.name, "importer");
    assert.deepEqual(pod.spec.volumes?.[0], { name: DATA_VOLUME_NAME, persistentVolumeClaim: { claimName: "disk" } });
    assert.equal(pod.metadata.ownerReferences?.[0]?.uid, "dv-uid");
    assert.equal(pod.metadata.ownerReferences?.[0]?.controller, true);
  });
  it("the outcome line round-trips; garbage is no outcome", () => {
    const ok = { outcome: "Succeeded", message: "Import Complete", bytes: 5, sha256: "ab" } as const;
    assert.deepEqual(parseOutcome(formatOutcome(ok)), ok);
    assert.equal(parseOutcome("killed"), undefined);
    assert.equal(parseOutcome(""), undefined);
  });
});

describe("the DV's claim", () => {
  it("spec.storage is completed from the class; annotations and labels copied; owner the DV", () => {
    const d = dv(
      { blank: {} },
      { annotations: { "volume.kubernetes.io/selected-node": "node02" }, labels: { a: "b" } },
    );
    const plan = planClaimFor(d, [localStorageClass()]);
    assert.ok(plan.ok);
    assert.deepEqual(plan.claim.spec, {
      accessModes: ["ReadWriteOnce"],
      volumeMode: "Filesystem",
      resources: { requests: { storage: "1Gi" } },
      storageClassName: "tsvirt-local",
    });
    assert.equal(plan.claim.metadata.name, "disk");
    assert.equal(plan.claim.metadata.annotations?.["volume.kubernetes.io/selected-node"], "node02");
    assert.equal(plan.claim.metadata.labels?.a, "b");
    assert.equal(plan.claim.metadata.ownerReferences?.[0]?.kind, "DataVolume");
  });
  it("spec.pvc is taken as written", () => {
    const d = dv({ blank: {} });
    d.spec = {
      source: { blank: {} },
      pvc: { accessModes: ["ReadWriteOnce"], volumeMode: "Block", resources: { requests: { storage: "2Gi" } } },
    };
    const plan = planClaimFor(d, []);
    assert.ok(plan.ok);
    assert.deepEqual(plan.claim.spec, d.spec.pvc);
  });
  it("a clone with storage and no size takes the source's size", () => {
    const d = dv({ pvc: { namespace: "src", name: "golden" } });
    d.spec.storage = {};
    assert.equal(planClaimFor(d, []).ok, false);
    const src: PersistentVolumeClaim = {
      metadata: { name: "golden", namespace: "src" },
      spec: { resources: { requests: { storage: "3Gi" } } },
    };
    const plan = planClaimFor(d, [], src);
    assert.ok(plan.ok);
    assert.equal(plan.claim.spec.resources?.requests?.storage, "3Gi");
  });
});

describe("immediate bind's node", () => {
  it("the node with the most room; the preferred one when it fits; none when nothing fits", () => {
    const free = new Map([
      ["a", 2 * GI],
      ["b", 5 * GI],
    ]);
    assert.equal(chooseNode(GI, free), "b");
    assert.equal(chooseNode(GI, free, "a"), "a");
    assert.equal(chooseNode(3 * GI, free, "a"), "b");
    assert.equal(chooseNode(6 * GI, free), undefined);
  });
});

describe("import phases", () => {
  it("Pending (claim created) → WaitForFirstConsumer", () => {
    const d = dv({ blank: {} });
    const i = input(d);
    let p = step(i);
    assert.deepEqual(
      kinds(p.actions).filter((k) => k !== "event"),
      ["createClaim"],
    );
    assert.equal(p.status.phase, "Pending");
    assert.equal(p.status.progress, "N/A");
    assert.equal(cond(p.status, "Bound")?.reason, "NotFound");
    i.pvc = claimOf(d, "Pending");
    p = step(i);
    assert.equal(p.status.phase, "WaitForFirstConsumer");
    assert.equal(p.status.claimName, "disk");
    assert.equal(cond(p.status, "Bound")?.reason, "Pending");
    assert.deepEqual(
      kinds(p.actions).filter((k) => k !== "event"),
      [],
    );
  });

  it("immediate bind: the controller selects a node with room, or says none has room", () => {
    const d = dv({ blank: {} }, { annotations: { [DvAnnotations.immediateBind]: "true" } });
    const i = input(d, { pvc: claimOf(d, "Pending") });
    const p = step(i);
    assert.deepEqual(
      p.actions.filter((a) => a.kind === "selectNode"),
      [{ kind: "selectNode", node: "node01" }],
    );
    assert.equal(p.status.phase, "Pending");
    const full = step(input(d, { pvc: claimOf(d, "Pending"), free: new Map([["node01", 100]]) }));
    assert.equal(
      full.actions.some((a) => a.kind === "selectNode"),
      false,
    );
    assert.ok(events(full.actions).includes("ErrNoRoom"));
    assert.match(cond(full.status, "Bound")?.message ?? "", /fits no node/);
  });

  it("bound → importer pod on the PV's node → ImportScheduled → ImportInProgress → Succeeded", () => {
    const d = dv({ registry: { url: "docker://r/i" } });
    const i = input(d, { pvc: claimOf(d, "Bound"), pv: pv("node02") });
    let p = step(i);
    const create = p.actions.find((a) => a.kind === "createPod");
    assert.ok(create && create.kind === "createPod");
    assert.equal(create.pod.spec.nodeName, "node02");
    assert.equal(create.pod.metadata.name, "importer-disk");
    assert.equal(p.status.phase, "ImportScheduled");
    assert.ok(events(p.actions).includes("ImportScheduled"));
    assert.equal(cond(p.status, "Bound")?.status, "True");

    i.pod = withPhase(create.pod, "Pending");
    p = step(i);
    assert.deepEqual(kinds(p.actions), []);
    assert.equal(p.status.phase, "ImportScheduled");

    i.pod = withPhase(create.pod, "Running");
    i.pod.metadata.annotations = { [DvAnnotations.progress]: "45.2%" };
    p = step(i);
    assert.equal(p.status.phase, "ImportInProgress");
    assert.equal(p.status.progress, "45.2%");
    assert.equal(cond(p.status, "Running")?.status, "True");
    assert.equal(cond(p.status, "Running")?.reason, "Pod is running");
    assert.equal(cond(p.status, "Ready")?.reason, "TransferRunning");
    assert.ok(events(p.actions).includes("ImportInProgress"));

    const line = formatOutcome({ outcome: "Succeeded", message: "Import Complete", bytes: GI, sha256: "00" });
    i.pod = withPhase(create.pod, "Succeeded", "pod-1", line);
    p = step(i);
    assert.equal(p.status.phase, "Succeeded");
    assert.equal(p.status.progress, "100.0%");
    assert.equal(cond(p.status, "Ready")?.status, "True");
    assert.equal(cond(p.status, "Running")?.reason, "Completed");
    assert.deepEqual(p.actions.filter((a) => a.kind === "deletePod").length, 1);
    assert.ok(events(p.actions).includes("ImportSucceeded"));

    // level-triggered: the pod still there is deleted again, nothing else changes
    p = step(i);
    assert.equal(p.status.phase, "Succeeded");
    assert.deepEqual(events(p.actions), []);
  });

  it("a transient failure: counted once, pod deleted, a new pod after the backoff; the DV still succeeds", () => {
    const d = dv({ http: { url: "http://127.0.0.1/x.img" } });
    const i = input(d, { pvc: claimOf(d, "Bound"), pv: pv("node01") });
    const first = step(i).actions.find((a) => a.kind === "createPod");
    assert.ok(first?.kind === "createPod");
    i.pod = withPhase(first.pod, "Failed", "pod-1"); // killed: exit 137, no line
    let p = step(i);
    const ann = p.actions.find((a) => a.kind === "annotateClaim");
    assert.ok(ann?.kind === "annotateClaim");
    assert.equal(ann.annotations[DvAnnotations.restarts], "1");
    assert.equal(ann.annotations[DvAnnotations.lastFailedPod], "pod-1");
    assert.ok(p.actions.some((a) => a.kind === "deletePod"));
    assert.equal(p.status.phase, "ImportScheduled");
    assert.equal(p.status.restartCount, 1);
    assert.equal(cond(p.status, "Running")?.reason, "Error");
    assert.equal(p.requeueAfterMs, 2000);
    assert.ok(events(p.actions).includes("ErrImportFailed"));

    // the annotation landed but the pod is still there (crash between): not counted twice
    i.pvc = { ...claimOf(d, "Bound"), metadata: { ...claimOf(d, "Bound").metadata } };
    i.pvc.metadata.annotations = { ...i.pvc.metadata.annotations, ...ann.annotations };
    p = step(i);
    assert.equal(
      p.actions.some((a) => a.kind === "annotateClaim"),
      false,
    );
    assert.equal(p.status.restartCount, 1);

    // pod gone, backoff running: wait
    i.pod = undefined;
    i.now = new Date(NOW.getTime() + 1000);
    p = step(i);
    assert.equal(
      p.actions.some((a) => a.kind === "createPod"),
      false,
    );
    assert.equal(p.requeueAfterMs, 1000);
    assert.equal(p.status.phase, "ImportScheduled");

    // backoff over: a new pod; then success
    i.now = new Date(NOW.getTime() + 2000);
    p = step(i);
    const second = p.actions.find((a) => a.kind === "createPod");
    assert.ok(second?.kind === "createPod");
    const line = formatOutcome({ outcome: "Succeeded", message: "Import Complete", bytes: 1, sha256: "00" });
    i.pod = withPhase(second.pod, "Succeeded", "pod-2", line);
    p = step(i);
    assert.equal(p.status.phase, "Succeeded");
    assert.equal(p.status.restartCount, 1);
  });

  it("a worker's transient Failed line is retried; the backoff grows to 60 s", () => {
    assert.deepEqual([0, 1, 2, 5, 6, 10].map(backoffMs), [1000, 2000, 4000, 32000, 60000, 60000]);
    const d = dv({ http: { url: "http://127.0.0.1/x.img" } });
    const pvc = claimOf(
      d,
      "Bound",
      failureAnnotations({ restarts: 3, podUid: "old", at: NOW.toISOString(), reason: "Error", message: "x" }),
    );
    const pod = withPhase(
      renderImporterPod(d, pvc, "node01"),
      "Failed",
      "pod-4",
      formatOutcome({ outcome: "Failed", fatal: false, reason: "ConnectionRefused", message: "connection refused" }),
    );
    const p = step(input(d, { pvc, pv: pv("node01"), pod }));
    assert.equal(p.status.restartCount, 4);
    assert.equal(p.requeueAfterMs, 16000);
    assert.equal(cond(p.status, "Running")?.message, "connection refused");
  });

  it("a fatal failure fails the DV with the reason and message; no retry", () => {
    const d = dv({ http: { url: "http://127.0.0.1/x.qcow2" } });
    const pvc = claimOf(d, "Bound");
    const pod = withPhase(
      renderImporterPod(d, pvc, "node01"),
      "Failed",
      "pod-1",
      formatOutcome({
        outcome: "Failed",
        fatal: true,
        reason: "BackingFile",
        message: "the qcow2 image has a backing file",
      }),
    );
    const i = input(d, { pvc, pv: pv("node01"), pod });
    let p = step(i);
    assert.equal(p.status.phase, "Failed");
    assert.equal(cond(p.status, "Running")?.reason, "BackingFile");
    assert.equal(cond(p.status, "Running")?.message, "the qcow2 image has a backing file");
    assert.equal(
      p.actions.some((a) => a.kind === "createPod" || a.kind === "annotateClaim"),
      false,
    );
    assert.ok(events(p.actions).includes("ImportFailed"));
    i.pod = undefined;
    p = step(i);
    assert.equal(p.status.phase, "Failed");
    assert.equal(
      p.actions.some((a) => a.kind === "createPod"),
      false,
    );
  });

  it("a pod that exits 0 without its Succeeded line is not Succeeded", () => {
    const d = dv({ blank: {} });
    const pvc = claimOf(d, "Bound");
    const pod = withPhase(renderImporterPod(d, pvc, "node01"), "Succeeded", "pod-1");
    const p = step(input(d, { pvc, pv: pv("node01"), pod }));
    assert.equal(p.status.phase, "ImportScheduled");
    assert.equal(p.status.restartCount, 1);
  });
});

describe("a deleted PVC", () => {
  it("a Succeeded DV stays Succeeded with Bound False ClaimLost; nothing is re-created", () => {
    const d = dv({ blank: {} });
    d.status = { phase: "Succeeded", claimName: "disk", progress: "100.0%" };
    const p = step(input(d));
    assert.equal(p.status.phase, "Succeeded");
    assert.equal(cond(p.status, "Bound")?.reason, "ClaimLost");
    assert.equal(
      p.actions.some((a) => a.kind === "createClaim"),
      false,
    );
  });
  it("an import in progress: the worker goes, the claim is made again", () => {
    const d = dv({ blank: {} });
    d.status = { phase: "ImportInProgress", claimName: "disk" };
    const pod = withPhase(renderImporterPod(d, claimOf(d), "node01"), "Running");
    const p = step(input(d, { pod }));
    assert.deepEqual(
      kinds(p.actions).filter((k) => k !== "event"),
      ["deletePod", "createClaim"],
    );
    assert.equal(p.status.phase, "Pending");
  });
  it("a claim of the same name not owned by the DV is left alone", () => {
    const d = dv({ blank: {} });
    const pvc = claimOf(d, "Bound");
    pvc.metadata.ownerReferences = [];
    const p = step(input(d, { pvc, pv: pv("node01") }));
    assert.ok(events(p.actions).includes("ErrResourceExists"));
    assert.equal(
      p.actions.some((a) => a.kind === "createPod"),
      false,
    );
  });
  it("a Lost claim fails the DV", () => {
    const d = dv({ blank: {} });
    const p = step(input(d, { pvc: claimOf(d, "Lost") }));
    assert.equal(p.status.phase, "Failed");
    assert.ok(events(p.actions).includes("ErrClaimLost"));
  });
});

describe("upload phases", () => {
  /** The upload pod exited with the Succeeded line. */
  const uploaded = (pod: Pod) =>
    withPhase(
      pod,
      "Succeeded",
      "pod-1",
      formatOutcome({ outcome: "Succeeded", message: "Upload Complete", bytes: 1, sha256: "00" }),
    );

  it("UploadScheduled until the upload pod is Ready, then UploadReady, then Succeeded", () => {
    const d = dv({ upload: {} });
    const i = input(d, { pvc: claimOf(d, "Bound"), pv: pv("node01") });
    let p = step(i);
    const create = p.actions.find((a) => a.kind === "createPod");
    assert.ok(create?.kind === "createPod");
    assert.equal(create.pod.metadata.name, "cdi-upload-disk");
    assert.equal(create.pod.metadata.labels?.[ROLE_LABEL], "cdi-upload-server");
    assert.equal(p.status.phase, "UploadScheduled");
    i.pod = withPhase(create.pod, "Running");
    p = step(i);
    assert.equal(p.status.phase, "UploadScheduled");
    i.pod.status = { ...i.pod.status, conditions: [{ type: "Ready", status: "True" }] };
    p = step(i);
    assert.equal(p.status.phase, "UploadReady");
    assert.ok(events(p.actions).includes("UploadReady"));
    i.pod = uploaded(create.pod);
    p = step(i);
    assert.equal(p.status.phase, "Succeeded");
    assert.ok(events(p.actions).includes("UploadSucceeded"));
  });

  it("progress is N/A until Succeeded (CDI's): a refused or interrupted upload leaves no 100.0% on a ready DV", () => {
    const d = dv({ upload: {} });
    const i = input(d, { pvc: claimOf(d, "Bound"), pv: pv("node01") });
    const create = step(i).actions.find((a) => a.kind === "createPod");
    assert.ok(create?.kind === "createPod");
    i.pod = withPhase(create.pod, "Running");
    i.pod.status = { ...i.pod.status, conditions: [{ type: "Ready", status: "True" }] };
    // the upload server took a whole body, then refused it (not a disk image) and waits for another
    i.pod.metadata.annotations = { [DvAnnotations.progress]: "100.0%" };
    let p = step(i);
    assert.equal(p.status.phase, "UploadReady");
    assert.equal(p.status.progress, "N/A");
    // (and a DV that showed a number before says N/A again)
    i.dv = { ...d, status: { ...p.status, progress: "45.2%" } };
    p = step(i);
    assert.equal(p.status.progress, "N/A");
    i.pod = uploaded(create.pod);
    p = step(i);
    assert.equal(p.status.progress, "100.0%");
  });
});

describe("clone phases", () => {
  const src: PersistentVolumeClaim = {
    metadata: { name: "golden", namespace: "src", uid: "src-uid" },
    spec: { resources: { requests: { storage: "1Gi" } }, volumeName: "pvc-src-uid" },
    status: { phase: "Bound" },
  };
  const ready = (pod: Pod, uid: string) => {
    const p = withPhase(pod, "Running", uid);
    p.status = { ...p.status, conditions: [{ type: "Ready", status: "True" }] };
    return p;
  };
  const created = (p: { actions: DvAction[] }) => p.actions.flatMap((a) => (a.kind === "createPod" ? [a.pod] : []));
  const role = (pod: Pod | undefined) => pod?.metadata.labels?.[ROLE_LABEL];

  it("other node: waits for its source; then the source pod on the source's node; the target once it is Ready", () => {
    const d = dv({ pvc: { namespace: "src", name: "golden" } });
    const i = input(d, { pvc: claimOf(d, "Bound"), pv: pv("node01") });
    let p = step(i);
    assert.equal(p.status.phase, "CloneScheduled");
    assert.equal(cond(p.status, "Running")?.reason, "CloneWithoutSource");
    assert.ok(events(p.actions).includes("CloneWithoutSource"));
    assert.equal(created(p).length, 0);

    i.source = { pvc: src, pv: pv("node02", "pvc-src-uid") };
    p = step(i);
    assert.deepEqual(created(p).map(role), ["cdi-clone-source"]);
    const source = created(p)[0] as Pod;
    assert.equal(source.metadata.name, "dv-uid-source-pod");
    assert.equal(source.metadata.namespace, "src");
    assert.equal(source.spec.nodeName, "node02");
    assert.equal(source.metadata.annotations?.[DvAnnotations.cloneTarget], "default/disk");
    assert.equal(source.metadata.ownerReferences, undefined);

    // Running but not Ready: the target still waits (it would connect to nothing).
    i.source.pod = withPhase(source, "Running", "s-1");
    p = step(i);
    assert.equal(created(p).length, 0);
    assert.equal(cond(p.status, "Running")?.message, "waiting for the clone source pod to be ready");

    i.source.pod = ready(source, "s-1");
    p = step(i);
    assert.deepEqual(created(p).map(role), ["importer"]);
    const target = created(p)[0] as Pod;
    assert.equal(target.metadata.name, importerPodName(d));
    assert.equal(target.spec.nodeName, "node01");

    i.pod = withPhase(target, "Running", "t-1");
    p = step(i);
    assert.equal(p.status.phase, "CloneInProgress");
    i.pod = withPhase(
      target,
      "Succeeded",
      "t-1",
      formatOutcome({ outcome: "Succeeded", message: "Clone Complete", bytes: 1, sha256: "00" }),
    );
    p = step(i);
    assert.equal(p.status.phase, "Succeeded");
    assert.equal(p.actions.filter((a) => a.kind === "deletePod").length, 2);
    assert.ok(events(p.actions).includes("CloneSucceeded"));
  });

  it("other node: a killed source pod is a transient failure; both pods go, then the source pod first again", () => {
    const d = dv({ pvc: { namespace: "src", name: "golden" } });
    const source = withPhase(
      {
        metadata: { name: "dv-uid-source-pod", namespace: "src", labels: { [ROLE_LABEL]: "cdi-clone-source" } },
        spec: { containers: [] },
      },
      "Failed",
      "s-1",
    );
    const target = withPhase(renderImporterPod(d, claimOf(d), "node01"), "Running", "t-1");
    const i = input(d, {
      pvc: claimOf(d, "Bound"),
      pv: pv("node01"),
      pod: target,
      source: { pvc: src, pv: pv("node02", "pvc-src-uid"), pod: source },
    });
    let p = step(i);
    assert.equal(p.status.restartCount, 1);
    assert.deepEqual(
      p.actions.filter((a) => a.kind === "deletePod").map((a) => (a.kind === "deletePod" ? a.uid : "")),
      ["t-1", "s-1"],
    );
    assert.equal(p.status.phase, "CloneScheduled");
    const ann = p.actions.find((a) => a.kind === "annotateClaim");
    assert.ok(ann?.kind === "annotateClaim");
    i.pvc = claimOf(d, "Bound", ann.annotations);
    i.pod = undefined;
    i.source = { pvc: src, pv: pv("node02", "pvc-src-uid") };
    i.now = new Date(NOW.getTime() + 3_000);
    p = step(i);
    assert.deepEqual(created(p).map(role), ["cdi-clone-source"]);
  });

  it("same node, Block: no source pod, the importer at once (any old source pod goes)", () => {
    const d = dv({ pvc: { namespace: "src", name: "golden" } });
    const stale = ready(
      { metadata: { name: "dv-uid-source-pod", namespace: "src" }, spec: { containers: [] } } as Pod,
      "s-0",
    );
    const target = pv("node01");
    target.spec.volumeMode = "Block";
    const p = step(
      input(d, {
        pvc: claimOf(d, "Bound"),
        pv: target,
        source: { pvc: src, pv: pv("node01", "pvc-src-uid"), pod: stale },
      }),
    );
    assert.deepEqual(created(p).map(role), ["importer"]);
    assert.ok(p.actions.some((a) => a.kind === "deletePod" && a.uid === "s-0"));
    assert.equal(p.status.phase, "CloneScheduled");
  });

  it("same node, Filesystem: no pod; the node is asked on the PV, its answer ends the clone", () => {
    const d = dv({ pvc: { namespace: "src", name: "golden" } });
    const stale = ready(
      { metadata: { name: "dv-uid-source-pod", namespace: "src" }, spec: { containers: [] } } as Pod,
      "s-0",
    );
    const i = input(d, {
      pvc: claimOf(d, "Bound"),
      pv: pv("node01"),
      source: { pvc: src, pv: pv("node01", "pvc-src-uid"), pod: stale },
    });
    let p = step(i);
    assert.equal(created(p).length, 0, "no worker pod");
    assert.ok(p.actions.some((a) => a.kind === "deletePod" && a.uid === "s-0"));
    const ask = p.actions.find((a) => a.kind === "annotateVolume");
    assert.ok(ask?.kind === "annotateVolume");
    assert.equal(ask.name, "pvc-pvc-uid");
    const req = JSON.parse(ask.annotations[CloneAnnotations.request] ?? "");
    assert.deepEqual(req, { uid: "dv-uid", source: "pvc-src-uid", attempt: 0 });
    assert.equal(p.status.phase, "CloneInProgress");
    assert.equal(p.status.progress, "N/A");
    assert.equal(cond(p.status, "Running")?.status, "True");

    // Asked: not again; the node's progress shows.
    const asked = (ann: Record<string, string>) => {
      const v = pv("node01");
      v.metadata.annotations = { ...v.metadata.annotations, ...ann };
      return v;
    };
    const reqAnn = { [CloneAnnotations.request]: JSON.stringify(req) };
    i.pv = asked({ ...reqAnn, [DvAnnotations.progress]: "42.0%" });
    i.dv = { ...d, status: p.status };
    p = step(i);
    assert.equal(p.actions.filter((a) => a.kind === "annotateVolume").length, 0);
    assert.equal(p.status.progress, "42.0%");

    // A transient answer: counted once, then after the backoff a new attempt.
    const fail = { uid: "dv-uid", attempt: 0, outcome: "Failed", fatal: false, reason: "CopyFailed", message: "EIO" };
    i.pv = asked({ ...reqAnn, [CloneAnnotations.result]: JSON.stringify(fail) });
    p = step(i);
    assert.equal(p.status.restartCount, 1);
    const ann = p.actions.find((a) => a.kind === "annotateClaim");
    assert.ok(ann?.kind === "annotateClaim");
    i.pvc = claimOf(d, "Bound", ann.annotations);
    i.dv = { ...d, status: p.status };
    p = step(i);
    assert.equal(p.actions.filter((a) => a.kind === "annotateClaim").length, 0, "counted once");
    assert.equal(p.actions.filter((a) => a.kind === "annotateVolume").length, 0, "not before the backoff");
    i.now = new Date(NOW.getTime() + 3_000);
    p = step(i);
    const again = p.actions.find((a) => a.kind === "annotateVolume");
    assert.ok(again?.kind === "annotateVolume");
    assert.equal(JSON.parse(again.annotations[CloneAnnotations.request] ?? "").attempt, 1);

    // The answer to the current attempt: Succeeded.
    const req1 = { ...req, attempt: 1 };
    const ok = { uid: "dv-uid", attempt: 1, outcome: "Succeeded", message: "Clone Complete", bytes: 1, sha256: "" };
    i.pv = asked({
      [CloneAnnotations.request]: JSON.stringify(req1),
      [CloneAnnotations.result]: JSON.stringify(ok),
    });
    const before = i.dv.status;
    p = step(i);
    assert.equal(p.status.phase, "Succeeded");
    assert.equal(p.status.progress, "100.0%");
    assert.ok(events(p.actions).includes("CloneSucceeded"));

    // A fatal answer (instead) fails the DV with its reason.
    i.dv = { ...d, status: before };
    const bad = { uid: "dv-uid", attempt: 1, outcome: "Failed", fatal: true, reason: "ImageTooLarge", message: "big" };
    i.pv = asked({ [CloneAnnotations.request]: JSON.stringify(req1), [CloneAnnotations.result]: JSON.stringify(bad) });
    p = step(i);
    assert.equal(p.status.phase, "Failed");
    assert.equal(cond(p.status, "Running")?.reason, "ImageTooLarge");
  });

  it("a source used by a running VMI's pod waits (CloneSourceInUse), and says so", () => {
    const d = dv({ pvc: { namespace: "src", name: "golden" } });
    const launcher = withPhase(
      {
        metadata: { name: "virt-launcher-vm-abcde", namespace: "src" },
        spec: { containers: [], volumes: [{ name: "root", persistentVolumeClaim: { claimName: "golden" } }] },
      } as Pod,
      "Running",
      "l-1",
    );
    const p = step(
      input(d, {
        pvc: claimOf(d, "Bound"),
        pv: pv("node01"),
        source: { pvc: src, pv: pv("node01", "pvc-src-uid"), pods: [launcher] },
      }),
    );
    assert.equal(created(p).length, 0);
    assert.equal(p.status.phase, "CloneScheduled");
    assert.equal(cond(p.status, "Running")?.reason, "CloneSourceInUse");
    assert.match(
      cond(p.status, "Running")?.message ?? "",
      /pod src\/virt-launcher-vm-abcde using PersistentVolumeClaim golden/,
    );
    assert.ok(events(p.actions).includes("CloneSourceInUse"));
  });

  it("a target smaller than the source waits with a reason; a storage spec without size takes the source's", () => {
    const d = dv({ pvc: { namespace: "src", name: "golden" } });
    const small = claimOf(d, "Bound");
    small.spec.resources = { requests: { storage: "512Mi" } };
    const smallPv = pv("node01");
    smallPv.spec.capacity = { storage: "512Mi" };
    const p = step(input(d, { pvc: small, pv: smallPv, source: { pvc: src, pv: pv("node01", "pvc-src-uid") } }));
    assert.equal(cond(p.status, "Running")?.reason, "CloneTargetTooSmall");
    assert.match(
      cond(p.status, "Running")?.message ?? "",
      /holds 512Mi, less than the source pvc src\/golden \(\w+i\)/,
    );
    const sized = dv({ pvc: { namespace: "src", name: "golden" } });
    sized.spec.storage = {};
    const plan = planClaimFor(sized, [localStorageClass()], src);
    assert.ok(plan.ok);
    assert.equal(plan.claim.spec.resources?.requests?.storage, "1Gi");
  });

  it("immediate bind of a clone prefers the source's node", () => {
    const d = dv(
      { pvc: { namespace: "src", name: "golden" } },
      { annotations: { [DvAnnotations.immediateBind]: "true" } },
    );
    const p = step(
      input(d, {
        pvc: claimOf(d, "Pending"),
        source: { pvc: src, pv: pv("node02", "pvc-src-uid") },
        free: new Map([
          ["node01", 10 * GI],
          ["node02", 2 * GI],
        ]),
      }),
    );
    assert.deepEqual(
      p.actions.filter((a) => a.kind === "selectNode"),
      [{ kind: "selectNode", node: "node02" }],
    );
  });

  it("the claim is created with its node (immediate bind) and, source readable, the clone request", () => {
    const d = dv(
      { pvc: { namespace: "src", name: "golden" } },
      {
        annotations: {
          [DvAnnotations.immediateBind]: "true",
          [CloneAnnotations.request]: '{"uid":"dv-uid","source":"pvc-other","attempt":0}',
        },
      },
    );
    const free = new Map([
      ["node01", 10 * GI],
      ["node02", 2 * GI],
    ]);
    const srcPv = pv("node02", "pvc-src-uid");
    let p = step(input(d, { source: { pvc: src, pv: srcPv }, free }));
    const made = p.actions.find((a) => a.kind === "createClaim");
    assert.ok(made?.kind === "createClaim");
    const ann = made.claim.metadata.annotations ?? {};
    assert.equal(ann["volume.kubernetes.io/selected-node"], "node02");
    assert.deepEqual(JSON.parse(ann[CloneAnnotations.request] ?? ""), {
      uid: "dv-uid",
      source: "pvc-src-uid",
      attempt: 0,
    });
    // A source in use: no request with the claim (the user's annotation is not passed on either).
    const user = {
      metadata: { name: "launcher", namespace: "src" },
      spec: { containers: [], volumes: [{ name: "root", persistentVolumeClaim: { claimName: "golden" } }] },
      status: { phase: "Running" },
    } as Pod;
    p = planDataVolume(input(d, { source: { pvc: src, pv: srcPv, pods: [user] }, free }));
    const again = p.actions.find((a) => a.kind === "createClaim");
    assert.ok(again?.kind === "createClaim");
    assert.equal(again.claim.metadata.annotations?.[CloneAnnotations.request], undefined);
  });

  it("a claim pinned to another node than the source's (a cold migration's) carries no node-copy request", () => {
    const d = dv(
      { pvc: { namespace: "src", name: "golden" } },
      { annotations: { "volume.kubernetes.io/selected-node": "node01" } },
    );
    const srcPv = pv("node02", "pvc-src-uid");
    const p = step(input(d, { source: { pvc: src, pv: srcPv } }));
    const made = p.actions.find((a) => a.kind === "createClaim");
    assert.ok(made?.kind === "createClaim");
    const ann = made.claim.metadata.annotations ?? {};
    assert.equal(ann["volume.kubernetes.io/selected-node"], "node01");
    assert.equal(ann[CloneAnnotations.request], undefined);
  });
});
