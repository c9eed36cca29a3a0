// kill -9 of `tsvirt api` during a write burst: no acknowledged write is lost and no resourceVersion is reused.
import assert from "node:assert/strict";
import { test } from "node:test";
import { removeDir, startApiProcess, tempDir } from "../../apiserver/testutil.js";

const CM = "/api/v1/namespaces/default/configmaps";

async function post(url: string, name: string): Promise<number | undefined> {
  try {
    const r = await fetch(url + CM, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ metadata: { name }, data: { v: name } }),
    });
    if (r.status !== 201) return undefined;
    const o = (await r.json()) as { metadata: { resourceVersion: string } };
    return Number(o.metadata.resourceVersion);
  } catch {
    return undefined; // the server died under this request: not acknowledged
  }
}

test("kill -9 during a write burst loses no acknowledged write and never reuses a resourceVersion", {
  timeout: 180_000,
}, async (t) => {
  const dir = tempDir("tsvirt-crash-");
  let api = await startApiProcess(dir);
  t.after(async () => {
    await api.kill();
    removeDir(dir);
  });
  const acked = new Map<string, number>();
  const rvs = new Set<number>();
  for (let round = 0; round < 3; round++) {
    let stop = false;
    let n = 0;
    const writer = async (w: number): Promise<void> => {
      while (!stop) {
        const name = `r${round}-w${w}-${n++}`;
        const rv = await post(api.url, name);
        if (rv === undefined) return;
        assert.ok(!rvs.has(rv), `resourceVersion ${rv} handed out twice`);
        rvs.add(rv);
        acked.set(name, rv);
      }
    };
    const writers = Array.from({ length: 16 }, (_, w) => writer(w));
    // let the burst run, then kill -9 while requests are in flight
    const target = acked.size + 300;
    const deadline = Date.now() + 30_000;
    while (acked.size < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await api.kill();
    stop = true;
    await Promise.all(writers);
    const maxAcked = Math.max(...rvs);
    api = await startApiProcess(dir, api.port);
    // every acknowledged write is there, exactly as acknowledged
    const list = (await (await fetch(api.url + CM)).json()) as {
      items: { metadata: { name: string; resourceVersion: string } }[];
    };
    const stored = new Map(list.items.map((i) => [i.metadata.name, Number(i.metadata.resourceVersion)]));
    for (const [name, rv] of acked)
      assert.equal(stored.get(name), rv, `acknowledged write ${name}@${rv} after restart`);
    // the next write gets a revision above every one handed out before the crash
    const next = await post(api.url, `after-${round}`);
    assert.ok(next !== undefined && next > maxAcked, `next resourceVersion ${next} must exceed ${maxAcked}`);
    rvs.add(next);
    acked.set(`after-${round}`, next);
  }
  assert.ok(acked.size >= 900);
});
