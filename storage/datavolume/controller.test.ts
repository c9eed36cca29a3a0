// The DataVolume controller in the controller process (harness: fake API, queues stepped), with the storage
// controller binding its claims and fake worker pod outcomes standing in for the node agent.
import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import type { CDIConfig, DataVolume, Event, Node, PersistentVolumeClaim, Pod } from "../../client/index.js";
import { resources } from "../../client/index.js";
import { newNode } from "../../controller/testing/factories.js";
import { type Harness, startHarness } from "../../controller/testing/harness.js";
import { statusError } from "../../lib/errors.js";
import { localStorageClass, NODE_STORAGE_RESOURCE } from "../plan.js";
import { CDI_CONFIG_NAME } from "./controller.js";
import { DvAnnotations, type WorkerOutcome } from "./pods.js";
import { workerStatus } from "./testing.js";

function storageNode(name: string, size: string): Node {
  const n = newNode(name);
  n.status!.allocatable = { ...n.status!.allocatable, [NODE_STORAGE_RESOURCE]: size };
  return n;
}

function blankDv(name: string, immediate = true): DataVolume {
  return {
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: {
      name,
      namespace: "default",
      ...(immediate ? { annotations: { [DvAnnotations.immediateBind]: "true" } } : {}),
    },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: "1Gi" } } } },
  };
}

async function settle(h: Harness): Promise<void> {
  let quiet = 0;
  for (let i = 0; i < 80 && quiet < 2; i++) {
    await new Promise((r) => setTimeout(r, 5));
    quiet = (await h.drain()) === 0 ? quiet + 1 : 0;
  }
}

const peekDv = (h: Harness, name: string) => h.client.peek<DataVolume>(resources.datavolumes, "default", name)!;
const peekPod = (h: Harness, name: string) => h.client.peek<Pod>(resources.pods, "default", name);

/** What the node agent reports for the worker pod. */
async function podEnds(h: Harness, name: string, phase: "Running" | "Succeeded" | "Failed", out?: WorkerOutcome) {
  const pod = peekPod(h, name);
  assert.ok(pod, `pod ${name} exists`);
  await h.client.updateStatus(resources.pods, { ...pod, status: workerStatus(phase, out) });
}

async function dvEventList(h: Harness, name: string): Promise<Event[]> {
  await h.recorder.flush();
  return h.client
    .all<Event>(resources.events)
    .filter((e) => e.involvedObject.kind === "DataVolume" && e.involvedObject.name === name);
}

async function dvEvents(h: Harness, name: string): Promise<string[]> {
  return (await dvEventList(h, name)).map((e) => e.reason ?? "");
}

/** The components a DV's events came from (source and reporting, which agree). */
async function dvEventSources(h: Harness, name: string): Promise<string[]> {
  const evs = await dvEventList(h, name);
  for (const e of evs) assert.equal(e.reportingComponent, e.source?.component, `${e.reason}: reportingComponent`);
  return [...new Set(evs.map((e) => e.source?.component ?? ""))];
}

/** One node with room, the local class, and the blank DV "disk" created and reconciled. */
async function blankDvStarted(t: TestContext): Promise<Harness> {
  const h = await startHarness([
    { ref: resources.nodes, objs: [storageNode("node01", "10Gi")] },
    { ref: resources.storageclasses, objs: [localStorageClass()] },
  ]);
  t.after(() => h.stop());
  await h.client.create(resources.datavolumes, "default", blankDv("disk"));
  await settle(h);
  return h;
}

