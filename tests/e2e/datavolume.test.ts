// DataVolumes end to end through `tsvirt up --node-storage`: a blank DV with immediate bind goes Pending → … →
// Succeeded (phases seen through a watch), `kubectl get dv` prints CDI's columns, CDIConfig reports the upload URL;
// an http import from a throttled loopback server runs as an importer pod that `kubectl get pods` and `kubectl logs`
// show, is killed with SIGKILL mid-way (a crash cell), restarts (restartCount 1) and still ends Succeeded with the
// served bytes on the node's volume.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { dv, slowServer } from "../lib/storage.js";
import { collect, run, startCluster, until } from "../lib/up.js";

const MiB = 2 ** 20;

describe("DataVolumes through tsvirt up", () => {
  it("blank DV (immediate bind) to Succeeded; http import survives a kill -9 of its importer", {
    timeout: 600_000,
  }, async (t) => {
    requirePrereqs(...CLUSTER);
    const c = await startCluster(t, { name: "dv", args: ["--node-storage", "4Gi"] });
    const { kubectl } = c;
    const node = c.nodes[0] ?? "";

    // CDIConfig: the singleton the controller keeps; uploads go to the API server's address
    await c.waitFor("cdiconfig/config", "{.status.uploadProxyURL}", /^https?:\/\/127\.0\.0\.1:/, 60_000);
    const cfg = await kubectl("get", "cdiconfig", "config", "-o", "yaml");
    assert.match(cfg, /uploadProxyURL: https?:\/\/127\.0\.0\.1:\d+/);
    assert.match(cfg, /scratchSpaceStorageClass: ""/);
    assert.match(cfg, /defaultPodResourceRequirements:/);

    // ---- a blank DV, its phases seen through a watch ----
    // (the collection: a watch of one name exits at once while the object does not exist yet)
    const watch = spawn(
      "kubectl",
      ["get", "dv", "--watch", "-o", "custom-columns=NAME:.metadata.name,PHASE:.status.phase", "--no-headers"],
      { env: c.env, stdio: ["ignore", "pipe", "pipe"] },
    );
    t.after(() => watch.kill("SIGKILL"));
    const watched = collect(watch);
    await c.apply(dv("blank", { blank: {} }, "1Gi"));
    await c.waitFor("dv/blank", "{.status.phase}", "Succeeded", 120_000);
    await until(`the watch saw Succeeded (${watched.text})`, 10_000, async () =>
      /blank\s+Succeeded/.test(watched.text) ? true : undefined,
    );
    watch.kill("SIGKILL");
    const seen = watched.text.split("\n").flatMap((l) => {
      const [name, phase] = l.trim().split(/\s+/);
      return name === "blank" && phase && phase !== "<none>" ? [phase] : [];
    });
    const phases = seen.filter((p, i) => p !== seen[i - 1]);
    assert.equal(phases.at(-1), "Succeeded", `phases: ${phases.join(" → ")}`);
    assert.ok(!phases.includes("Failed"), `phases: ${phases.join(" → ")}`);
    assert.ok(
      phases.some((p) => p === "Pending" || p === "ImportScheduled" || p === "ImportInProgress"),
      `a phase before Succeeded was seen: ${phases.join(" → ")}`,
    );
    const order = ["Pending", "ImportScheduled", "ImportInProgress", "Succeeded"];
    const idx = phases.map((p) => order.indexOf(p));
    assert.ok(
      idx.every((v, i) => v >= 0 && (i === 0 || v >= (idx[i - 1] ?? 0))),
      `phases in order: ${phases.join(" → ")}`,
    );

    const table = await kubectl("get", "dv");
    const [head, row] = table.trim().split("\n");
    assert.deepEqual(head?.split(/\s+/), ["NAME", "PHASE", "PROGRESS", "RESTARTS", "AGE"]);
    assert.deepEqual(row?.split(/\s+/).slice(0, 4), ["blank", "Succeeded", "100.0%", "0"]);
    assert.match(await kubectl("get", "dvs"), /blank/);
    const pv = await kubectl("get", "pvc", "blank", "-o", "jsonpath={.spec.volumeName}");
    assert.equal(
      await kubectl(
        "get",
        "pvc",
        "blank",
        "-o",
        "jsonpath={.metadata.annotations.volume\\.kubernetes\\.io/selected-node}",
      ),
      node,
    );
    const blankImg = await stat(join(c.dir, "nodes", node, "volumes", pv, "disk.img"));
    assert.equal(blankImg.size, 2 ** 30);
    assert.equal(
      (await kubectl("get", "pods", "-o", "name")).includes("importer-blank"),
      false,
      "the finished worker is gone",
    );

    // ---- an http import, killed mid-way ----
    const data = randomBytes(32 * MiB);
    const sum = createHash("sha256").update(data).digest("hex");
    const server = await slowServer(data, 2 * MiB);
    t.after(() => server.close());
    await c.apply(dv("web", { http: { url: server.url, checksum: `sha256:${sum}` } }, "64Mi"));
    // the importer is at work once the server has sent a quarter of the image
    await until("a quarter of the image sent", 120_000, async () => (server.state.sent >= 8 * MiB ? true : undefined));
    assert.match(await kubectl("get", "dv", "web", "-o", "jsonpath={.status.phase}"), /^Import(Scheduled|InProgress)$/);
    assert.match(await kubectl("get", "pods"), /importer-web\s+\S+\s+(Running|Pending|ContainerCreating)/);
    const logs = await kubectl("logs", "importer-web");
    assert.match(logs, /import/i, "kubectl logs shows the importer's log");

    // kill -9 the importer process of this cluster's pod (found by its job path under this data dir)
    const ps = await run("ps", ["-eo", "pid=,args="]);
    const victims = ps
      .split("\n")
      .filter((l) => l.includes(c.dir) && / importer --job /.test(l))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
    assert.equal(victims.length, 1, `one importer process of this cluster:\n${ps}`);
    process.kill(victims[0] ?? 0, "SIGKILL");

    await c.waitFor("dv/web", "{.status.restartCount}", "1", 60_000);
    await c.waitFor("dv/web", "{.status.phase}", "Succeeded", 180_000);
    assert.ok(server.state.requests >= 2, "the import started over");
    const evs = await c.getJson<{
      items: {
        reason?: string;
        message?: string;
        involvedObject: { name?: string; kind?: string };
        source?: { component?: string };
      }[];
    }>("events");
    const mine = evs.items.filter((e) => e.involvedObject.name === "web");
    const failures = mine.filter((e) => e.reason === "ErrImportFailed").map((e) => e.message);
    const webRow = (await kubectl("get", "dv", "web", "--no-headers")).trim().split(/\s+/);
    assert.deepEqual(webRow.slice(0, 3), ["web", "Succeeded", "100.0%"], `worker failures: ${failures.join(" | ")}`);
    assert.match(webRow[3] ?? "", /^[1-9]\d*$/, `RESTARTS counts the kill: worker failures: ${failures.join(" | ")}`);
    const events = mine.map((e) => e.reason ?? "").join(" ");
    for (const r of ["ImportScheduled", "ImportInProgress", "ErrImportFailed", "ImportSucceeded"]) {
      assert.ok(events.split(" ").includes(r), `event ${r} in ${events}`);
    }
    // SOURCE as in CDI and Kubernetes: the DV's from CDI's import controller, the claim's from the provisioner
    const from = (kind: string) => [
      ...new Set(mine.filter((e) => e.involvedObject.kind === kind).map((e) => e.source?.component)),
    ];
    assert.deepEqual(from("DataVolume"), ["datavolume-import-controller"]);
    const provisioned = mine.find(
      (e) => e.involvedObject.kind === "PersistentVolumeClaim" && e.reason === "ProvisioningSucceeded",
    );
    assert.match(provisioned?.source?.component ?? "", /^tsvirt\.io\/local_/);
    const webPv = await kubectl("get", "pvc", "web", "-o", "jsonpath={.spec.volumeName}");
    const fh = await open(join(c.dir, "nodes", node, "volumes", webPv, "disk.img"));
    try {
      const got = Buffer.alloc(data.length);
      await fh.read(got, 0, data.length, 0);
      assert.equal(createHash("sha256").update(got).digest("hex"), sum, "the volume holds the served bytes");
      assert.equal((await fh.stat()).size, 64 * MiB);
    } finally {
      await fh.close();
    }
  });
});
