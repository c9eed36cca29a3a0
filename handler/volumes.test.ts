// The node's volume sync on a temp data dir and client/'s FakeClient: a local PV pinned here gets its sparse
// disk.img; others' PVs are left alone; a deleted PV loses its data, then its finalizer (and so goes from the API);
// every step repeats harmlessly (a kill -9 between them converges). Block volumes' loop devices go through a fake
// losetup here (storage/node/loop.test.ts drives the real one under the lock).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FakeClient } from "../client/index.js";
import { type Exec, fakeLosetup } from "../storage/node/index.js";
import { type PersistentVolume, refs } from "./ports.js";
import { cloneProblem, liveVolumes, pendingClone, VolumeSync, volumeWork } from "./volumes.js";

function tmp(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), "tsvirt-volsync-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function localPv(name: string, node: string, extra: Partial<PersistentVolume["spec"]> = {}): PersistentVolume {
  return {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: {
      name,
      annotations: { "pv.kubernetes.io/provisioned-by": "tsvirt.io/local" },
      finalizers: ["tsvirt.io/local-volume"],
    },
    spec: {
      capacity: { storage: "64Mi" },
      accessModes: ["ReadWriteOnce"],
      persistentVolumeReclaimPolicy: "Delete",
      storageClassName: "tsvirt-local",
      volumeMode: "Filesystem",
      local: { path: `volumes/${name}` },
      nodeAffinity: {
        required: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [node] }] },
          ],
        },
      },
      ...extra,
    },
  };
}

async function setup(t: { after(fn: () => void): void }) {
  return { dataDir: tmp(t), api: new FakeClient() };
}

/** The sync reads its cache synchronously; the test's "cache" is a snapshot taken before each round. */
async function round(api: FakeClient, dataDir: string, name: string, exec?: Exec): Promise<void> {
  const pv = await api.get<PersistentVolume>(refs.pvs, undefined, name).catch(() => undefined);
  const s = new VolumeSync({ node: "node01", dataDir, api, getVolume: () => pv, ...(exec ? { exec } : {}) });
  await s.reconcile(name);
}

describe("volume work (pure)", () => {
  it("is ensure for a live local PV of this node, delete for one being deleted, none otherwise", () => {
    const pv = localPv("pvc-a", "node01");
    assert.equal(volumeWork(pv, "node01").kind, "ensure");
    assert.equal(volumeWork(pv, "node02").kind, "none");
    assert.equal(volumeWork(undefined, "node01").kind, "none");
    const foreign = { ...pv, metadata: { ...pv.metadata, annotations: {} } };
    assert.equal(volumeWork(foreign, "node01").kind, "none", "a PV nobody here provisioned is not ours");
    const deleting = { ...pv, metadata: { ...pv.metadata, deletionTimestamp: "2026-12-07T00:00:00Z" } };
    assert.equal(volumeWork(deleting, "node01").kind, "delete");
    const done = { ...deleting, metadata: { ...deleting.metadata, finalizers: [] } };
    assert.equal(volumeWork(done, "node01").kind, "none");
    assert.deepEqual([...liveVolumes([pv, deleting, localPv("pvc-b", "node02")], "node01")], ["pvc-a"]);
  });
});

