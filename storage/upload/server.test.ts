// The upload server over its unix socket: readiness, one upload at a time, a refused body leaves it waiting, an
// interrupted upload marks nothing and the retry's bytes are the ones on the target.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { SinkRefusal, startUploadServer, type UploadSink } from "./server.js";

/** A stand-in for the importer's sink: clean target first, refuses bodies not starting with "DISK", writes raw. */
function fileSink(target: string): UploadSink {
  return async (body: Readable, { signal }) => {
    await truncate(target, 0);
    const hash = createHash("sha256");
    let bytes = 0;
    let first = true;
    body.on("data", (c: Buffer) => {
      if (first && !c.subarray(0, 4).equals(Buffer.from("DISK"))) {
        body.destroy(new SinkRefusal("NotADiskImage", "the upload is not a disk image (qcow2, raw, gz, xz)"));
      }
      first = false;
      hash.update(c);
      bytes += c.length;
    });
    await pipeline(body, createWriteStream(target, { flags: "r+" }), { signal });
    return { bytes, sha256: hash.digest("hex") };
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
    const target = join(dir, "disk.img");
    await writeFile(target, "");
    const socketPath = join(dir, "sockets", "upload.sock");
    const marks: unknown[] = [];
    const srv = await startUploadServer({
      socketPath,
      sink: fileSink(target),
      markSucceeded: async (r) => {
        marks.push(r);
      },
    });
    t.after(() => srv.close());
    assert.equal(await get(socketPath, "/healthz"), 200);

    const refused = await post(socketPath, Buffer.from("hello, not an image"));
    assert.equal(refused.status, 400);
    assert.equal(refused.json.reason, "NotADiskImage");
    assert.match(String(refused.json.message), /not a disk image/);
    assert.equal(marks.length, 0);

    const image = Buffer.concat([Buffer.from("DISK"), Buffer.alloc(4 << 20, 7)]);
    await assert.rejects(post(socketPath, image, { abortAfter: 1 << 20 }));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(marks.length, 0, "an interrupted upload marks nothing");

    const ok = await post(socketPath, image);
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    const r = await srv.done;
    assert.equal(r.bytes, image.length);
    assert.deepEqual(await readFile(target), image);
    assert.equal(marks.length, 1);
  });

  it("takes one upload at a time", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "upload-srv-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const socketPath = join(dir, "upload.sock");
    let release: () => void = () => {};
    const srv = await startUploadServer({
      socketPath,
      sink: async (body) => {
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
    await new Promise((r) => setTimeout(r, 100));
    const second = await post(socketPath, Buffer.from("DISK"));
    assert.equal(second.status, 409);
    release();
    assert.equal((await first).status, 200);
  });
});
