import assert from "node:assert/strict";
import { appendFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createWebSocketStream, WebSocket } from "ws";
import { statusError } from "../lib/errors.js";
import { fakeRfbServer, rfbHandshake } from "../tests/lib/rfb.js";
import { startServer, streamSocket, uploadSocket } from "./server.js";

describe("handler HTTP endpoint", () => {
  it("serves pods/log (tail, follow) and bridges the console WebSocket to the launcher's console socket", {
    timeout: 30_000,
  }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-srv-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "launcher.log"), "one\ntwo\nthree\n");
    await mkdir(join(dir, "sockets"));
    // The launcher's console socket, echoing in upper case.
    const serial = createServer((c) => c.on("data", (d) => c.write(d.toString().toUpperCase())));
    await new Promise<void>((r) => serial.listen(join(dir, "sockets", "console.sock"), r));
    t.after(() => serial.close());
    const srv = await startServer({
      host: "127.0.0.1",
      port: 0,
      podDir: (ns, name) => (ns === "default" && name === "virt-launcher-vm1-abcde" ? dir : undefined),
      vmiPodDir: (ns, name) => (ns === "default" && name === "vm1" ? dir : undefined),
    });
    t.after(() => srv.close());
    const base = `http://127.0.0.1:${srv.port}`;

    assert.equal(
      await (await fetch(`${base}/containerLogs/default/virt-launcher-vm1-abcde/compute`)).text(),
      "one\ntwo\nthree\n",
    );
    assert.equal(
      await (await fetch(`${base}/containerLogs/default/virt-launcher-vm1-abcde/compute?tailLines=2`)).text(),
      "two\nthree\n",
    );
    const nf = await fetch(`${base}/containerLogs/default/nope/compute`);
    assert.equal(nf.status, 404);
    assert.equal(((await nf.json()) as { reason: string }).reason, "NotFound");

    // follow: bytes appended later arrive on the open stream.
    const ac = new AbortController();
    const res = await fetch(`${base}/containerLogs/default/virt-launcher-vm1-abcde/compute?follow=true&tailLines=0`, {
      signal: ac.signal,
    });
    const reader = res.body?.getReader();
    assert.ok(reader);
    await appendFile(join(dir, "launcher.log"), "four\n");
    const { value } = await reader.read();
    assert.equal(Buffer.from(value ?? []).toString(), "four\n");
    ac.abort();

    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/v1/namespaces/default/virtualmachineinstances/vm1/console`, [
      "plain.kubevirt.io",
    ]);
    t.after(() => ws.terminate());
    await new Promise((r, j) => {
      ws.once("open", r);
      ws.once("error", j);
    });
    assert.equal(ws.protocol, "plain.kubevirt.io");
    const echoed = new Promise<string>((r) => ws.once("message", (d: Buffer) => r(d.toString())));
    ws.send(Buffer.from("echo hi\n"));
    assert.equal(await echoed, "ECHO HI\n");
  });

  it("bridges the vnc WebSocket to QEMU's VNC socket in the pod's qemu dir; 404 and 503 carry a Status", {
    timeout: 30_000,
  }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-srv-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, "qemu"));
    const srv = await startServer({
      host: "127.0.0.1",
      port: 0,
      podDir: () => undefined,
      vmiPodDir: (ns, name) => (ns === "default" && name === "vm1" ? dir : undefined),
    });
    t.after(() => srv.close());
    const url = (name: string) =>
      `ws://127.0.0.1:${srv.port}/v1/namespaces/default/virtualmachineinstances/${name}/vnc`;
    const refused = (name: string) =>
      new Promise<{ code: number; body: { kind: string; message: string } }>((resolve, reject) => {
        const ws = new WebSocket(url(name), ["plain.kubevirt.io"]);
        ws.once("open", () => reject(new Error("upgrade accepted")));
        ws.once("unexpected-response", (_req, res) => {
          let text = "";
          res.on("data", (d: Buffer) => {
            text += d.toString();
          });
          res.on("end", () => resolve({ code: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        ws.once("error", () => {});
      });

    const nf = await refused("nope");
    assert.equal(nf.code, 404);
    assert.equal(nf.body.kind, "Status");
    assert.match(nf.body.message, /nope/);
    // The VMI runs here but QEMU's VNC socket is not there (yet): 503, not an open stream that closes at once.
    const na = await refused("vm1");
    assert.equal(na.code, 503);
    assert.match(na.body.message, /vnc of this VMI is not available/);

    // A fake QEMU VNC server on the socket the converter names in the domain's <graphics>.
    assert.equal(streamSocket(dir, "vnc"), join(dir, "qemu", "vnc"));
    const vnc = createServer((c) => void fakeRfbServer(c, "QEMU (default_vm1)").catch(() => c.destroy()));
    await new Promise<void>((r) => vnc.listen(streamSocket(dir, "vnc"), r));
    t.after(() => vnc.close());
    const ws = new WebSocket(url("vm1"), ["plain.kubevirt.io"]);
    t.after(() => ws.terminate());
    // The stream reads from the start: QEMU's banner can come in the same packet as the 101.
    const stream = createWebSocketStream(ws);
    const init = await rfbHandshake(stream, 10_000);
    assert.equal(ws.protocol, "plain.kubevirt.io");
    assert.deepEqual(init, { version: "RFB 003.008\n", width: 640, height: 480, name: "QEMU (default_vm1)" });
  });

  it("bridges POST /upload/{ns}/{pod} to the pod's upload socket and its answer back", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-srv-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await mkdir(join(dir, "sockets"));
    let got = "";
    const up = createHttpServer((req, res) => {
      req.on("data", (c: Buffer) => {
        got += c.toString();
      });
      req.on("end", () => {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ kind: "Status", code: 400, reason: "NotADiskImage", message: "not a disk image" }));
      });
    });
    await new Promise<void>((r) => up.listen(uploadSocket(dir), r));
    t.after(() => up.close());
    const srv = await startServer({
      host: "127.0.0.1",
      port: 0,
      podDir: (ns, name) => (ns === "default" && name === "cdi-upload-dv1" ? dir : undefined),
      claimUploadTicket: async (ns, pod, ticket) => {
        claims.push(`${ns}/${pod}?${ticket}`);
        if (ticket !== "good") throw statusError(401, "Unauthorized", "the upload ticket does not match");
      },
      vmiPodDir: () => undefined,
    });
    t.after(() => srv.close());
    const claims: string[] = [];
    const noTicket = await fetch(`http://127.0.0.1:${srv.port}/upload/default/cdi-upload-dv1`, {
      method: "POST",
      body: "abc",
    });
    assert.equal(noTicket.status, 401);
    const bad = await fetch(`http://127.0.0.1:${srv.port}/upload/default/cdi-upload-dv1?ticket=bad`, {
      method: "POST",
      body: "abc",
    });
    assert.equal(bad.status, 401);
    assert.equal(((await bad.json()) as { reason: string }).reason, "Unauthorized");
    assert.equal(got, "", "nothing reached the upload server without the ticket");
    const r = await fetch(`http://127.0.0.1:${srv.port}/upload/default/cdi-upload-dv1?ticket=good`, {
      method: "POST",
      body: "abc",
    });
    assert.equal(r.status, 400);
    assert.equal(((await r.json()) as { reason: string }).reason, "NotADiskImage");
    assert.equal(got, "abc");
    assert.deepEqual(claims, [
      "default/cdi-upload-dv1?null",
      "default/cdi-upload-dv1?bad",
      "default/cdi-upload-dv1?good",
    ]);
    const nf = await fetch(`http://127.0.0.1:${srv.port}/upload/default/other?ticket=good`, {
      method: "POST",
      body: "abc",
    });
    assert.equal(nf.status, 404);

    // A channel that cannot take the connection: the ticket checked once, the body relayed to the socket after all.
    got = "";
    const offered: number[] = [];
    const srv2 = await startServer({
      host: "127.0.0.1",
      port: 0,
      podDir: (ns, name) => (ns === "default" && name === "cdi-upload-dv1" ? dir : undefined),
      claimUploadTicket: async (ns, pod, ticket) => {
        claims.push(`${ns}/${pod}?${ticket}`);
      },
      uploadHandoff: () => async (_socket, head) => {
        offered.push(head.length);
        return false;
      },
      vmiPodDir: () => undefined,
    });
    t.after(() => srv2.close());
    claims.length = 0;
    const relayed = await fetch(`http://127.0.0.1:${srv2.port}/upload/default/cdi-upload-dv1?ticket=good`, {
      method: "POST",
      body: "xyz",
    });
    assert.equal(relayed.status, 400);
    assert.equal(got, "xyz");
    assert.equal(offered.length, 1);
    assert.deepEqual(claims, ["default/cdi-upload-dv1?good"], "the ticket is taken once");
  });
});
