// The storage controller and the scheduler's volume binding against the fake client, stepped queue by queue.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type {
  CSIStorageCapacity,
  Event,
  Node,
  PersistentVolume,
  PersistentVolumeClaim,
  Pod,
  StorageClass,
} from "../client/index.js";
import { resources } from "../client/index.js";
import { newClaim as claim, newNode, newPod } from "../controller/testing/factories.js";
import { type Harness, startHarness } from "../controller/testing/harness.js";
import { LOCAL_CLASS, localStorageClass, NODE_STORAGE_RESOURCE, NODE_VOLUME_BYTES_ANNOTATION } from "./plan.js";

function storageNode(name: string, size: string): Node {
  const n = newNode(name);
  n.status!.allocatable = { ...n.status!.allocatable, [NODE_STORAGE_RESOURCE]: size };
  return n;
}

function podWithClaims(name: string, ...claims: string[]): Pod {
  const p = newPod(name, { memory: "64Mi" });
  p.spec.volumes = claims.map((c) => ({ name: c, persistentVolumeClaim: { claimName: c } }));
  return p;
}

async function start(nodes: Node[]): Promise<Harness> {
  const h = await startHarness([
    { ref: resources.nodes, objs: nodes },
    { ref: resources.storageclasses, objs: [localStorageClass()] },
  ]);
  return h;
}

/** Drains until the informers have nothing more to deliver (writes reach the caches a tick later). */
async function settle(h: Harness): Promise<void> {
  let quiet = 0;
  for (let i = 0; i < 50 && quiet < 2; i++) {
    await new Promise((r) => setTimeout(r, 5));
    quiet = (await h.drain()) === 0 ? quiet + 1 : 0;
  }
}

const peekClaim = (h: Harness, name: string) => h.client.peek<PersistentVolumeClaim>(resources.pvcs, "default", name)!;

async function events(h: Harness, name: string): Promise<Event[]> {
  await h.recorder.flush();
  return h.client.all<Event>(resources.events).filter((e) => e.involvedObject.name === name);
}

/** Each event's reason → the component it came from (`kubectl get events`' SOURCE). */
async function sources(h: Harness, name: string): Promise<Map<string, string>> {
  return new Map((await events(h, name)).map((e) => [e.reason ?? "", e.source?.component ?? ""]));
}

