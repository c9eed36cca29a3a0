import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClient } from "./fake.js";
import { Informer, ownerUidIndex } from "./informer.js";
import { resources } from "./resources.js";
import type { Pod } from "./types.js";

const pod = (name: string, extra: Partial<Pod["metadata"]> = {}): Pod => ({
  metadata: { name, namespace: "default", ...extra },
  spec: { containers: [{ name: "compute", image: "x" }] },
});

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe("Informer over FakeClient", () => {
  it("lists, then follows adds, updates and deletes; indexes by namespace and owner uid", async (t) => {
    const c = new FakeClient();
    c.seed(resources.pods, pod("a", { ownerReferences: [{ apiVersion: "v1", kind: "X", name: "o", uid: "u1" }] }));
    const inf = new Informer<Pod>(c, resources.pods, { indexers: { owner: ownerUidIndex } });
    const seen: string[] = [];
    inf.addEventHandler({
      onAdd: (o) => seen.push(`add ${o.metadata.name}`),
      onUpdate: (_o, n) => seen.push(`update ${n.metadata.name}`),
      onDelete: (o, tomb) => seen.push(`delete ${o.metadata.name}${tomb ? " (relist)" : ""}`),
    });
    inf.start();
    t.after(() => inf.stop());
    await inf.waitForSync();
    assert.deepEqual(
      inf.byIndex("owner", "u1").map((p) => p.metadata.name),
      ["a"],
    );
    await until(() => c.watcherCount() === 1, "watch");
    await c.create(resources.pods, "default", pod("b"));
    await c.patch(resources.pods, "default", "b", "merge", { metadata: { labels: { x: "y" } } });
    await c.delete(resources.pods, "default", "a");
    await until(() => seen.length === 4, "events");
    assert.deepEqual(seen, ["add a", "add b", "update b", "delete a"]);
    assert.deepEqual(
      inf.list("default").map((p) => p.metadata.name),
      ["b"],
    );
    assert.deepEqual(inf.byIndex("owner", "u1"), []);
    assert.equal(inf.get("default/b")?.metadata.labels?.x, "y");
  });

  it("relists after 410 Expired and delivers a delete for every object that vanished meanwhile", async (t) => {
    const c = new FakeClient();
    c.seed(resources.pods, pod("a"), pod("b"));
    const inf = new Informer<Pod>(c, resources.pods, { minBackoffMs: 1 });
    const deletes: string[] = [];
    inf.addEventHandler({ onDelete: (o, tomb) => deletes.push(`${o.metadata.name}:${tomb}`) });
    inf.start();
    t.after(() => inf.stop());
    await inf.waitForSync();
    await until(() => c.watcherCount() === 1, "watch");
    // While the informer is cut off, "a" goes and "c" comes; the log is compacted so a resume is impossible.
    c.endWatches();
    await c.delete(resources.pods, "default", "a");
    await c.create(resources.pods, "default", pod("c"));
    c.compact();
    await until(() => inf.stats.relists === 1 && inf.get("default/c") !== undefined, "relist");
    assert.deepEqual(deletes, ["a:true"]);
    assert.deepEqual(inf.keys().sort(), ["default/b", "default/c"]);
  });

  it("with a label selector: an object whose label goes is deleted, one whose label comes is added (live and resumed)", async (t) => {
    const c = new FakeClient();
    c.seed(resources.pods, pod("a", { labels: { node: "n1" } }), pod("b"));
    const inf = new Informer<Pod>(c, resources.pods, { labelSelector: "node=n1", minBackoffMs: 1 });
    const seen: string[] = [];
    inf.addEventHandler({
      onAdd: (o) => seen.push(`add ${o.metadata.name}`),
      onDelete: (o, tomb) => seen.push(`delete ${o.metadata.name}${tomb ? " (relist)" : ""}`),
    });
    inf.start();
    t.after(() => inf.stop());
    await inf.waitForSync();
    await until(() => c.watcherCount() === 1, "watch");
    const label = (name: string, node: string) =>
      c.patch(resources.pods, "default", name, "merge", { metadata: { labels: { node } } });
    await label("a", "n2");
    await label("b", "n1");
    await until(() => seen.length === 3, "live events");
    // cut off (an API server restart): the watch resumes from the last resourceVersion, no relist
    c.endWatches();
    await label("b", "n2");
    await label("a", "n1");
    await until(() => seen.length === 5, "resumed events");
    assert.deepEqual(seen, ["add a", "delete a", "add b", "delete b", "add a"]);
    assert.deepEqual(inf.keys(), ["default/a"]);
    assert.equal(inf.stats.relists, 0);
  });

  it("asks for bookmarks and resumes the watch from the bookmark's resourceVersion", async (t) => {
    const c = new FakeClient();
    const inf = new Informer<Pod>(c, resources.pods, { minBackoffMs: 1 });
    inf.start();
    t.after(() => inf.stop());
    await inf.waitForSync();
    await until(() => c.watcherCount() === 1, "watch");
    const w = c.actions.find((a) => a.verb === "watch");
    assert.equal((w?.options as { allowWatchBookmarks?: boolean } | undefined)?.allowWatchBookmarks, true);
    await c.create(resources.pods, "other", pod("x", { namespace: "other" }));
    c.bookmark();
    assert.equal(inf.resourceVersion, c.resourceVersion);
  });

  it("drops metadata.managedFields from cached objects", async (t) => {
    const c = new FakeClient();
    c.seed(resources.pods, pod("a", { managedFields: [{ manager: "kubectl" }] }));
    const inf = new Informer<Pod>(c, resources.pods);
    inf.start();
    t.after(() => inf.stop());
    await inf.waitForSync();
    assert.equal(inf.get("default/a")?.metadata.managedFields, undefined);
  });

  it("retries with back-off when the list fails, then syncs", async (t) => {
    const c = new FakeClient();
    let failures = 2;
    c.prependReactor("list", "pods", () => (failures-- > 0 ? { error: new Error("connection refused") } : undefined));
    c.seed(resources.pods, pod("a"));
    const inf = new Informer<Pod>(c, resources.pods, { minBackoffMs: 1 });
    inf.start();
    t.after(() => inf.stop());
    await inf.waitForSync();
    assert.equal(inf.stats.lists, 3);
    assert.ok(inf.get("default/a"));
  });
});
