import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { emptyRegistriesConfig } from "../../images/index.js";
import { egressAgent, tunnel } from "../../storage/importer/index.js";
import { linkOptions } from "../pod-runner.js";
import type { Pod } from "../ports.js";
import { refs } from "../ports.js";
import { FakeApi } from "../testing.js";
import { connectTarget, serveEgress, serveEgressChannel } from "./egress.js";
import { importerShape } from "./importer.js";
import { matchDvWorker } from "./job.js";
import { PROGRESS_ANNOTATION, WorkerServices } from "./services.js";

const DV_UID = "aaaaaaaa-2222-4333-8444-555555555555";
const PV = "pvc-bbbbbbbb-2222-4333-8444-555555555555";

function pod(): Pod {
  return {
    metadata: {
      name: "importer-dv1",
      namespace: "default",
      uid: "cccccccc-2222-4333-8444-555555555555",
      labels: { app: "containerized-data-importer", "cdi.kubevirt.io": "importer" },
      ownerReferences: [
        { apiVersion: "cdi.kubevirt.io/v1beta1", kind: "DataVolume", name: "dv1", uid: DV_UID, controller: true },
      ],
    },
    spec: {
      nodeName: "n1",
      containers: [{ name: "importer", image: "tsvirt/importer" }],
      volumes: [{ name: "cdi-data-vol", persistentVolumeClaim: { claimName: "dv1" } }],
    },
  };
}

