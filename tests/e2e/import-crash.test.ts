// Crash cells of an import (issue 11, item 6), through `tsvirt up` (which restarts whatever exits): while an http
// import is under way, kill -9 the node agent, then the controller, then the API server. The DataVolume still ends
// Succeeded with the image's bytes on the volume, and no importer process or worker pod is left behind.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { dv, slowServer } from "../lib/storage.js";
import { run, startCluster, until } from "../lib/up.js";

const MiB = 2 ** 20;

/** Pids of this cluster's processes whose command line matches `re`. */
async function pids(dir: string, re: RegExp): Promise<number[]> {
  const ps = await run("ps", ["-eo", "pid=,args="]);
  return ps
    .split("\n")
    .filter((l) => l.includes(dir) && re.test(l))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

describe("import crash cells", () => {
  it("kill -9 of the node agent, the controller and the API server mid-import: Succeeded, right bytes, nothing left", {
    timeout: 600_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "impcr", args: ["--node-storage", "2Gi"] });
    const node = c.nodes[0] ?? "";
    const image = Buffer.concat([randomBytes(16 * MiB), Buffer.alloc(4 * MiB), randomBytes(4 * MiB)]);
    const srv = await slowServer(image, 1.5 * MiB);
    t.after(() => srv.close());
    await c.apply(dv("crashy", { http: { url: srv.url } }, "64Mi"));

    const cells: [string, RegExp][] = [
      ["node agent", / handler --node /],
      ["controller", / controller --kubeconfig /],
      ["API server", / api --listen /],
    ];
    for (const [what, re] of cells) {
      // mid-import: the importer is streaming (a fresh response has sent a quarter of the image)
      await until(`an importer streaming before killing the ${what}`, 180_000, async () =>
        srv.state.sent >= image.length / 4 && srv.state.sent < image.length ? true : undefined,
      );
      const victims = await pids(c.dir, re);
      assert.equal(victims.length, 1, `one ${what} process of this cluster`);
      process.kill(victims[0] ?? 0, "SIGKILL");
      // tsvirt up restarts it; the next cell waits for a stream again
      await until(`the ${what} restarted`, 60_000, async () =>
        (await pids(c.dir, re)).some((p) => p !== victims[0]) ? true : undefined,
      );
    }

    await c.waitFor("dv/crashy", "{.status.phase}", "Succeeded", 300_000);
    assert.equal(await c.kubectl("get", "dv", "crashy", "-o", "jsonpath={.status.progress}"), "100.0%");
    const pv = await c.kubectl("get", "pvc", "crashy", "-o", "jsonpath={.spec.volumeName}");
    const fh = await open(join(c.dir, "nodes", node, "volumes", pv, "disk.img"));
    try {
      const got = Buffer.alloc(image.length);
      await fh.read(got, 0, image.length, 0);
      assert.ok(got.equals(image), "the volume holds the image's bytes");
      const rest = Buffer.alloc(MiB);
      await fh.read(rest, 0, MiB, image.length);
      assert.ok(rest.equals(Buffer.alloc(MiB)), "zeros after the image (a clean target, nothing of an earlier try)");
    } finally {
      await fh.close();
    }
    // nothing left behind: the worker pod is gone and no importer process runs
    await until("the importer pod gone", 60_000, async () =>
      (await c.kubectl("get", "pods", "-o", "name")).includes("importer-crashy") ? undefined : true,
    );
    assert.deepEqual(await pids(c.dir, / importer --job /), [], "no importer process left");
  });
});