describe("storage controller", () => {
  it("creates the default tsvirt-local class at start when absent, and leaves an existing one alone", async (t) => {
    const h = await startHarness([]);
    t.after(() => h.stop());
    await h.ctrl.storage.ensureDefaultClass();
    const sc = h.client.peek<StorageClass>(resources.storageclasses, undefined, LOCAL_CLASS)!;
    assert.equal(sc.volumeBindingMode, "WaitForFirstConsumer");
    assert.equal(sc.allowVolumeExpansion, true);
    assert.equal(sc.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"], "true");
    await h.client.update(resources.storageclasses, { ...sc, reclaimPolicy: "Retain" });
    await h.ctrl.storage.ensureDefaultClass();
    assert.equal(
      h.client.peek<StorageClass>(resources.storageclasses, undefined, LOCAL_CLASS)?.reclaimPolicy,
      "Retain",
    );
  });

  it("first consumer: the scheduler picks a node with room, annotates the claim before binding the pod; the provisioner makes a pinned PV there and binds", async (t) => {
    const h = await start([storageNode("node01", "1Gi"), storageNode("node02", "10Gi")]);
    t.after(() => h.stop());
    await h.client.create(resources.pvcs, "default", claim("disk", "4Gi"));
    await settle(h);
    assert.equal(peekClaim(h, "disk").status?.phase, "Pending");
    assert.ok((await events(h, "disk")).some((e) => e.reason === "WaitForFirstConsumer"));

    await h.client.create(resources.pods, "default", podWithClaims("launcher", "disk"));
    await settle(h);
    const pod = h.client.peek<Pod>(resources.pods, "default", "launcher")!;
    assert.equal(pod.spec.nodeName, "node02");
    const writes = h.client.writes();
    const annotate = writes.findIndex((a) => a.verb === "patch" && a.resource === "persistentvolumeclaims");
    const bindPod = writes.findIndex((a) => a.verb === "createSubresource" && a.subresource === "binding");
    assert.ok(annotate >= 0 && annotate < bindPod, "selected-node is set before the pod is bound");

    const pvc = peekClaim(h, "disk");
    assert.equal(pvc.metadata.annotations?.["volume.kubernetes.io/selected-node"], "node02");
    assert.equal(pvc.status?.phase, "Bound");
    assert.equal(pvc.spec.volumeName, `pvc-${pvc.metadata.uid}`);
    assert.deepEqual(pvc.status?.capacity, { storage: "4Gi" });
    assert.equal(pvc.metadata.annotations?.["pv.kubernetes.io/bind-completed"], "yes");
    const pv = h.client.peek<PersistentVolume>(resources.pvs, undefined, pvc.spec.volumeName ?? "")!;
    assert.equal(pv.status?.phase, "Bound");
    // Kubernetes' PV controller waits for the consumer; the external provisioner (`<name>_<host>_<uuid>`) provisions.
    const from = await sources(h, "disk");
    assert.equal(from.get("WaitForFirstConsumer"), "persistentvolume-controller");
    assert.match(from.get("ProvisioningSucceeded") ?? "", /^tsvirt\.io\/local_[^_]+_[0-9a-f-]{36}$/);
    assert.equal(pv.spec.claimRef?.uid, pvc.metadata.uid);
    assert.deepEqual(pv.spec.nodeAffinity?.required?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.values, ["node02"]);

    const caps = h.client.all<CSIStorageCapacity>(resources.csistoragecapacities);
    assert.deepEqual(caps.map((c) => [c.metadata.name, c.capacity]).sort(), [
      [`${LOCAL_CLASS}-node01`, "1Gi"],
      [`${LOCAL_CLASS}-node02`, "6Gi"],
    ]);

    // A second pod with the same (now bound) claim runs only where its volume is.
    await h.client.create(resources.pods, "default", podWithClaims("second", "disk"));
    await settle(h);
    assert.equal(h.client.peek<Pod>(resources.pods, "default", "second")?.spec.nodeName, "node02");
  });

  it("a claim larger than any node's free space stays Pending: the claim and the pod say why", async (t) => {
    const h = await start([storageNode("node01", "2Gi"), storageNode("node02", "3Gi")]);
    t.after(() => h.stop());
    await h.client.create(resources.pvcs, "default", claim("huge", "100Gi"));
    await h.client.create(resources.pods, "default", podWithClaims("launcher", "huge"));
    await settle(h);
    assert.equal(peekClaim(h, "huge").status?.phase, "Pending");
    assert.equal(peekClaim(h, "huge").metadata.annotations?.["volume.kubernetes.io/selected-node"], undefined);
    const ev = (await events(h, "huge")).find((e) => e.reason === "ProvisioningFailed");
    assert.equal(ev?.type, "Warning");
    assert.equal(ev?.message, "requested 100Gi fits no node: node01 has 2Gi free, node02 has 3Gi free");
    const pod = h.client.peek<Pod>(resources.pods, "default", "launcher")!;
    assert.equal(pod.spec.nodeName, undefined);
    assert.equal(
      pod.status?.conditions?.find((c) => c.type === "PodScheduled")?.message,
      "0/2 nodes are available: 2 node(s) did not have enough free storage.",
    );
    assert.equal(h.client.all(resources.pvs).length, 0, "no volume is made");
  });

  it("a claim whose selected node lacks room gets ProvisioningFailed and no PV; room freed later provisions it", async (t) => {
    const h = await start([storageNode("node01", "2Gi")]);
    t.after(() => h.stop());
    const c = claim("c", "3Gi");
    c.metadata.annotations = { "volume.kubernetes.io/selected-node": "node01" };
    await h.client.create(resources.pvcs, "default", c);
    await settle(h);
    assert.equal(h.client.all(resources.pvs).length, 0);
    const ev = (await events(h, "c")).find((e) => e.reason === "ProvisioningFailed");
    assert.equal(ev?.message, 'node "node01" has 2Gi of local storage free, the claim requests 3Gi');
    const node = h.client.peek<Node>(resources.nodes, undefined, "node01")!;
    await h.client.updateStatus(resources.nodes, {
      ...node,
      status: { ...node.status, allocatable: { ...node.status?.allocatable, [NODE_STORAGE_RESOURCE]: "8Gi" } },
    });
    await settle(h);
    assert.equal(peekClaim(h, "c").status?.phase, "Bound");
  });

  it("deleting a bound claim releases its PV; Delete deletes it (the node's finalizer holds it), Retain keeps it Released", async (t) => {
    const h = await start([storageNode("node01", "10Gi")]);
    t.after(() => h.stop());
    for (const name of ["del", "keep"]) {
      const c = claim(name, "1Gi");
      c.metadata.annotations = { "volume.kubernetes.io/selected-node": "node01" };
      await h.client.create(resources.pvcs, "default", c);
    }
    await settle(h);
    const keepName = peekClaim(h, "keep").spec.volumeName!;
    const delName = peekClaim(h, "del").spec.volumeName!;
    const keepPv = h.client.peek<PersistentVolume>(resources.pvs, undefined, keepName)!;
    await h.client.update(resources.pvs, {
      ...keepPv,
      spec: { ...keepPv.spec, persistentVolumeReclaimPolicy: "Retain" },
    });
    await h.client.delete(resources.pvcs, "default", "del");
    await h.client.delete(resources.pvcs, "default", "keep");
    await settle(h);
    const kept = h.client.peek<PersistentVolume>(resources.pvs, undefined, keepName)!;
    assert.equal(kept.status?.phase, "Released");
    assert.equal(kept.metadata.deletionTimestamp, undefined);
    const deleting = h.client.peek<PersistentVolume>(resources.pvs, undefined, delName)!;
    assert.ok(deleting.metadata.deletionTimestamp, "the Delete PV is being deleted");
    assert.deepEqual(deleting.metadata.finalizers, ["tsvirt.io/local-volume"]);
    // Its space stays counted until the node removed the data (and the finalizer).
    const cap = () =>
      h.client.peek<CSIStorageCapacity>(resources.csistoragecapacities, "kubevirt", `${LOCAL_CLASS}-node01`)?.capacity;
    assert.equal(cap(), "8Gi");
    await h.client.update(resources.pvs, { ...deleting, metadata: { ...deleting.metadata, finalizers: [] } });
    await settle(h);
    assert.equal(h.client.peek(resources.pvs, undefined, delName), undefined);
    assert.equal(cap(), "9Gi");
  });

  it("expansion: the PV grows when its node has room, the claim shows Resizing until the node grew the data; no room: VolumeResizeFailed and the size stays", async (t) => {
    const h = await start([storageNode("node01", "4Gi")]);
    t.after(() => h.stop());
    const c = claim("g", "1Gi");
    c.metadata.annotations = { "volume.kubernetes.io/selected-node": "node01" };
    await h.client.create(resources.pvcs, "default", c);
    await settle(h);
    const resize = async (size: string) => {
      const cur = peekClaim(h, "g");
      await h.client.update(resources.pvcs, {
        ...cur,
        spec: { ...cur.spec, resources: { requests: { storage: size } } },
      });
      await settle(h);
    };
    await resize("3Gi");
    const pvName = peekClaim(h, "g").spec.volumeName ?? "";
    let pv = h.client.peek<PersistentVolume>(resources.pvs, undefined, pvName)!;
    assert.equal(pv.spec.capacity?.storage, "3Gi", "the PV grew (the node had 3Gi free)");
    assert.deepEqual(peekClaim(h, "g").status?.capacity, { storage: "1Gi" }, "not before the node grew the data");
    assert.equal(peekClaim(h, "g").status?.conditions?.[0]?.type, "Resizing");
    assert.ok((await events(h, "g")).some((e) => e.reason === "Resizing"));
    // The node agent reports the data's size.
    await h.client.update(resources.pvs, {
      ...pv,
      metadata: {
        ...pv.metadata,
        annotations: { ...pv.metadata.annotations, [NODE_VOLUME_BYTES_ANNOTATION]: String(3 * 2 ** 30) },
      },
    });
    await settle(h);
    assert.deepEqual(peekClaim(h, "g").status?.capacity, { storage: "3Gi" });
    assert.equal(peekClaim(h, "g").status?.conditions, undefined, "Resizing is over");
    assert.ok((await events(h, "g")).some((e) => e.reason === "VolumeResizeSuccessful"));

    await resize("5Gi");
    pv = h.client.peek<PersistentVolume>(resources.pvs, undefined, pvName)!;
    assert.equal(pv.spec.capacity?.storage, "3Gi", "no room for 2Gi more: the PV keeps its size");
    const failed = (await events(h, "g")).find((e) => e.reason === "VolumeResizeFailed");
    assert.equal(failed?.type, "Warning");
    assert.match(failed?.message ?? "", /needs 2Gi more on node "node01", which has 1Gi of local storage free/);
    assert.deepEqual(peekClaim(h, "g").status?.capacity, { storage: "3Gi" });
    const from = await sources(h, "g");
    for (const r of ["Resizing", "VolumeResizeSuccessful", "VolumeResizeFailed"]) {
      assert.equal(from.get(r), "external-resizer tsvirt.io/local", `${r} comes from the external resizer`);
    }
  });
});
