import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { WebSocketServer } from "ws";
import { consoleSession } from "./console.js";

interface Srv {
  url: string;
  protocols: string[];
  auth: (string | undefined)[];
  close(): Promise<void>;
}

/** A console endpoint on loopback: answers `failFirst` upgrade attempts with a Status, then echoes bytes back. */
async function consoleServer(failFirst: { code: number; message: string }[] = []): Promise<Srv> {
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (p) => (p.has("plain.kubevirt.io") ? "plain.kubevirt.io" : false),
  });
  const protocols: string[] = [];
  const auth: (string | undefined)[] = [];
  const srv = http.createServer();
  srv.on("upgrade", (req, socket, head) => {
    assert.equal(req.url, "/apis/subresources.kubevirt.io/v1/namespaces/vms/virtualmachineinstances/testvmi/console");
    auth.push(req.headers.authorization);
    const f = failFirst.shift();
    if (f) {
      const body = JSON.stringify({
        kind: "Status",
        apiVersion: "v1",
        status: "Failure",
        code: f.code,
        reason: "Conflict",
        message: f.message,
      });
      socket.end(
        `HTTP/1.1 ${f.code} X\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      protocols.push(ws.protocol);
      ws.on("message", (d: Buffer) => ws.send(d));
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    protocols,
    auth,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}

function streams() {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  let out = Buffer.alloc(0);
  stdout.on("data", (c: Buffer) => (out = Buffer.concat([out, c])));
  let err = "";
  return { stdin, stdout, io: { out: () => {}, err: (s: string) => (err += s) }, got: () => out, errText: () => err };
}

async function until(cond: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("virtctl console", () => {
  it("speaks plain.kubevirt.io with the bearer token and passes bytes through unchanged when stdin is not a terminal", async (t) => {
    const srv = await consoleServer();
    t.after(() => srv.close());
    const s = streams();
    const done = consoleSession({ server: srv.url, namespace: "vms", token: "tok" }, "vms", "testvmi", s, {
      timeoutMs: 5000,
    });
    const bytes = Buffer.from([0x00, 0x1d, 0xff, 0x0a, 0x41, 0x03]);
    s.stdin.write(bytes);
    await until(() => s.got().length >= bytes.length);
    assert.deepEqual(s.got(), bytes, "Ctrl+] and binary bytes are data, not an escape, without a terminal");
    s.stdin.end();
    await done;
    assert.deepEqual(srv.protocols, ["plain.kubevirt.io"]);
    assert.deepEqual(srv.auth, ["Bearer tok"]);
    assert.match(s.errText(), /Successfully connected to testvmi console\. The escape sequence is \^\]/);
  });

  it("on a terminal, Ctrl+] ends the session and raw mode is restored", async (t) => {
    const srv = await consoleServer();
    t.after(() => srv.close());
    const s = streams();
    const modes: boolean[] = [];
    const stdin = Object.assign(s.stdin, { isTTY: true, setRawMode: (m: boolean) => modes.push(m) });
    const done = consoleSession(
      { server: srv.url, namespace: "vms" },
      "vms",
      "testvmi",
      { ...s, stdin },
      { timeoutMs: 5000 },
    );
    await until(() => modes.length === 1);
    stdin.write(Buffer.from("ls\r"));
    await until(() => s.got().toString() === "ls\r");
    stdin.write(Buffer.from([0x1d]));
    await done;
    assert.deepEqual(modes, [true, false]);
  });

  it("waits while the VMI is not ready (409), then connects; a 404 fails at once with the server's message", async (t) => {
    const srv = await consoleServer([
      { code: 409, message: "VMI is not running" },
      { code: 409, message: "VMI is not running" },
    ]);
    t.after(() => srv.close());
    const s = streams();
    const done = consoleSession({ server: srv.url, namespace: "vms" }, "vms", "testvmi", s, {
      timeoutMs: 10_000,
      retryMs: 10,
    });
    await until(() => srv.protocols.length === 1);
    s.stdin.end();
    await done;
    assert.equal(srv.auth.length, 3);
    assert.match(s.errText(), /Waiting for the VMI testvmi to be ready/);

    const srv404 = await consoleServer([
      { code: 404, message: 'virtualmachineinstance.kubevirt.io "testvmi" not found' },
    ]);
    t.after(() => srv404.close());
    await assert.rejects(
      consoleSession({ server: srv404.url, namespace: "vms" }, "vms", "testvmi", streams(), {
        timeoutMs: 10_000,
        retryMs: 10,
      }),
      /"testvmi" not found/,
    );
  });
});