describe("DataVolume controller", () => {
  it("a blank DV with immediate bind: claim, node, PV, importer pod, phases to Succeeded; a kill is retried", async (t) => {
    const h = await blankDvStarted(t);

    const pvc = h.client.peek<PersistentVolumeClaim>(resources.pvcs, "default", "disk");
    assert.ok(pvc, "the DV's claim exists");
    assert.equal(pvc.metadata.ownerReferences?.[0]?.kind, "DataVolume");
    assert.equal(pvc.metadata.annotations?.["volume.kubernetes.io/selected-node"], "node01");
    assert.equal(pvc.status?.phase, "Bound");
    const pod = peekPod(h, "importer-disk");
    assert.ok(pod, "the importer pod exists");
    assert.equal(pod.spec.nodeName, "node01");
    assert.equal(peekDv(h, "disk").status?.phase, "ImportScheduled");
    assert.equal(peekDv(h, "disk").status?.claimName, "disk");

    await podEnds(h, "importer-disk", "Running");
    await settle(h);
    assert.equal(peekDv(h, "disk").status?.phase, "ImportInProgress");

    // kill -9: no outcome line, exit 137 → transient; the pod goes, restartCount 1, a new pod after 2 s
    await podEnds(h, "importer-disk", "Failed");
    await settle(h);
    assert.equal(peekPod(h, "importer-disk"), undefined);
    assert.equal(peekDv(h, "disk").status?.restartCount, 1);
    assert.equal(peekDv(h, "disk").status?.phase, "ImportScheduled");
    for (let i = 0; i < 60 && !peekPod(h, "importer-disk"); i++) {
      await new Promise((r) => setTimeout(r, 100));
      await settle(h);
    }
    assert.ok(peekPod(h, "importer-disk"), "a new importer pod after the backoff");

    await podEnds(h, "importer-disk", "Succeeded", {
      outcome: "Succeeded",
      message: "Import Complete",
      bytes: 1024,
      sha256: "00",
    });
    await settle(h);
    const dv = peekDv(h, "disk");
    assert.equal(dv.status?.phase, "Succeeded");
    assert.equal(dv.status?.progress, "100.0%");
    assert.equal(dv.status?.restartCount, 1);
    assert.equal(peekPod(h, "importer-disk"), undefined, "the finished worker is deleted");
    const reasons = await dvEvents(h, "disk");
    for (const r of ["ImportScheduled", "ImportInProgress", "ErrImportFailed", "ImportSucceeded"]) {
      assert.ok(reasons.includes(r), `event ${r} in ${reasons.join(",")}`);
    }
    assert.deepEqual(await dvEventSources(h, "disk"), ["datavolume-import-controller"], "CDI's import controller");
  });

  it("a finished import is never redone: Succeeded is written before the importer goes, a stale DV makes no pod", async (t) => {
    const h = await blankDvStarted(t);
    await podEnds(h, "importer-disk", "Running");
    await settle(h);
    const inProgress = peekDv(h, "disk");
    assert.equal(inProgress.status?.phase, "ImportInProgress");

    // The first write of Succeeded fails (a conflict): the finished importer must still be there then.
    let podAtFailure: Pod | undefined | null = null;
    h.client.prependReactor("updateStatus", "datavolumes", (a) => {
      const phase = (a.object as DataVolume).status?.phase;
      if (phase !== "Succeeded" || podAtFailure !== null) return undefined;
      podAtFailure = peekPod(h, "importer-disk");
      return { error: statusError(409, "Conflict", "the object has been modified") };
    });
    await podEnds(h, "importer-disk", "Succeeded", {
      outcome: "Succeeded",
      message: "Import Complete",
      bytes: 1,
      sha256: "00",
    });
    for (let i = 0; i < 60 && peekDv(h, "disk").status?.phase !== "Succeeded"; i++) {
      await new Promise((r) => setTimeout(r, 50));
      await settle(h);
    }
    assert.equal(peekDv(h, "disk").status?.phase, "Succeeded");
    assert.ok(podAtFailure, "the importer was not deleted before Succeeded was written");
    assert.equal(peekPod(h, "importer-disk"), undefined, "then it goes");

    // The cache still holds the DV at ImportInProgress while the pod's deletion is seen: no new importer (whose
    // clean start would wipe the imported disk).
    (h.ctrl.dataVolumes.dvs as unknown as { apply(e: { type: string; object: DataVolume }): void }).apply({
      type: "MODIFIED",
      object: inProgress,
    });
    const r = await h.ctrl.dataVolumes.reconcile("default/disk");
    assert.equal(peekPod(h, "importer-disk"), undefined, "no importer made from the stale DV");
    assert.ok(r.requeueAfterMs !== undefined, "looked at again once the cache has caught up");
  });

  it("an upload DV's events come from CDI's upload controller, a clone DV's from its pvc-clone controller", async (t) => {
    const h = await startHarness([
      { ref: resources.nodes, objs: [storageNode("node01", "10Gi")] },
      { ref: resources.storageclasses, objs: [localStorageClass()] },
    ]);
    t.after(() => h.stop());
    const up = blankDv("up");
    up.spec.source = { upload: {} };
    const cl = blankDv("cl");
    cl.spec.source = { pvc: { namespace: "default", name: "nothing-here" } };
    await h.client.create(resources.datavolumes, "default", up);
    await h.client.create(resources.datavolumes, "default", cl);
    await settle(h);
    assert.ok((await dvEvents(h, "up")).includes("UploadScheduled"), (await dvEvents(h, "up")).join(","));
    assert.deepEqual(await dvEventSources(h, "up"), ["datavolume-upload-controller"]);
    assert.ok((await dvEvents(h, "cl")).length > 0, "the clone waiting for its source says so");
    assert.deepEqual(await dvEventSources(h, "cl"), ["datavolume-pvc-clone-controller"]);
  });

  it("without immediate bind the DV waits for its first consumer; a fatal outcome fails it", async (t) => {
    const h = await startHarness([
      { ref: resources.nodes, objs: [storageNode("node01", "10Gi")] },
      { ref: resources.storageclasses, objs: [localStorageClass()] },
    ]);
    t.after(() => h.stop());
    await h.client.create(resources.datavolumes, "default", blankDv("wffc", false));
    await settle(h);
    assert.equal(peekDv(h, "wffc").status?.phase, "WaitForFirstConsumer");
    assert.equal(peekPod(h, "importer-wffc"), undefined);

    // a consumer's scheduling selects the node
    await h.client.patch(resources.pvcs, "default", "wffc", "merge", {
      metadata: { annotations: { "volume.kubernetes.io/selected-node": "node01" } },
    });
    await settle(h);
    assert.ok(peekPod(h, "importer-wffc"));
    await podEnds(h, "importer-wffc", "Failed", {
      outcome: "Failed",
      fatal: true,
      reason: "ImageTooLarge",
      message: "the image (2 GiB) is larger than the claim (1 GiB)",
    });
    await settle(h);
    const dv = peekDv(h, "wffc");
    assert.equal(dv.status?.phase, "Failed");
    const running = dv.status?.conditions?.find((c) => c.type === "Running");
    assert.equal(running?.reason, "ImageTooLarge");
    assert.match(running?.message ?? "", /larger than the claim/);
  });

  it("keeps the CDIConfig singleton with the upload URL", async (t) => {
    const h = await startHarness([]);
    t.after(() => h.stop());
    await h.ctrl.dataVolumes.reconcileConfig();
    const cfg = h.client.peek<CDIConfig>(resources.cdiconfigs, undefined, CDI_CONFIG_NAME);
    assert.ok(cfg);
    assert.equal(cfg.status?.scratchSpaceStorageClass, "");
    assert.equal(cfg.status?.defaultPodResourceRequirements?.limits?.cpu, "750m");
  });
});
