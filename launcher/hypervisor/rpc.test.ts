import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { LibvirtError, Proc, REMOTE_PROGRAM, RemoteConnection } from "./rpc.js";
import { decodeState, encodeState } from "./types.js";
import { XdrReader, XdrWriter } from "./xdr.js";

function packet(prog: number, proc: number, type: number, serial: number, status: number, body: Buffer): Buffer {
  const h = Buffer.alloc(28);
  h.writeUInt32BE(28 + body.length, 0);
  h.writeUInt32BE(prog, 4);
  h.writeUInt32BE(1, 8);
  h.writeInt32BE(proc, 12);
  h.writeInt32BE(type, 16);
  h.writeUInt32BE(serial, 20);
  h.writeInt32BE(status, 24);
  return Buffer.concat([h, body]);
}

/** A tiny stand-in for libvirtd: answers ConnectOpen, fails GetState with an error, sends a keepalive ping. */
async function fakeDaemon(dir: string): Promise<{ sock: string; server: net.Server; pongs: () => number }> {
  const sock = path.join(dir, "libvirt-sock");
  let pongs = 0;
  const server = net.createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= buf.readUInt32BE(0)) {
        const len = buf.readUInt32BE(0);
        const p = buf.subarray(0, len);
        buf = buf.subarray(len);
        const prog = p.readUInt32BE(4);
        const proc = p.readInt32BE(12);
        const serial = p.readUInt32BE(20);
        if (prog !== REMOTE_PROGRAM) {
          pongs++;
          continue;
        }
        if (proc === Proc.ConnectOpen) {
          const args = new XdrReader(Buffer.from(p.subarray(28)));
          assert.equal(args.optString(), "qemu:///system");
          // the reply and the daemon's keepalive ping in one stream, cut mid-packet to exercise reassembly
          const both = Buffer.concat([
            packet(REMOTE_PROGRAM, proc, 1, serial, 0, Buffer.alloc(0)),
            packet(0x6b656570, 1, 2, 0, 0, Buffer.alloc(0)),
          ]);
          c.write(both.subarray(0, 40));
          c.write(both.subarray(40));
        } else if (proc === Proc.DomainGetState) {
          const err = new XdrWriter().int(42).int(10).optString("Domain not found: no domain with matching uuid");
          c.write(packet(REMOTE_PROGRAM, proc, 1, serial, 1, err.toBuffer()));
        } else if (proc === Proc.ConnectGetCapabilities) {
          c.write(packet(REMOTE_PROGRAM, proc, 1, serial, 0, new XdrWriter().string("<capabilities/>").toBuffer()));
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  return { sock, server, pongs: () => pongs };
}

describe("libvirt remote protocol client", () => {
  it("round-trips XDR values", () => {
    const w = new XdrWriter()
      .int(-5)
      .uint(7)
      .string("héllo")
      .optString(undefined)
      .hyper(1n << 40n)
      .bool(true);
    const r = new XdrReader(w.toBuffer());
    assert.equal(r.int(), -5);
    assert.equal(r.uint(), 7);
    assert.equal(r.string(), "héllo");
    assert.equal(r.optString(), undefined);
    assert.equal(r.hyper(), 1n << 40n);
    assert.equal(r.bool(), true);
    assert.equal(r.remaining, 0);
  });

  it("decodes libvirt's (state, reason) numbers with KubeVirt's names", () => {
    assert.deepEqual(decodeState(5, 3), { state: "Shutoff", reason: "Crashed" });
    assert.deepEqual(decodeState(3, 1), { state: "Paused", reason: "User" });
    assert.deepEqual(decodeState(6, 1), { state: "Crashed", reason: "Panicked" });
    assert.deepEqual(encodeState({ state: "Shutoff", reason: "Shutdown" }), [5, 1]);
  });

  it("opens, matches replies by serial, answers keepalives and surfaces libvirt errors", async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), "tsvirt-rpc-"));
    const d = await fakeDaemon(dir);
    t.after(async () => {
      d.server.close();
      await rm(dir, { recursive: true, force: true });
    });
    const conn = await RemoteConnection.open(d.sock);
    const [caps, err] = await Promise.allSettled([
      conn.call(Proc.ConnectGetCapabilities),
      conn.call(Proc.DomainGetState, new XdrWriter().string("x")),
    ]);
    assert.equal(caps.status === "fulfilled" && caps.value.string(), "<capabilities/>");
    assert.ok(err.status === "rejected" && err.reason instanceof LibvirtError);
    assert.equal((err as PromiseRejectedResult).reason.code, 42);
    assert.match((err as PromiseRejectedResult).reason.message, /Domain not found/);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(d.pongs(), 1);
    await conn.close();
  });
});
