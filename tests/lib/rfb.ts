// The RFB (VNC) handshake, version 3.8 with security type None, up to ServerInit: a client for tests against real
// QEMU, and a fake server for unit tests. RFC 6143 §7.1-7.3.
import type { Duplex } from "node:stream";

export interface ServerInit {
  /** The server's ProtocolVersion line, e.g. "RFB 003.008\n". */
  version: string;
  width: number;
  height: number;
  name: string;
}

/** Reads exact byte counts from a stream (bounded by a deadline). */
class Reader {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private ended: Error | undefined;

  constructor(
    s: Duplex,
    private readonly deadline: number,
  ) {
    s.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    s.on("close", () => {
      this.ended = new Error("the stream closed during the RFB handshake");
      this.wake?.();
    });
    s.on("error", (e) => {
      this.ended = e;
      this.wake?.();
    });
  }

  async take(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (this.ended) throw this.ended;
      const left = this.deadline - Date.now();
      if (left <= 0) throw new Error(`RFB handshake timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

/** Speaks the client side of the handshake on `s` (security None) and returns what ServerInit said. */
export async function rfbHandshake(s: Duplex, timeoutMs = 30_000): Promise<ServerInit> {
  const r = new Reader(s, Date.now() + timeoutMs);
  const version = (await r.take(12)).toString("latin1");
  if (!/^RFB \d{3}\.\d{3}\n$/.test(version)) throw new Error(`not an RFB greeting: ${JSON.stringify(version)}`);
  s.write("RFB 003.008\n");
  const count = (await r.take(1)).readUInt8(0);
  if (count === 0) {
    const len = (await r.take(4)).readUInt32BE(0);
    throw new Error(`server refused: ${(await r.take(len)).toString()}`);
  }
  const types = [...(await r.take(count))];
  if (!types.includes(1)) throw new Error(`server offers no security type None: ${types.join(",")}`);
  s.write(Buffer.from([1]));
  const result = (await r.take(4)).readUInt32BE(0);
  if (result !== 0) {
    const len = (await r.take(4)).readUInt32BE(0);
    throw new Error(`security handshake failed: ${(await r.take(len)).toString()}`);
  }
  s.write(Buffer.from([1])); // ClientInit: shared
  const init = await r.take(24);
  const width = init.readUInt16BE(0);
  const height = init.readUInt16BE(2);
  const nameLen = init.readUInt32BE(20);
  const name = (await r.take(nameLen)).toString("utf8");
  return { version, width, height, name };
}

/** Serves the server side of the handshake on `s` (a fake QEMU): 640x480, the given desktop name. */
export async function fakeRfbServer(s: Duplex, name: string, timeoutMs = 30_000): Promise<void> {
  const r = new Reader(s, Date.now() + timeoutMs);
  s.write("RFB 003.008\n");
  await r.take(12);
  s.write(Buffer.from([1, 1])); // one security type: None
  await r.take(1);
  s.write(Buffer.from([0, 0, 0, 0])); // SecurityResult OK
  await r.take(1); // ClientInit
  const head = Buffer.alloc(24);
  head.writeUInt16BE(640, 0);
  head.writeUInt16BE(480, 2);
  // pixel format: 32 bpp, depth 24, little endian, true colour, max 255, shifts 16/8/0
  Buffer.from([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]).copy(head, 4);
  const n = Buffer.from(name, "utf8");
  head.writeUInt32BE(n.length, 20);
  s.write(Buffer.concat([head, n]));
}
