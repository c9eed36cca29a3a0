// The upload pod shape's own parts: which pods it runs, and its readiness (the upload server answers on its socket).
// Job resolution is the importer's (workers.test.ts); the whole path runs in tests/e2e/upload.test.ts.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { isStatusError } from "../../lib/errors.js";
import { mintUploadTicket, UPLOAD_TICKET_ANNOTATION } from "../../lib/upload-ticket.js";
import { type Pod, refs } from "../ports.js";
import { uploadSocket } from "../server.js";
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
