// The storage controller in the real controller process against the embedded API server: the default tsvirt-local
// class appears, a claim's first consumer is placed on the node with room, the claim gets a PV pinned there and
// binds; a claim too large for any node stays Pending with an event saying why, and its pod stays unscheduled.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import {
  type CSIStorageCapacity,
  type Event,
  type Node,
  type PersistentVolume,
  type PersistentVolumeClaim,
  type Pod,
  type RestClient,
  resources,
  type StorageClass,
} from "../../client/index.js";
import { newClaim as claim } from "../../controller/testing/factories.js";
import { kill9, startTestApi, TSVIRT, waitFor } from "../lib/process.js";

async function storageNode(client: RestClient, name: string, storage: string): Promise<void> {
  const node = await client.create<Node>(resources.nodes, undefined, {
    metadata: { name, labels: { "kubernetes.io/hostname": name } },
  });
  await client.updateStatus(resources.nodes, {
    ...node,
    status: {
      allocatable: { cpu: "2", memory: "4Gi", pods: "110", "tsvirt.io/local-storage": storage },
      conditions: [{ type: "Ready", status: "True" }],
    },
  });
}

function consumer(name: string, claimName: string): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default" },
    spec: {
      containers: [{ name: "c", image: "busybox", resources: { requests: { memory: "16Mi" } } }],
      volumes: [{ name: "disk", persistentVolumeClaim: { claimName } }],
    },
  };
}

describe("storage in the controller process", () => {
  it("binds a tsvirt-local claim on the node its first consumer is placed on; a too-large one stays Pending with an event", async (t) => {
    const { kc, client } = await startTestApi(t, "storage-");
    await storageNode(client, "node01", "10Gi");
    await storageNode(client, "node02", "2Gi");

    const logs: string[] = [];
    const ctrl = spawn(process.execPath, [TSVIRT, "controller", "--kubeconfig", kc], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    ctrl.stderr?.on("data", (d: Buffer) => logs.push(d.toString()));
    t.after(() => kill9(ctrl));

    const sc = await waitFor("the default class", () =>
      client.get<StorageClass>(resources.storageclasses, undefined, "tsvirt-local"),
    );
    assert.equal(sc.volumeBindingMode, "WaitForFirstConsumer");
    assert.equal(sc.metadata.annotations?.["storageclass.kubernetes.io/is-default-class"], "true");

    await client.create(resources.pvcs, "default", claim("disk", "4Gi"));
    await client.create(resources.pods, "default", consumer("consumer", "disk"));
    const pvc = await waitFor("claim Bound", async () => {
      const c = await client.get<PersistentVolumeClaim>(resources.pvcs, "default", "disk");
      return c.status?.phase === "Bound" ? c : undefined;
    });
    assert.equal(pvc.metadata.annotations?.["volume.kubernetes.io/selected-node"], "node01");
    assert.deepEqual(pvc.status?.capacity, { storage: "4Gi" });
    const pv = await client.get<PersistentVolume>(resources.pvs, undefined, pvc.spec.volumeName ?? "");
    assert.equal(pv.status?.phase, "Bound");
    assert.equal(pv.spec.claimRef?.uid, pvc.metadata.uid);
    assert.deepEqual(pv.spec.nodeAffinity?.required?.nodeSelectorTerms[0]?.matchExpressions?.[0]?.values, ["node01"]);
    const pod = await waitFor("consumer bound", async () => {
      const p = await client.get<Pod>(resources.pods, "default", "consumer");
      return p.spec.nodeName ? p : undefined;
    });
    assert.equal(pod.spec.nodeName, "node01");
    const free = await waitFor("capacity published", async () => {
      const l = await client.list<CSIStorageCapacity>(resources.csistoragecapacities, "kubevirt");
      const m = Object.fromEntries(l.items.map((c) => [c.metadata.name, c.capacity]));
      return m["tsvirt-local-node01"] === "6Gi" ? m : undefined;
    });
    assert.equal(free["tsvirt-local-node02"], "2Gi");

    await client.create(resources.pvcs, "default", claim("huge", "100Gi"));
    await client.create(resources.pods, "default", consumer("big", "huge"));
    const ev = await waitFor("the claim's ProvisioningFailed event", async () => {
      const l = await client.list<Event>(resources.events, "default", { fieldSelector: "involvedObject.name=huge" });
      return l.items.find((e) => e.reason === "ProvisioningFailed");
    });
    assert.equal(ev.type, "Warning");
    assert.equal(ev.message, "requested 100Gi fits no node: node01 has 6Gi free, node02 has 2Gi free");
    const big = await waitFor("the pod unschedulable", async () => {
      const p = await client.get<Pod>(resources.pods, "default", "big");
      return p.status?.conditions?.some((c) => c.reason === "Unschedulable") ? p : undefined;
    });
    assert.equal(big.spec.nodeName, undefined);
    assert.equal(
      big.status?.conditions?.find((c) => c.type === "PodScheduled")?.message,
      "0/2 nodes are available: 2 node(s) did not have enough free storage.",
    );
    const huge = await client.get<PersistentVolumeClaim>(resources.pvcs, "default", "huge");
    assert.equal(huge.status?.phase, "Pending");
    assert.equal(huge.spec.volumeName, undefined);
    assert.equal((await client.list(resources.pvs, undefined)).items.length, 1, "no volume for the huge claim");
  });
});
