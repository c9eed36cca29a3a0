// Clone (DataVolume source.pvc) end to end through `tsvirt up --nodes 2`: a blank source DV on the first node with
// known bytes written into its volume; a clone to the same node (immediate bind prefers the source's node: the
// importer reads the source file directly, the copy stays sparse) and one to the other node (the selected-node
// annotation: a clone-source pod streams the volume to the target's importer over the pod network). The targets'
// bytes equal the source's. Crash cell: the clone-source process killed with SIGKILL → the DV retries and ends
// Succeeded with the same bytes.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { volumeFile } from "../lib/storage.js";
import { startCluster, until } from "../lib/up.js";

const MiB = 2 ** 20;
const SIZE = 256 * MiB;

function dv(name: string, source: unknown, annotations: Record<string, string>, size?: string): unknown {
  return {
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: { name, namespace: "default", annotations },
    spec: { source, storage: size ? { resources: { requests: { storage: size } } } : {} },
  };
}

async function sha256(path: string, bytes: number): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path, { start: 0, end: bytes - 1 })) h.update(c as Buffer);
  return h.digest("hex");
}

describe("clone DataVolumes (source.pvc)", () => {
  it("same node (sparse, no source pod) and other node (streamed), bytes equal; a killed clone source retries", {
    timeout: 900_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "clone", nodes: 2, args: ["--node-storage", "4Gi"] });
    const [n1 = "", n2 = ""] = c.nodes;

    // The source: a blank DV on the first node, then known bytes (random runs, holes between) in its volume.
    await c.apply(dv("src", { blank: {} }, { "volume.kubernetes.io/selected-node": n1 }, "256Mi"));
    await c.waitFor("dv/src", "{.status.phase}", "Succeeded", 180_000);
    const src = await volumeFile(c, "src");
    assert.equal(src.node, n1);
    const fh = await open(src.image, "r+");
    try {
      for (const [at, len] of [
        [0, 48 * MiB],
        [100 * MiB + 4096 + 17, 3 * MiB],
        [SIZE - 4096, 4096],
      ] as const) {
        await fh.write(randomBytes(len), 0, len, at);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    const want = await sha256(src.image, SIZE);

    // Same node: immediate bind prefers the source's node; no clone-source pod is made.
    await c.apply(
      dv(
        "same",
        { pvc: { namespace: "default", name: "src" } },
        {
          "cdi.kubevirt.io/storage.bind.immediate.requested": "true",
        },
      ),
    );
    // Other node: pinned by the selected-node annotation.
    await c.apply(
      dv("other", { pvc: { namespace: "default", name: "src" } }, { "volume.kubernetes.io/selected-node": n2 }),
    );
    await c.waitFor("dv/same", "{.status.phase}", "Succeeded", 300_000);
    await c.waitFor("dv/other", "{.status.phase}", "Succeeded", 300_000);
    assert.equal(await c.kubectl("get", "dv", "same", "-o", "jsonpath={.status.progress}"), "100.0%");

    const same = await volumeFile(c, "same");
    const other = await volumeFile(c, "other");
    assert.equal(same.node, n1, "the same-node clone went to the source's node");
    assert.equal(other.node, n2, "the other clone went where selected-node said");
    assert.equal((await stat(same.image)).size, SIZE, "a storage spec without size took the source's");
    assert.equal(await sha256(same.image, SIZE), want, "same-node clone: the bytes equal the source's");
    assert.equal(await sha256(other.image, SIZE), want, "other-node clone: the bytes equal the source's");
    const used = (await stat(same.image)).blocks * 512;
    assert.ok(used < 60 * MiB, `the same-node clone stays sparse: ${used} bytes allocated for ~51 MiB of data`);
    const usedOther = (await stat(other.image)).blocks * 512;
    assert.ok(usedOther < 60 * MiB, `the streamed clone is sparse too: ${usedOther} bytes allocated`);
    const events = await c.kubectl("get", "events", "-o", "jsonpath={.items[*].reason}");
    assert.match(events, /CloneSucceeded/);

    // Crash cell: SIGKILL of the clone-source process once it serves → the DV retries and ends Succeeded.
    const dvObj = dv(
      "crash",
      { pvc: { namespace: "default", name: "src" } },
      {
        "volume.kubernetes.io/selected-node": n2,
      },
    );
    await c.apply(dvObj);
    const uid = await until("the crash DV's uid", 30_000, async () => {
      const u = await c.kubectl("get", "dv", "crash", "-o", "jsonpath={.metadata.uid}");
      return u || undefined;
    });
    const podName = `${uid}-source-pod`;
    const podUid = await until("the clone-source pod Running", 120_000, async () => {
      const p = await c
        .getJson<{ metadata: { uid: string }; status?: { phase?: string } }>("pod", podName)
        .catch(() => undefined);
      return p?.status?.phase === "Running" ? p.metadata.uid : undefined;
    });
    const podDir = join(c.dir, "nodes", n1, "pods", podUid.replaceAll("-", "").slice(0, 16));
    const rec = JSON.parse(await readFile(join(podDir, "pod.json"), "utf8")) as { pid: number };
    process.kill(rec.pid, "SIGKILL");
    await c.waitFor("dv/crash", "{.status.phase}", "Succeeded", 300_000);
    const restarts = Number(await c.kubectl("get", "dv", "crash", "-o", "jsonpath={.status.restartCount}"));
    assert.ok(restarts >= 1, `the killed clone source counted as a restart (${restarts})`);
    const crash = await volumeFile(c, "crash");
    assert.equal(await sha256(crash.image, SIZE), want, "after the retry the bytes equal the source's");
    // the DV controller deletes the source pod once the clone is Succeeded; the node stops it (SIGTERM) and it goes
    await until("no clone-source pod is left", 60_000, async () =>
      (await c.kubectl("get", "pods", "-A", "-l", "cdi.kubevirt.io=cdi-clone-source", "-o", "name")) === ""
        ? true
        : undefined,
    );
  });
});