describe("worker pods (node side)", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "workers-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("matches importer pods controlled by a DataVolume only", () => {
    assert.deepEqual(matchDvWorker(pod(), "importer"), { ok: true, ownerUid: DV_UID });
    const p = pod();
    p.metadata.ownerReferences = [];
    assert.equal(matchDvWorker(p, "importer").ok, false);
    assert.equal(matchDvWorker(pod(), "cdi-upload-server").ok, false);
  });

  it("resolves DV (uid checked) → claim → this node's volume, writes job.json with secrets 0600, and the argv", async () => {
    const api = new FakeApi();
    const dataDir = join(dir, "node");
    await mkdir(join(dataDir, "volumes", PV), { recursive: true });
    await writeFile(join(dataDir, "volumes", PV, "disk.img"), "");
    const { truncate } = await import("node:fs/promises");
    await truncate(join(dataDir, "volumes", PV, "disk.img"), 64 << 20);
    api.put(refs.datavolumes, {
      apiVersion: "cdi.kubevirt.io/v1beta1",
      kind: "DataVolume",
      metadata: { name: "dv1", namespace: "default", uid: DV_UID },
      spec: {
        source: {
          http: { url: "http://127.0.0.1:8123/disk.img", secretRef: "creds", checksum: "sha256:" + "a".repeat(64) },
        },
      },
    } as never);
    api.put(refs.secrets, {
      metadata: { name: "creds", namespace: "default" },
      data: { accessKeyId: Buffer.from("user").toString("base64"), secretKey: Buffer.from("pw").toString("base64") },
    } as never);
    api.put(refs.pvcs, {
      metadata: { name: "dv1", namespace: "default" },
      spec: { volumeName: PV },
      status: { phase: "Bound" },
    } as never);
    api.put(refs.pvs, {
      metadata: { name: PV, annotations: { "pv.kubernetes.io/provisioned-by": "tsvirt.io/local" } },
      spec: {
        storageClassName: "tsvirt-local",
        local: { path: join(dataDir, "volumes", PV) },
        nodeAffinity: {
          required: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: ["n1"] }] },
            ],
          },
        },
      },
    } as never);
    const services = new WorkerServices({ api, getPod: () => undefined });
    const shape = importerShape({
      node: "n1",
      dataDir,
      api,
      registries: async () => emptyRegistriesConfig(),
      services,
      tsvirtJs: "/x/tsvirt.js",
    });
    const podDir = join(dir, "pod");
    const cmd = await shape.command(DV_UID, podDir, pod());
    assert.deepEqual(cmd.argv.slice(1), ["/x/tsvirt.js", "importer", "--job", join(podDir, "job.json")]);
    assert.equal(cmd.isolatedNetwork, true, "an http import reaches its source through the egress only: no links");
    assert.deepEqual(linkOptions(pod(), shape, cmd.isolatedNetwork), { isolated: true });
    // A cross-node clone's target (not isolated: it dials the source pod) gets its IP alone, never the VM binding's
    // DNAT, which would take its stream's packets when installed under the live connection.
    assert.deepEqual(linkOptions(pod(), shape, false), { plain: true });
    const job = JSON.parse(await readFile(join(podDir, "job.json"), "utf8"));
    assert.equal(job.target.path, join(dataDir, "volumes", PV, "disk.img"));
    assert.equal(job.target.sizeBytes, 64 << 20);
    assert.equal(job.source.kind, "http");
    assert.deepEqual(job.egress.allow, ["127.0.0.1:8123"]);
    assert.ok(!JSON.stringify(job).includes("pw"), "no secret in job.json");
    assert.equal((await stat(job.source.authFile)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await readFile(job.source.authFile, "utf8")), { username: "user", password: "pw" });
    await services.close();
    // another DV of the same name (uid differs) is refused
    await assert.rejects(
      async () => shape.command("dddddddd-2222-4333-8444-555555555555", podDir, pod()),
      /not the pod's owner|not found/,
    );
  });

  it("the egress proxy lets through only the job's host:ports", async () => {
    const srv = http.createServer((_req, res) => res.end("hello"));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    const sock = join(dir, `e-${randomBytes(3).toString("hex")}.sock`);
    const proxy = await serveEgress(sock, [`127.0.0.1:${port}`]);
    try {
      assert.deepEqual(connectTarget("CONNECT [::1]:80 HTTP/1.1"), {
        ok: true,
        target: "[::1]:80",
        host: "::1",
        port: 80,
      });
      assert.equal(connectTarget("GET / HTTP/1.1").ok, false);
      const body = await new Promise<string>((resolve, reject) => {
        http
          .get(`http://127.0.0.1:${port}/`, { agent: egressAgent(sock, "http:") }, (res) => {
            let s = "";
            res.on("data", (d) => (s += d));
            res.on("end", () => resolve(s));
          })
          .on("error", reject);
      });
      assert.equal(body, "hello");
      await assert.rejects(tunnel(sock, `127.0.0.1:${port + 1}`), /refused.*403/);
      await assert.rejects(tunnel(sock, "10.0.0.1:443"), /refused.*403/);
    } finally {
      await proxy.close();
      srv.close();
    }
  });

  it("hands the worker its connections on the IPC channel, only to the job's host:ports", async () => {
    const srv = http.createServer((_req, res) => res.end("hello"));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as AddressInfo).port;
    const egress = new URL("../../storage/importer/egress.ts", import.meta.url).href;
    // The worker's side in a child: no proxy socket exists, so whatever it gets came over the channel.
    const code = `
      import http from "node:http";
      import { egressAgent, tunnel } from ${JSON.stringify(egress)};
      const agent = egressAgent("/nonexistent/egress.sock", "http:");
      const body = await new Promise((resolve, reject) => http.get("http://127.0.0.1:${port}/", { agent }, (res) => {
        let s = ""; res.on("data", (d) => (s += d)); res.on("end", () => resolve(s));
      }).on("error", reject));
      const refused = await tunnel("/nonexistent/egress.sock", "127.0.0.1:${port + 1}").then(() => "", (e) => e.message);
      console.log(JSON.stringify({ body, refused }));`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      stdio: ["ignore", "pipe", "inherit", "ipc"],
    });
    serveEgressChannel(child, [`127.0.0.1:${port}`]);
    let out = "";
    child.stdout?.on("data", (d) => (out += d));
    const exit = await new Promise<number | null>((r) => child.once("exit", r));
    srv.close();
    assert.equal(exit, 0, "the child ends by itself once its requests are answered (the channel holds nothing)");
    const r = JSON.parse(out) as { body: string; refused: string };
    assert.equal(r.body, "hello");
    assert.match(r.refused, /refused.*403/);
  });

  /** A worker pod with its progress file and relay (never on a timer here: each test calls relay itself). */
  const relayed = async (sub: string, progress: string) => {
    const api = new FakeApi();
    const uid = api.put(refs.pods, pod()).metadata.uid ?? "";
    const podDir = join(dir, sub);
    await mkdir(podDir, { recursive: true });
    const services = new WorkerServices({
      api,
      getPod: () => api.peek(refs.pods, "default", "importer-dv1"),
      relayEveryMs: 60_000,
    });
    await services.ensure(uid, podDir, { egress: undefined } as never);
    await writeFile(join(podDir, "progress"), progress);
    const shown = () =>
      api.peek<Pod>(refs.pods, "default", "importer-dv1")?.metadata.annotations?.[PROGRESS_ANNOTATION];
    return { api, services, relay: () => services.relay(uid), shown };
  };

  it("relays the progress file to the pod's annotation, only on change", async () => {
    const { api, services, relay, shown } = await relayed("pod2", "45.2%");
    await relay();
    await relay();
    assert.equal(shown(), "45.2%");
    assert.equal(api.writes.filter((w) => w.verb === "update").length, 1);
    await services.close();
  });

  it("a progress relay while the API server is away resolves, and the next tick sends the progress", async () => {
    const { api, services, relay, shown } = await relayed("pod3", "12.5%");
    const update = api.update.bind(api);
    api.update = () => Promise.reject(new Error("socket hang up")); // not a Status: the connection dropped
    await relay(); // resolves: the interval calls it unawaited
    api.update = update;
    await relay();
    assert.equal(shown(), "12.5%");
    await services.close();
  });
});
