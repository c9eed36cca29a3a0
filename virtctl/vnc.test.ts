import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { createWebSocketStream, WebSocketServer } from "ws";
import { fakeRfbServer, rfbHandshake } from "../tests/lib/rfb.js";
import { runVirtctl } from "./testing.js";
import { findViewer, vncSession } from "./vnc.js";

const PATH = "/apis/subresources.kubevirt.io/v1/namespaces/vms/virtualmachineinstances/testvmi/vnc";

/** virt-api's vnc subresource on loopback: each stream is a fake QEMU VNC server; `refuse` answers with a Status. */
async function vncApi(t: TestContext, refuse?: { code: number; message: string }) {
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (p) => (p.has("plain.kubevirt.io") ? "plain.kubevirt.io" : false),
  });
  const seen = { upgrades: 0, protocols: [] as string[] };
  const srv = http.createServer();
  srv.on("upgrade", (req, socket, head) => {
    assert.equal(req.url, PATH);
    seen.upgrades++;
    if (refuse) {
      const body = JSON.stringify({ kind: "Status", status: "Failure", code: refuse.code, message: refuse.message });
      socket.end(`HTTP/1.1 ${refuse.code} X\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      seen.protocols.push(ws.protocol);
      void fakeRfbServer(createWebSocketStream(ws), `QEMU (default_testvmi)`).catch(() => ws.terminate());
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  t.after(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  );
  const cfg = { server: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, namespace: "vms" };
  return { cfg, seen };
}

function io() {
  const o = { out: "", err: "" };
  return { o, io: { out: (s: string) => (o.out += s), err: (s: string) => (o.err += s) } };
}

async function handshakeOn(port: number) {
  const sock = connect(port, "127.0.0.1");
  try {
    return await rfbHandshake(sock, 10_000);
  } finally {
    sock.destroy();
  }
}

describe("virtctl vnc", () => {
  it('--proxy-only prints {"port":N} and relays each TCP client to its own VNC stream', {
    timeout: 30_000,
  }, async (t) => {
    const { cfg, seen } = await vncApi(t);
    const { o, io: out } = io();
    const ac = new AbortController();
    const done = vncSession(
      cfg,
      "vms",
      "testvmi",
      { proxyOnly: true, port: 0, address: "127.0.0.1", signal: ac.signal },
      out,
    );
    t.after(() => ac.abort());
    const deadline = Date.now() + 10_000;
    while (!o.out.includes("\n") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const printed = JSON.parse(o.out.trim()) as { port: number };
    assert.deepEqual(Object.keys(printed), ["port"]);
    assert.ok(printed.port > 0);
    // The stream was opened before the port was printed (a wrong VMI fails first); its banner waits for the client.
    assert.equal(seen.upgrades, 1);
    const a = await handshakeOn(printed.port);
    assert.deepEqual(a, { version: "RFB 003.008\n", width: 640, height: 480, name: "QEMU (default_testvmi)" });
    const b = await handshakeOn(printed.port);
    assert.equal(b.name, "QEMU (default_testvmi)");
    assert.equal(seen.upgrades, 2);
    assert.deepEqual(seen.protocols, ["plain.kubevirt.io", "plain.kubevirt.io"]);
    ac.abort();
    await done;
  });

  it("passes on the server's refusal and listens on nothing", async (t) => {
    const { cfg } = await vncApi(t, { code: 409, message: "VMI is not running" });
    const { o, io: out } = io();
    await assert.rejects(
      vncSession(cfg, "vms", "testvmi", { proxyOnly: true, port: 0, address: "127.0.0.1" }, out),
      /Can't access VMI testvmi: VMI is not running/,
    );
    assert.equal(o.out, "");
  });

  it("without --proxy-only, says so when no VNC viewer is installed", async (t) => {
    const { cfg } = await vncApi(t);
    const empty = await mkdtemp(join(tmpdir(), "virtctl-vnc-"));
    t.after(() => rm(empty, { recursive: true, force: true }));
    const { io: out } = io();
    await assert.rejects(
      vncSession(cfg, "vms", "testvmi", { proxyOnly: false, port: 0, address: "127.0.0.1", path: empty }, out),
      /could not find a VNC viewer \(remote-viewer, vncviewer, xtigervncviewer\) in \$PATH/,
    );
  });

  it("without --proxy-only, runs the viewer found on the path against the loopback port", async (t) => {
    const { cfg } = await vncApi(t);
    const dir = await mkdtemp(join(tmpdir(), "virtctl-vnc-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const viewer = join(dir, "remote-viewer");
    await writeFile(viewer, `#!/bin/sh\nprintf '%s' "$*" > '${join(dir, "args")}'\n`);
    await chmod(viewer, 0o755);
    const { io: out } = io();
    await vncSession(cfg, "vms", "testvmi", { proxyOnly: false, port: 0, address: "0.0.0.0", path: dir }, out);
    assert.match(await readFile(join(dir, "args"), "utf8"), /^vnc:\/\/127\.0\.0\.1:\d+$/);
  });

  it("knows TigerVNC's host::port form", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "virtctl-vnc-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "vncviewer"), "#!/bin/sh\n");
    await chmod(join(dir, "vncviewer"), 0o755);
    assert.deepEqual(await findViewer(`/nonexistent:${dir}`, 5901), {
      bin: join(dir, "vncviewer"),
      args: ["127.0.0.1::5901"],
    });
  });
});

describe("virtctl vnc (command line)", () => {
  it("is a virtctl verb; a bad --port is an error with exit 1", async () => {
    const r = await runVirtctl(["vnc", "testvmi", "--proxy-only", "--port", "70000"]);
    assert.equal(r.code, 1);
    assert.match(r.err, /Error: invalid --port "70000": must be 0\.\.65535/);
    const help = await runVirtctl(["--help"]);
    assert.match(help.out, /vnc \[options\] <vmi>/);
    assert.match(help.out, /reset <vmi>/);
  });
});
