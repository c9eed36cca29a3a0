// Upload tokens (sign, verify, expiry, tamper) and the upload API on a real in-memory API server: the token request,
// who may make one, and the proxy's answers (401, 404, 503, then a body streamed to the node agent's endpoint, or a
// redirect there for a client that offers to follow one).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { nullLogger } from "../../lib/log.js";
import { checkUploadTicket, UPLOAD_TICKET_ANNOTATION } from "../../lib/upload-ticket.js";
import { type ApiServer, startApiServer } from "../index.js";
import { loadOrCreateUploadKey, UploadTokens, uploadKeyPath } from "./index.js";

describe("upload tokens", () => {
  const key = randomBytes(32);
  test("a signed token verifies and names its namespace and DataVolume", () => {
    const t = new UploadTokens(key);
    const v = t.verify(t.sign("ns1", "dv1"));
    assert.ok(v.ok);
    assert.equal(v.claim.namespace, "ns1");
    assert.equal(v.claim.name, "dv1");
    assert.equal(v.claim.operation, "Upload");
  });
  test("an expired token is refused (5 minutes)", () => {
    let now = 1_000_000_000_000;
    const t = new UploadTokens(key, () => now);
    const tok = t.sign("ns1", "dv1");
    now += 299_000;
    assert.ok(t.verify(tok).ok);
    now += 2_000;
    assert.deepEqual(t.verify(tok), { ok: false, why: "upload token expired" });
  });
  test("a tampered payload, a foreign key or garbage is refused", () => {
    const t = new UploadTokens(key);
    const tok = t.sign("ns1", "dv1");
    const [payload, sig] = tok.split(".") as [string, string];
    const claim = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claim, name: "other" })).toString("base64url");
    assert.equal(t.verify(`${forged}.${sig}`).ok, false);
    assert.equal(new UploadTokens(randomBytes(32)).verify(tok).ok, false);
    assert.equal(t.verify("garbage").ok, false);
    assert.equal(t.verify(`${payload}.${sig.slice(0, -2)}AA`).ok, false);
  });
  test("the key is kept in the data dir, mode 0600, and reused", async () => {
    const dir = await mkdtemp(join(tmpdir(), "upload-key-"));
    try {
      const a = loadOrCreateUploadKey(dir);
      const b = loadOrCreateUploadKey(dir);
      assert.deepEqual(a, b);
      assert.equal((await stat(uploadKeyPath(dir))).mode & 0o777, 0o600);
      assert.ok((await readFile(uploadKeyPath(dir), "utf8")).length > 40);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("upload API", () => {
  let api: ApiServer;
  before(async () => {
    api = await startApiServer({ memory: true, logger: nullLogger });
  });
  after(() => api.close());

  const call = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: Record<string, unknown> }> => {
    const init: RequestInit = { method, headers: { "content-type": "application/json", ...headers } };
    if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
    const r = await fetch(api.url + path, init);
    const text = await r.text();
    return { status: r.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const TOKENS = "/apis/upload.cdi.kubevirt.io/v1beta1/namespaces/default/uploadtokenrequests";
  /** A POST that offers to follow a redirect and waits for 100 Continue before its body (as virtctl's). */
  const offerToFollow = (tok: string) =>
    new Promise<{ status: number; location?: string; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = http.request(`${api.url}/v1beta1/upload`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${tok}`,
          "content-type": "application/octet-stream",
          "content-length": "10",
          expect: "100-continue",
          "x-tsvirt-upload-redirect": "allowed",
        },
      });
      req.on("continue", () => {
        continued = true;
      });
      req.on("response", (res) => {
        res.resume();
        req.destroy();
        resolve({ status: res.statusCode ?? 0, location: res.headers.location, continued });
      });
      req.on("error", reject);
      req.flushHeaders();
    });
  const token = async (pvcName: string): Promise<string> => {
    const r = await call("POST", TOKENS, {
      apiVersion: "upload.cdi.kubevirt.io/v1beta1",
      kind: "UploadTokenRequest",
      metadata: { name: pvcName },
      spec: { pvcName },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return String((r.body.status as Record<string, unknown>).token);
  };
  const upload = (tok: string | undefined, data: string) =>
    call("POST", "/v1beta1/upload", data, {
      "content-type": "application/octet-stream",
      ...(tok ? { authorization: `Bearer ${tok}` } : {}),
    });

  test("an UploadTokenRequest is answered with a token and stored nowhere", async () => {
    const tok = await token("dv1");
    assert.match(tok, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    const list = await call("GET", TOKENS);
    assert.equal(list.status, 405);
    const bad = await call("POST", TOKENS, {
      apiVersion: "upload.cdi.kubevirt.io/v1beta1",
      kind: "UploadTokenRequest",
      spec: {},
    });
    assert.equal(bad.status, 422);
    assert.match(JSON.stringify(bad.body), /spec\.pvcName/);
  });

  test("only whoever may create or update DataVolumes gets one", async () => {
    const handler = api.identities.find((i) => i.component === "handler");
    assert.ok(handler);
    const r = await call(
      "POST",
      TOKENS,
      { apiVersion: "upload.cdi.kubevirt.io/v1beta1", kind: "UploadTokenRequest", spec: { pvcName: "dv1" } },
      { authorization: `Bearer ${handler.token}` },
    );
    assert.equal(r.status, 403);
  });

  test("the proxy refuses a missing or bad token (401), an unknown DV (404), a DV without a ready pod (503)", async () => {
    assert.equal((await upload(undefined, "x")).status, 401);
    assert.equal((await upload("abc.def", "x")).status, 401);
    const missing = await upload(await token("nodv"), "x");
    assert.equal(missing.status, 404);
    assert.match(String(missing.body.message), /datavolumes.cdi.kubevirt.io "nodv" not found/);
    const dv = await call("POST", "/apis/cdi.kubevirt.io/v1beta1/namespaces/default/datavolumes", {
      apiVersion: "cdi.kubevirt.io/v1beta1",
      kind: "DataVolume",
      metadata: { name: "up1" },
      spec: { source: { upload: {} }, storage: { resources: { requests: { storage: "1Mi" } } } },
    });
    assert.equal(dv.status, 201, JSON.stringify(dv.body));
    const early = await upload(await token("up1"), "x");
    assert.equal(early.status, 503);
    assert.match(String(early.body.message), /upload pod not ready yet: Pending/);
  });

  test("with the upload pod ready, the body streams to its node's agent and the answer comes back", async (t) => {
    let received = "";
    let path = "";
    let refuse = false;
    const agent = http.createServer((req, res) => {
      path = req.url ?? "";
      if (refuse) {
        const s = {
          kind: "Status",
          apiVersion: "v1",
          code: 400,
          reason: "NotADiskImage",
          message: "the source is text, not a disk image",
        };
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify(s));
        req.resume();
        return;
      }
      req.on("data", (c: Buffer) => {
        received += c.toString();
      });
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((r) => agent.listen(0, "127.0.0.1", () => r()));
    t.after(() => new Promise<void>((r) => agent.close(() => r())));
    const port = (agent.address() as AddressInfo).port;
    await call("POST", "/api/v1/nodes", { metadata: { name: "upn" } });
    await call(
      "PATCH",
      "/api/v1/nodes/upn/status",
      {
        status: {
          addresses: [{ type: "InternalIP", address: "127.0.0.1" }],
          daemonEndpoints: { kubeletEndpoint: { Port: port } },
        },
      },
      { "content-type": "application/merge-patch+json" },
    );
    const dv = await call("POST", "/apis/cdi.kubevirt.io/v1beta1/namespaces/default/datavolumes", {
      apiVersion: "cdi.kubevirt.io/v1beta1",
      kind: "DataVolume",
      metadata: { name: "up2" },
      spec: { source: { upload: {} }, storage: { resources: { requests: { storage: "1Mi" } } } },
    });
    const uid = String((dv.body.metadata as Record<string, unknown>).uid);
    const pod = await call("POST", "/api/v1/namespaces/default/pods", {
      metadata: {
        name: "cdi-upload-up2",
        labels: { "cdi.kubevirt.io": "cdi-upload-server", app: "containerized-data-importer" },
        ownerReferences: [
          { apiVersion: "cdi.kubevirt.io/v1beta1", kind: "DataVolume", name: "up2", uid, controller: true },
        ],
      },
      spec: { nodeName: "upn", containers: [{ name: "cdi-upload-server", image: "tsvirt/cdi-upload-server" }] },
    });
    assert.equal(pod.status, 201, JSON.stringify(pod.body));
    await call(
      "PATCH",
      "/api/v1/namespaces/default/pods/cdi-upload-up2/status",
      { status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }] } },
      { "content-type": "application/merge-patch+json" },
    );
    const r = await upload(await token("up2"), "disk bytes");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(received, "disk bytes");
    // the relay carries a one-time ticket whose hash (only) the API server put on the upload pod
    const relayed = new URL(path, "http://agent");
    assert.equal(relayed.pathname, "/upload/default/cdi-upload-up2");
    const ticketOnPod = async (): Promise<string | undefined> => {
      const p = await call("GET", "/api/v1/namespaces/default/pods/cdi-upload-up2");
      return ((p.body.metadata as Record<string, unknown>).annotations as Record<string, string>)[
        UPLOAD_TICKET_ANNOTATION
      ];
    };
    const relayTicket = relayed.searchParams.get("ticket");
    const record = await ticketOnPod();
    assert.equal(checkUploadTicket(record, relayTicket), undefined);
    assert.ok(record && relayTicket && !record.includes(relayTicket), "the pod holds the hash, not the ticket");

    // the upload server's refusal (answered before the body ended) reaches the client as its Status
    refuse = true;
    const big = await call("POST", "/v1beta1/upload", Buffer.alloc(8 << 20, 65).toString(), {
      "content-type": "application/octet-stream",
      authorization: `Bearer ${await token("up2")}`,
    });
    assert.equal(big.status, 400);
    assert.equal(big.body.reason, "NotADiskImage");
    assert.equal(big.body.message, "the source is text, not a disk image");

    // a client that offers to follow (and waits for 100 Continue) is sent to the agent before it sends a byte
    refuse = false;
    received = "";
    path = "";
    const tok = await token("up2");
    const redirect = await offerToFollow(tok);
    const loc = new URL(redirect.location ?? "");
    assert.deepEqual(
      { status: redirect.status, location: `${loc.origin}${loc.pathname}`, continued: redirect.continued },
      { status: 307, location: `http://127.0.0.1:${port}/upload/default/cdi-upload-up2`, continued: false },
    );
    assert.equal(path, "", "the agent saw nothing: the client goes there itself");
    const redirectTicket = loc.searchParams.get("ticket");
    assert.equal(checkUploadTicket(await ticketOnPod(), redirectTicket), undefined, "the redirect's ticket is open");
    assert.match(
      checkUploadTicket(await ticketOnPod(), relayTicket) ?? "",
      /does not match/,
      "only the newest ticket is good",
    );

    // no token, no ticket: nothing is redirected or relayed
    const anon = await call("POST", "/v1beta1/upload", "disk bytes", {
      "content-type": "application/octet-stream",
      "x-tsvirt-upload-redirect": "allowed",
    });
    assert.equal(anon.status, 401);
    assert.equal(checkUploadTicket(await ticketOnPod(), redirectTicket), undefined, "no new ticket was opened");

    // a client that waits for 100 Continue while the pod is not ready yet is held until it is (no 503, no polling)
    const readiness = (status: "True" | "False") =>
      call(
        "PATCH",
        "/api/v1/namespaces/default/pods/cdi-upload-up2/status",
        { status: { phase: "Running", conditions: [{ type: "Ready", status }] } },
        { "content-type": "application/merge-patch+json" },
      );
    await readiness("False");
    const held = await token("up2");
    let answered = 0;
    const heldAnswer = offerToFollow(held).then((r) => {
      answered = Date.now();
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(answered, 0, "held while the pod is not ready");
    const readyAt = Date.now();
    await readiness("True");
    const h = await heldAnswer;
    assert.equal(h.status, 307);
    assert.ok(answered >= readyAt, "answered once the pod was ready");
    assert.equal(
      checkUploadTicket(await ticketOnPod(), new URL(h.location ?? "").searchParams.get("ticket")),
      undefined,
    );
  });
});
