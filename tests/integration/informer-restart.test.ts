// Informers with label selectors across a kill -9 of the real `tsvirt api` process (issue 12: the node agent's
// caches after the API server died at a migration's handover). Writes made while the informers are away (their
// watches resume from their last resourceVersion) must reach them as Kubernetes sends them: an object that stopped
// matching as DELETED, one that came to match as ADDED; a stale cache entry would never go away.
import assert from "node:assert/strict";
import { test } from "node:test";
import { removeDir, startApiProcess, tempDir } from "../../apiserver/testutil.js";
import { type KObject as ConfigMap, Informer, RestClient, resources } from "../../client/index.js";
import { waitFor } from "../lib/process.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("label-selector informers follow objects moving in and out of their selection across an API server kill -9", {
  timeout: 120_000,
}, async (t) => {
  const dir = tempDir("tsvirt-informer-restart-");
  let api = await startApiProcess(dir);
  t.after(async () => {
    await api.kill();
    removeDir(dir);
  });
  const client = new RestClient({ server: api.url, namespace: "default" });
  const cm = resources.configMaps;
  // The VMI as the agents of node01 see it: labelled for node01 (its VMI cache), no migration target label yet.
  await client.create<ConfigMap>(cm, "default", { metadata: { name: "vmi", labels: { node: "node01" } } });
  const seen: string[] = [];
  const informer = (selector: string): Informer<ConfigMap> => {
    const inf = new Informer<ConfigMap>(client, cm, { labelSelector: selector, maxBackoffMs: 1000 });
    inf.addEventHandler({
      onAdd: (o) => seen.push(`${selector} ADDED ${o.metadata.name}`),
      onDelete: (o, tombstone) => seen.push(`${selector} DELETED ${o.metadata.name}${tombstone ? " (relist)" : ""}`),
    });
    inf.start();
    return inf;
  };
  const own = informer("node=node01");
  const target = informer("target=node01");
  t.after(() => Promise.all([own.stop(), target.stop()]));
  await Promise.all([own.waitForSync(), target.waitForSync()]);
  await sleep(1500); // the watches run (and bookmarks move their resourceVersions on)

  const port = api.port;
  await api.kill();
  api = await startApiProcess(dir, port);
  // The handover, written before the informers are back: the VMI leaves node01's selection...
  const cur = await client.get<ConfigMap>(cm, "default", "vmi");
  await client.update(cm, { ...cur, metadata: { ...cur.metadata, labels: { node: "node02" } } });
  // ...and the next migration, ~2 s later, makes node01 its target.
  await sleep(2000);
  const next = await client.get<ConfigMap>(cm, "default", "vmi");
  await client.update(cm, { ...next, metadata: { ...next.metadata, labels: { node: "node02", target: "node01" } } });

  await waitFor("node01's own cache to drop the VMI", async () => own.list().length === 0 || undefined, 15_000);
  await waitFor("node01's target cache to hold the VMI", async () => target.list().length === 1 || undefined, 15_000);
  // each informer's own sequence; the two reconnect independently, so their events may interleave either way
  const of = (selector: string) => seen.filter((s) => s.startsWith(`${selector} `));
  assert.deepEqual(of("node=node01"), ["node=node01 ADDED vmi", "node=node01 DELETED vmi"]);
  assert.deepEqual(of("target=node01"), ["target=node01 ADDED vmi"]);
  assert.equal(own.stats.relists + target.stats.relists, 0, "the resumed watches told it: no relist needed");
});
