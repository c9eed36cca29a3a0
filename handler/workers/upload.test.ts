// The upload pod shape's own parts: which pods it runs, and its readiness (the upload server answers on its socket).
// Job resolution is the importer's (workers.test.ts); the whole path runs in tests/e2e/upload.test.ts.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { createServer, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isStatusError, statusError } from "../../lib/errors.js";
import { mintUploadTicket, UPLOAD_TICKET_ANNOTATION } from "../../lib/upload-ticket.js";
import { type Pod, refs } from "../ports.js";
import { startServer, uploadSocket } from "../server.js";
import { FakeApi } from "../testing.js";
import { WorkerServices } from "./services.js";
import { claimUploadTicket, probeUploadServer, UPLOAD_ROLE, uploadShape } from "./upload.js";

describe("upload pod shape", () => {
  it("runs cdi-upload-server pods controlled by a DataVolume, ready once the server answers /healthz", async (t) => {
    const api = new FakeApi();
    const shape = uploadShape({
      node: "n1",
      dataDir: "/nonexistent",
      api,
      registries: async () => {
        throw new Error("an upload needs no registry");
      },
      services: new WorkerServices({ api, getPod: () => undefined }),
    });
    const pod = (role: string): Pod => ({
      metadata: {
        name: "cdi-upload-dv1",
        namespace: "default",
        labels: { "cdi.kubevirt.io": role },
        ownerReferences: [
          { apiVersion: "cdi.kubevirt.io/v1beta1", kind: "DataVolume", name: "dv1", uid: "u1", controller: true },
        ],
      },
      spec: { containers: [{ name: UPLOAD_ROLE, image: "tsvirt/cdi-upload-server" }] },
    });
    assert.deepEqual(shape.match(pod(UPLOAD_ROLE)), { ok: true, ownerUid: "u1" });
    assert.equal(shape.match(pod("importer")).ok, false);

    const dir = await mkdtemp(join(tmpdir(), "upload-shape-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    assert.equal(await shape.ready("u1", dir), false, "no socket yet");
    await mkdir(join(dir, "sockets"));
    const srv = createServer((req, res) => {
      res.writeHead(req.url === "/healthz" ? 200 : 404);
      res.end();
    });
    await new Promise<void>((r) => srv.listen(uploadSocket(dir), r));
    t.after(() => srv.close());
    assert.equal(await shape.ready("u1", dir), true);
    assert.equal(await probeUploadServer(join(dir, "nope.sock")), false);
    assert.equal(shape.terminationMessagePath(dir), join(dir, "termination-log"));
  });
});

describe("upload tickets (the node agent's side)", () => {
  const code = (e: unknown): number | undefined => (isStatusError(e) ? e.status.code : undefined);
  const refused = (want: number, msg: RegExp) => (e: unknown) => code(e) === want && msg.test((e as Error).message);
  const withTicket = (api: FakeApi, record: string | undefined, role = UPLOAD_ROLE): void => {
    api.put<Pod>(refs.pods, {
      metadata: {
        name: "cdi-upload-dv1",
        namespace: "default",
        labels: { "cdi.kubevirt.io": role },
        ...(record ? { annotations: { [UPLOAD_TICKET_ANNOTATION]: record, other: "kept" } } : {}),
      },
      spec: { containers: [{ name: UPLOAD_ROLE, image: "tsvirt/cdi-upload-server" }] },
    });
  };

  it("takes a ticket once, and only the one the API server recorded, before it expires", async () => {
    const api = new FakeApi();
    const now = Date.now();
    const { ticket, record } = mintUploadTicket(now, 60);
    withTicket(api, record);
    const other = mintUploadTicket(now, 60).ticket;
    await assert.rejects(claimUploadTicket(api, "default", "cdi-upload-dv1", null), refused(401, /needs the ticket/));
    await assert.rejects(claimUploadTicket(api, "default", "cdi-upload-dv1", "x'; rm -rf"), refused(401, /malformed/));
    await assert.rejects(claimUploadTicket(api, "default", "cdi-upload-dv1", other), refused(401, /does not match/));
    await assert.rejects(
      claimUploadTicket(api, "default", "cdi-upload-dv1", ticket, () => now + 61_000),
      refused(401, /expired/),
    );
    await claimUploadTicket(api, "default", "cdi-upload-dv1", ticket, () => now);
    const pod = api.peek<Pod>(refs.pods, "default", "cdi-upload-dv1");
    assert.deepEqual(pod?.metadata.annotations, { other: "kept" }, "the record is consumed, nothing else touched");
    await assert.rejects(
      claimUploadTicket(api, "default", "cdi-upload-dv1", ticket, () => now),
      refused(401, /no upload ticket is open/),
      "single use",
    );
  });

  it("refuses a pod that is not an upload server, and one that does not exist", async () => {
    const api = new FakeApi();
    const { ticket, record } = mintUploadTicket();
    withTicket(api, record, "importer");
    await assert.rejects(claimUploadTicket(api, "default", "cdi-upload-dv1", ticket), refused(404, /not an upload/));
    await assert.rejects(claimUploadTicket(api, "default", "nope", ticket), refused(404, /not found/));
  });

  it("of two uses racing, one wins (the record goes with a resourceVersion precondition)", async () => {
    const api = new FakeApi();
    const { ticket, record } = mintUploadTicket();
    withTicket(api, record);
    const r = await Promise.allSettled([
      claimUploadTicket(api, "default", "cdi-upload-dv1", ticket),
      claimUploadTicket(api, "default", "cdi-upload-dv1", ticket),
    ]);
    assert.deepEqual(r.map((x) => x.status).sort(), ["fulfilled", "rejected"]);
  });
});

describe("upload handoff (agent → upload server over the IPC channel)", () => {
  it("hands the client's connection to the upload server: it writes and answers, with 100-continue too", {
    timeout: 60_000,
  }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "upload-handoff-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const podDir = join(dir, "pod");
    await mkdir(podDir, { recursive: true });
    const target = join(dir, "disk.img");
    const size = 64 << 20;
    await writeFile(target, "");
    await truncate(target, size);
    const job = {
      version: 1,
      owner: { namespace: "default", name: "dv1", uid: "u1" },
      target: { path: target, block: false, sizeBytes: size },
      source: { kind: "upload" },
      progressFile: join(podDir, "progress"),
      terminationLog: join(podDir, "termination-log"),
      scratchDir: join(podDir, "scratch"),
    };
    await writeFile(join(podDir, "job.json"), JSON.stringify(job));
    // The upload server as the agent runs it: its own process, the channel on fd 3.
    const main = new URL("../../storage/upload/main.ts", import.meta.url).href;
    const code = `
      import { runUploadServerCli } from ${JSON.stringify(main)};
      process.exitCode = await runUploadServerCli(${JSON.stringify(join(podDir, "job.json"))}, { info() {}, warn() {}, error() {}, debug() {}, child() { return this; } });`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    let out = "";
    child.stdout?.on("data", (d) => (out += d));
    child.stderr?.on("data", (d) => (out += d));
    t.after(() => void child.kill("SIGKILL"));
    // (the agent's channel is unref'd, as is an ipc child's process handle: the test's own loop is held here)
    const hold = setInterval(() => {}, 1_000);
    t.after(() => clearInterval(hold));
    const exited = new Promise<number | null>((r) => child.once("exit", r));
    let said: () => void = () => {};
    const ready = new Promise<void>((r) => {
      said = r;
    });
    const services = new WorkerServices({ api: new FakeApi(), getPod: () => undefined, onReady: () => said() });
    services.uploadChannel(podDir)(child);
    await ready;
    assert.equal(services.uploadListening(podDir), true, "the server said it listens: Ready without a probe");
    const claims: string[] = [];
    const srv = await startServer({
      host: "127.0.0.1",
      port: 0,
      podDir: (ns, name) => (ns === "default" && name === "cdi-upload-dv1" ? podDir : undefined),
      claimUploadTicket: async (_ns, _pod, ticket) => {
        claims.push(String(ticket));
        if (ticket !== "good") throw statusError(401, "Unauthorized", "the upload ticket does not match");
      },
      uploadHandoff: (p) => services.uploadHandoff(p),
      vmiPodDir: () => undefined,
    });
    t.after(() => srv.close());
    const post = (ticket: string, body: Buffer, expect = false) =>
      new Promise<{ status: number; connection?: string; body: string }>((resolve, reject) => {
        const req = httpRequest(
          {
            host: "127.0.0.1",
            port: srv.port,
            method: "POST",
            path: `/upload/default/cdi-upload-dv1?ticket=${ticket}`,
            headers: { "content-length": body.length, ...(expect ? { expect: "100-continue" } : {}) },
          },
          (res) => {
            let s = "";
            res.on("data", (d) => (s += d));
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                body: s,
                ...(res.headers.connection ? { connection: res.headers.connection } : {}),
              }),
            );
          },
        );
        req.on("error", reject);
        if (expect) req.on("continue", () => req.end(body));
        else req.end(body);
      });
    const bad = await post("bad", Buffer.alloc(1 << 20, 1));
    assert.equal(bad.status, 401);
    assert.match(bad.body, /Unauthorized/);
    const text = await post("good", Buffer.from("hello, not a disk\n".repeat(1000)));
    assert.equal(text.status, 400);
    assert.match(text.body, /NotADiskImage/);
    assert.equal(text.connection, "close", "the upload server answered on the handed-over connection itself");
    // 100-continue: the upload server says go
    const early = await post("good", Buffer.from("not a disk either\n".repeat(100)), true);
    assert.equal(early.status, 400);
    // From another process, the body right behind the head: the agent reads more than the head before it stops
    // reading (those bytes must reach the server with the head)
    const image = Buffer.concat([randomBytes(40 << 20), Buffer.alloc(4 << 20), randomBytes(4 << 20)]);
    const file = join(dir, "image.raw");
    await writeFile(file, image);
    const client = `
      import http from "node:http"; import { createReadStream, statSync } from "node:fs";
      const req = http.request({ host: "127.0.0.1", port: ${srv.port}, method: "POST",
        path: "/upload/default/cdi-upload-dv1?ticket=good", headers: { "content-length": statSync(${JSON.stringify(file)}).size } },
        (res) => { let s = ""; res.on("data", (d) => (s += d)); res.on("end", () => console.log(JSON.stringify({ status: res.statusCode, connection: res.headers.connection, body: s }))); });
      createReadStream(${JSON.stringify(file)}).pipe(req);`;
    const sender = spawn(process.execPath, ["--input-type=module", "-e", client], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let answer = "";
    sender.stdout?.on("data", (d) => (answer += d));
    await new Promise((r) => sender.once("exit", r));
    const ok = JSON.parse(answer || "{}") as { status?: number; connection?: string; body?: string };
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.connection, "close");
    assert.equal(await exited, 0, `the upload server exits once the upload is written and verified: ${out}`);
    const disk = await readFile(target);
    assert.ok(disk.subarray(0, image.length).equals(image));
    assert.match(await readFile(job.terminationLog, "utf8"), /"outcome":"Succeeded"/);
    assert.deepEqual(claims, ["bad", "good", "good", "good"]);
  });
});