describe("volume sync", () => {
  it("makes a sparse disk.img of the PV's size, idempotently, and leaves other nodes' PVs alone", async (t) => {
    const { dataDir, api } = await setup(t);
    await api.create(refs.pvs, undefined, localPv("pvc-a", "node01"));
    await api.create(refs.pvs, undefined, localPv("pvc-b", "node02"));
    await round(api, dataDir, "pvc-a");
    await round(api, dataDir, "pvc-b");
    const image = join(dataDir, "volumes", "pvc-a", "disk.img");
    const st = statSync(image);
    assert.equal(st.size, 64 * 2 ** 20);
    assert.ok(st.blocks * 512 < 2 ** 20, "sparse");
    assert.equal(existsSync(join(dataDir, "volumes", "pvc-b")), false, "node02's volume is not made here");
    writeFileSync(image, "MARK", { flag: "r+" });
    await round(api, dataDir, "pvc-a"); // again (a restarted agent): same file, data kept
    assert.equal(statSync(image).size, 64 * 2 ** 20);
    assert.equal(readFileSync(image).subarray(0, 4).toString(), "MARK");
  });

  it("deletes the data of a deleted PV, then its finalizer (the PV goes), and converges after a crash", async (t) => {
    const { dataDir, api } = await setup(t);
    await api.create(refs.pvs, undefined, localPv("pvc-a", "node01"));
    await round(api, dataDir, "pvc-a");
    const dir = join(dataDir, "volumes", "pvc-a");
    assert.ok(existsSync(dir));
    await api.delete(refs.pvs, undefined, "pvc-a");
    const held = await api.get<PersistentVolume>(refs.pvs, undefined, "pvc-a");
    assert.ok(held.metadata.deletionTimestamp, "the finalizer holds the PV while its data exists");
    // A sync that ended after deleting the data but before the finalizer (kill -9): the next round finishes.
    const stale = new VolumeSync({
      node: "node01",
      dataDir,
      api: {
        get: api.get.bind(api),
        update: async () => {
          throw new Error("killed");
        },
      },
      getVolume: () => held,
    });
    await assert.rejects(stale.reconcile("pvc-a"), /killed/);
    assert.equal(existsSync(dir), false, "data gone first");
    await round(api, dataDir, "pvc-a");
    await assert.rejects(api.get(refs.pvs, undefined, "pvc-a"), /not found/);
    await round(api, dataDir, "pvc-a"); // gone: nothing to do
  });

  it("a stale cache's finalizer removal answers 409 and is retried from the newer PV", async (t) => {
    const { dataDir, api } = await setup(t);
    await api.create(refs.pvs, undefined, localPv("pvc-a", "node01"));
    await api.delete(refs.pvs, undefined, "pvc-a");
    const old = await api.get<PersistentVolume>(refs.pvs, undefined, "pvc-a");
    const newer = await api.get<PersistentVolume>(refs.pvs, undefined, "pvc-a");
    newer.metadata.labels = { touched: "yes" };
    await api.update(refs.pvs, newer);
    const s = new VolumeSync({ node: "node01", dataDir, api, getVolume: () => old });
    await assert.rejects(s.reconcile("pvc-a"), (e: { code?: number }) => e.code === 409);
    await round(api, dataDir, "pvc-a");
    await assert.rejects(api.get(refs.pvs, undefined, "pvc-a"), /not found/);
  });

  it("Block: attaches one loop device (found again later), detaches it on delete; start drops gone PVs' devices", async (t) => {
    const { exec, attached } = fakeLosetup(7);
    const { dataDir, api } = await setup(t);
    await api.create(refs.pvs, undefined, localPv("pvc-blk", "node01", { volumeMode: "Block" }));
    await round(api, dataDir, "pvc-blk", exec);
    await round(api, dataDir, "pvc-blk", exec);
    assert.equal(attached.size, 1, "one device, found again with losetup -j");
    // Agent start with the PV gone from the API (deleted while the agent was down): its device is detached.
    const s = new VolumeSync({ node: "node01", dataDir, api, getVolume: () => undefined, exec });
    await s.start([]);
    s.close();
    assert.equal(attached.size, 0);
    // And a PV being deleted: detach and remove the directory, then the finalizer.
    await round(api, dataDir, "pvc-blk", exec);
    assert.equal(attached.size, 1);
    await api.delete(refs.pvs, undefined, "pvc-blk");
    await round(api, dataDir, "pvc-blk", exec);
    assert.equal(attached.size, 0);
    assert.equal(existsSync(join(dataDir, "volumes", "pvc-blk")), false);
    await assert.rejects(api.get(refs.pvs, undefined, "pvc-blk"), /not found/);
  });

  it("expansion: a grown PV grows disk.img / the loop device, the data's size is reported on the PV, VMIs are poked", async (t) => {
    const { exec, sizes } = fakeLosetup(3);
    const { dataDir, api } = await setup(t);
    await api.create(refs.pvs, undefined, localPv("pvc-fs", "node01"));
    await api.create(refs.pvs, undefined, localPv("pvc-blk", "node01", { volumeMode: "Block" }));
    const grown: string[] = [];
    const sync = async (name: string) => {
      const pv = await api.get<PersistentVolume>(refs.pvs, undefined, name);
      const s = new VolumeSync({
        node: "node01",
        dataDir,
        api,
        getVolume: () => pv,
        exec,
        onGrown: (n, b) => grown.push(`${n}=${b}`),
      });
      await s.reconcile(name);
    };
    const bytes = async (name: string) =>
      (await api.get<PersistentVolume>(refs.pvs, undefined, name)).metadata.annotations?.[
        "tsvirt.io/node-volume-bytes"
      ];
    for (const n of ["pvc-fs", "pvc-blk"]) await sync(n);
    assert.equal(await bytes("pvc-fs"), String(64 * 2 ** 20));
    assert.equal(await bytes("pvc-blk"), String(64 * 2 ** 20));
    for (const n of ["pvc-fs", "pvc-blk"]) {
      const pv = await api.get<PersistentVolume>(refs.pvs, undefined, n);
      await api.update(refs.pvs, { ...pv, spec: { ...pv.spec, capacity: { storage: "128Mi" } } });
      await sync(n);
    }
    assert.equal(statSync(join(dataDir, "volumes", "pvc-fs", "disk.img")).size, 128 * 2 ** 20);
    assert.equal(await bytes("pvc-fs"), String(128 * 2 ** 20));
    assert.equal([...sizes.values()][0], 128 * 2 ** 20, "losetup -c told the loop device");
    assert.equal(await bytes("pvc-blk"), String(128 * 2 ** 20));
    assert.deepEqual(grown.slice(-2), [`pvc-fs=${128 * 2 ** 20}`, `pvc-blk=${128 * 2 ** 20}`]);
    const n = grown.length;
    await sync("pvc-fs");
    assert.equal(grown.length, n, "nothing new to report: no write, no poke");
  });
});

