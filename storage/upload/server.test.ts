// The upload server over its unix socket: readiness, one upload at a time, a refused body leaves it waiting, an
// interrupted upload marks nothing and the retry's bytes are the ones on the target.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { WorkerJob } from "../importer/index.js";
import { jobSink, uploadSocketPath } from "./main.js";
import { startUploadServer, type UploadResult } from "./server.js";

/** A job over a fresh 8 MiB disk.img, as the node agent writes it. */
async function jobIn(dir: string): Promise<WorkerJob> {
  const target = join(dir, "disk.img");
  await writeFile(target, "");
  await truncate(target, 8 << 20);
  return {
    version: 1,
    owner: { namespace: "default", name: "dv1", uid: "u1" },
    target: { path: target, block: false, sizeBytes: 8 << 20 },
    source: { kind: "upload" },
    progressFile: join(dir, "progress"),
    terminationLog: join(dir, "termination-log"),
    scratchDir: join(dir, "scratch"),
  };
}

function post(
  socketPath: string,
  body: Buffer,
  opts: { abortAfter?: number } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, path: "/v1beta1/upload", method: "POST", headers: { "content-length": body.length } },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => {
          text += c.toString();
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }),
        );
      },
    );
    req.on("error", reject);
    if (opts.abortAfter !== undefined) {
      req.write(body.subarray(0, opts.abortAfter), () => setTimeout(() => req.destroy(new Error("killed")), 50));
      return;
    }
    req.end(body);
  });
}

function get(socketPath: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    })
      .on("error", reject)
      .end();
  });
}

describe("upload server", () => {
  it("refuses a non-image and keeps waiting; an interrupted upload marks nothing; the retry's bytes land", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "upload-srv-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const job = await jobIn(dir);
    const socketPath = uploadSocketPath(dir);
    const marks: UploadResult[] = [];
    const srv = await startUploadServer({
      socketPath,
      sink: jobSink(job),
      markSucceeded: async (r) => {
        marks.push(r);
      },
    });
    t.after(() => srv.close());
    assert.equal(await get(socketPath, "/healthz"), 200);

    const refused = await post(socketPath, Buffer.from("<html>hello, not an image</html>\n"));
    assert.equal(refused.status, 400);
    assert.equal(refused.json.reason, "NotADiskImage");
    assert.match(String(refused.json.message), /not a disk image/);
    assert.equal(marks.length, 0);

    const image = randomBytes(4 << 20);
    await assert.rejects(post(socketPath, image, { abortAfter: 1 << 20 }));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(marks.length, 0, "an interrupted upload marks nothing");

    const ok = await post(socketPath, image);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    const r = await srv.done;
    assert.equal(r.bytes, image.length);
    assert.equal(r.sha256, createHash("sha256").update(image).digest("hex"));
    const disk = await readFile(job.target.path);
    assert.deepEqual(disk.subarray(0, image.length), image);
    assert.ok(
      disk.subarray(image.length).every((b) => b === 0),
      "the rest of the volume reads zeros",
    );
    assert.equal(marks.length, 1);
  });

  it("an upload interrupted before the sink reads it fails that attempt only; the next one lands", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "upload-srv-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const socketPath = join(dir, "upload.sock");
    let failed: () => void = () => {};
    const attemptFailed = new Promise<void>((r) => {
      failed = r;
    });
    const log = {
      info() {},
      warn: (msg: string) => msg.startsWith("upload failed") && failed(),
      error() {},
      debug() {},
      child() {
        return log;
      },
    };
    let calls = 0;
    const srv = await startUploadServer({
      socketPath,
      // The first attempt does not read until its client is gone (as writeImage cleans the target first): the
      // interruption reaches a body nobody listens to yet. The server must not die of it.
      sink: async (body) => {
        if (++calls === 1) {
          for (let i = 0; i < 6000 && !body.destroyed; i++) await new Promise((r) => setTimeout(r, 5));
          assert.ok(body.destroyed, "the interrupted body is destroyed");
        }
        let bytes = 0;
        for await (const c of body as AsyncIterable<Buffer>) bytes += c.length;
        return { bytes, sha256: "" };
      },
      markSucceeded: async () => {},
      log: log as never,
    });
    t.after(() => srv.close());
    await assert.rejects(post(socketPath, Buffer.alloc(1 << 20), { abortAfter: 64 << 10 }));
    await attemptFailed;
    const ok = await post(socketPath, Buffer.from("DISK"));
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.equal((await srv.done).bytes, 4);
  });

  it("takes one upload at a time", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "upload-srv-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const socketPath = join(dir, "upload.sock");
    let release: () => void = () => {};
    let entered: () => void = () => {};
    const inSink = new Promise<void>((r) => {
      entered = r;
    });
    const srv = await startUploadServer({
      socketPath,
      sink: async (body) => {
        entered();
        body.resume();
        await new Promise<void>((r) => {
          release = r;
        });
        return { bytes: 0, sha256: "" };
      },
      markSucceeded: async () => {},
    });
    t.after(() => srv.close());
    const first = post(socketPath, Buffer.from("DISK"));
    // the first upload holds the server (a fixed sleep let a slow first request arrive second, and hang)
    await inSink;
    const second = await post(socketPath, Buffer.from("DISK"));
    assert.equal(second.status, 409);
    release();
    assert.equal((await first).status, 200);
  });
});
