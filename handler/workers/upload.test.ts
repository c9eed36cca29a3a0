// The upload pod shape's own parts: which pods it runs, and its readiness (the upload server answers on its socket).
// Job resolution is the importer's (workers.test.ts); the whole path runs in tests/e2e/upload.test.ts.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Pod } from "../ports.js";
import { uploadSocket } from "../server.js";
import { FakeApi } from "../testing.js";
import { WorkerServices } from "./services.js";
import { probeUploadServer, UPLOAD_ROLE, uploadShape } from "./upload.js";

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