describe("same-node clone (the node copies the file)", () => {
  const MiB = 2 ** 20;
  /** The objects a clone DV has: the DV (uid "u1"), its claim, the source claim bound to `source`. */
  async function cloneObjects(api: FakeClient, source: string, target: string): Promise<void> {
    await api.create(refs.datavolumes, "ns", {
      apiVersion: "cdi.kubevirt.io/v1beta1",
      kind: "DataVolume",
      metadata: { name: "dv", namespace: "ns", uid: "u1" },
      spec: { source: { pvc: { namespace: "ns", name: "src" } } },
    });
    await api.create(refs.pvcs, "ns", {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "src", namespace: "ns" },
      spec: { volumeName: source },
    });
    await api.create(refs.pvcs, "ns", {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: {
        name: "dv",
        namespace: "ns",
        uid: "claim-uid",
        ownerReferences: [
          { apiVersion: "cdi.kubevirt.io/v1beta1", kind: "DataVolume", name: "dv", uid: "u1", controller: true },
        ],
      },
      spec: { volumeName: target },
    });
  }
  const asked = (pv: PersistentVolume, req: object): PersistentVolume => ({
    ...pv,
    metadata: {
      ...pv.metadata,
      annotations: { ...pv.metadata.annotations, "tsvirt.io/clone-request": JSON.stringify(req) },
    },
    spec: { ...pv.spec, claimRef: { namespace: "ns", name: "dv", uid: "claim-uid" } },
  });
  /** A PV of this node asked to be a clone (its claim the DV's). */
  const ask = (api: FakeClient, name: string, req: object) =>
    api.create(refs.pvs, undefined, asked(localPv(name, "node01"), req));
  /** A volume of this node, made. */
  async function sourceVolume(api: FakeClient, dataDir: string, name: string, size: string): Promise<void> {
    await api.create(refs.pvs, undefined, localPv(name, "node01", { capacity: { storage: size } }));
    await cacheRound(api, dataDir, name);
  }
  /** One round over the API's PVs as the cache (every name resolves). */
  async function cacheRound(api: FakeClient, dataDir: string, name: string): Promise<void> {
    const pvs = (await api.list<PersistentVolume>(refs.pvs, undefined)).items;
    const s = new VolumeSync({
      node: "node01",
      dataDir,
      api,
      getVolume: (n) => pvs.find((v) => v.metadata.name === n),
    });
    await s.reconcile(name);
  }
  const result = async (api: FakeClient, name: string) =>
    JSON.parse(
      (await api.get<PersistentVolume>(refs.pvs, undefined, name)).metadata.annotations?.["tsvirt.io/clone-result"] ??
        "null",
    );

  it("copies the source's bytes sparsely into the target, grown to its size, and answers once", async (t) => {
    const { dataDir, api } = await setup(t);
    await cloneObjects(api, "pvc-src", "pvc-dst");
    await sourceVolume(api, dataDir, "pvc-src", "32Mi");
    const srcImage = join(dataDir, "volumes", "pvc-src", "disk.img");
    const data = randomBytes(3 * MiB);
    writeFileSync(srcImage, data, { flag: "r+" });
    await ask(api, "pvc-dst", { uid: "u1", source: "pvc-src", attempt: 0 });
    const dstImage = join(dataDir, "volumes", "pvc-dst", "disk.img");
    await cacheRound(api, dataDir, "pvc-dst");
    const st = statSync(dstImage);
    assert.equal(st.size, 64 * MiB, "grown to the target's claim");
    assert.ok(st.blocks * 512 < 4 * MiB, `sparse: ${st.blocks * 512} bytes allocated`);
    assert.ok(
      readFileSync(dstImage)
        .subarray(0, 3 * MiB)
        .equals(data),
    );
    assert.ok(
      readFileSync(dstImage)
        .subarray(3 * MiB)
        .equals(Buffer.alloc(61 * MiB)),
    );
    const r = await result(api, "pvc-dst");
    assert.equal(r.outcome, "Succeeded");
    assert.equal(r.bytes, 32 * MiB);
    assert.deepEqual([r.uid, r.attempt], ["u1", 0]);
    const pv = await api.get<PersistentVolume>(refs.pvs, undefined, "pvc-dst");
    assert.equal(pendingClone(pv), undefined, "answered: nothing more to do");
    writeFileSync(dstImage, "MARK", { flag: "r+" });
    await cacheRound(api, dataDir, "pvc-dst");
    assert.equal(readFileSync(dstImage).subarray(0, 4).toString(), "MARK", "an answered request is not copied again");
    // A cache that lags (the PV as it was before the answer): the PV read now says answered, no second copy.
    const stale = asked(localPv("pvc-dst", "node01"), { uid: "u1", source: "pvc-src", attempt: 0 });
    const pvs = (await api.list<PersistentVolume>(refs.pvs, undefined)).items;
    const lagging = new VolumeSync({
      node: "node01",
      dataDir,
      api,
      getVolume: (n) => (n === "pvc-dst" ? stale : pvs.find((v) => v.metadata.name === n)),
    });
    await lagging.reconcile("pvc-dst");
    assert.equal(readFileSync(dstImage).subarray(0, 4).toString(), "MARK", "a stale cache does not copy again");
  });

  it("copies only what the DV clones: another volume named in the request is refused", async (t) => {
    const { dataDir, api } = await setup(t);
    await cloneObjects(api, "pvc-src", "pvc-dst");
    await sourceVolume(api, dataDir, "pvc-secret", "32Mi");
    await sourceVolume(api, dataDir, "pvc-src", "32Mi");
    writeFileSync(join(dataDir, "volumes", "pvc-secret", "disk.img"), "SECRET", { flag: "r+" });
    await ask(api, "pvc-dst", { uid: "u1", source: "pvc-secret", attempt: 0 });
    await cacheRound(api, dataDir, "pvc-dst");
    const r = await result(api, "pvc-dst");
    assert.deepEqual([r.outcome, r.fatal], ["Failed", false]);
    assert.match(r.message, /does not clone volume pvc-secret/);
    const head = readFileSync(join(dataDir, "volumes", "pvc-dst", "disk.img")).subarray(0, 6);
    assert.ok(head.equals(Buffer.alloc(6)), "nothing copied");
    await ask(api, "pvc-d2", { uid: "u9", source: "pvc-src", attempt: 0 });
    await cacheRound(api, dataDir, "pvc-d2");
    assert.match((await result(api, "pvc-d2")).message, /not controlled by DataVolume u9/);
  });

  it("a source larger than the target is fatal; a Block or foreign source is a transient failure", async (t) => {
    const { dataDir, api } = await setup(t);
    await cloneObjects(api, "pvc-big", "pvc-dst");
    await sourceVolume(api, dataDir, "pvc-big", "128Mi");
    await ask(api, "pvc-dst", { uid: "u1", source: "pvc-big", attempt: 0 });
    await cacheRound(api, dataDir, "pvc-dst");
    const r = await result(api, "pvc-dst");
    assert.deepEqual([r.outcome, r.fatal, r.reason], ["Failed", true, "ImageTooLarge"]);

    const other = localPv("pvc-other", "node02");
    const block = localPv("pvc-block", "node01", { volumeMode: "Block" });
    assert.match(
      cloneProblem(localPv("t", "node01"), other, "node01") ?? "",
      /not a tsvirt-local volume of node node01/,
    );
    assert.match(cloneProblem(localPv("t", "node01"), block, "node01") ?? "", /Block/);
    assert.match(cloneProblem(localPv("t", "node01"), undefined, "node01") ?? "", /gone/);
    await ask(api, "pvc-d2", { uid: "u2", source: "pvc-none", attempt: 3 });
    await cacheRound(api, dataDir, "pvc-d2");
    const r2 = await result(api, "pvc-d2");
    assert.deepEqual([r2.outcome, r2.fatal, r2.attempt], ["Failed", false, 3]);
  });
});
