// The serial console. QEMU binds one unix socket per serial port and serves a single client, so the launcher owns
// that connection and offers its own socket (<pod dir>/sockets/console.sock) to any number of clients: each gets
// the recent output replayed, then live output; their keystrokes go to the guest. Output is also appended to a
// bounded log file (rotated once at `logMaxBytes`).
import { createWriteStream, existsSync, type WriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import net from "node:net";
import type { Logger } from "../lib/log.js";
import { nullLogger } from "../lib/log.js";

export interface ConsoleOptions {
  /** QEMU's serial socket. */
  serialSocket: string;
  /** The socket clients connect to. */
  listenPath: string;
  logFile: string;
  replayBytes?: number;
  logMaxBytes?: number;
  log?: Logger;
}

export class ConsoleProxy {
  private readonly replayMax: number;
  private readonly logMax: number;
  private replay: Buffer[] = [];
  private replaySize = 0;
  private qemu: net.Socket | undefined;
  private readonly clients = new Set<net.Socket>();
  private server: net.Server | undefined;
  private logStream: WriteStream | undefined;
  private logSize = 0;
  private rotating = false;
  private readonly log: Logger;
  private closed = false;
  private generation = 0;

  constructor(private readonly opts: ConsoleOptions) {
    this.replayMax = opts.replayBytes ?? 64 * 1024;
    this.logMax = opts.logMaxBytes ?? 1024 * 1024;
    this.log = opts.log ?? nullLogger;
  }

  async listen(): Promise<void> {
    await rm(this.opts.listenPath, { force: true });
    if (existsSync(this.opts.logFile)) this.logSize = (await stat(this.opts.logFile)).size;
    this.logStream = createWriteStream(this.opts.logFile, { flags: "a" });
    const server = net.createServer((c) => this.onClient(c));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.listenPath, () => {
        server.off("error", reject);
        resolve();
      });
    });
  }

  /** (Re)connect to QEMU's socket: called after each domain start. Retries until the socket accepts. */
  async attach(timeoutMs = 30_000): Promise<void> {
    const gen = ++this.generation;
    this.qemu?.destroy();
    this.qemu = undefined;
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && gen === this.generation) {
      try {
        const s = await new Promise<net.Socket>((resolve, reject) => {
          const c = net.createConnection(this.opts.serialSocket);
          c.once("connect", () => {
            c.off("error", reject);
            resolve(c);
          });
          c.once("error", reject);
        });
        if (gen !== this.generation || this.closed) {
          s.destroy();
          return;
        }
        this.qemu = s;
        let first = true;
        s.on("data", (d: Buffer) => {
          if (first) this.log.info("guest output", { bytes: d.length }); // the guest's first byte since this start
          first = false;
          this.onOutput(d);
        });
        s.on("error", () => {});
        s.on("close", () => {
          if (this.qemu === s) this.qemu = undefined;
        });
        this.log.info("serial console attached", { socket: this.opts.serialSocket });
        return;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`serial console socket did not accept: ${String(e)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  get attached(): boolean {
    return this.qemu !== undefined;
  }

  private onOutput(d: Buffer): void {
    this.replay.push(d);
    this.replaySize += d.length;
    while (this.replaySize - (this.replay[0]?.length ?? 0) >= this.replayMax && this.replay.length > 1) {
      this.replaySize -= this.replay.shift()?.length ?? 0;
    }
    for (const c of this.clients) c.write(d);
    this.writeLog(d);
  }

  private writeLog(d: Buffer): void {
    if (!this.logStream) return;
    this.logStream.write(d);
    this.logSize += d.length;
    if (this.logSize >= this.logMax && !this.rotating) {
      this.rotating = true;
      const old = this.logStream;
      old.end(() => {
        rename(this.opts.logFile, `${this.opts.logFile}.1`)
          .catch(() => {})
          .finally(() => {
            this.logSize = 0;
            this.logStream = this.closed ? undefined : createWriteStream(this.opts.logFile, { flags: "a" });
            this.rotating = false;
          });
      });
      this.logStream = undefined;
    }
  }

  private onClient(c: net.Socket): void {
    this.clients.add(c);
    const tail = Buffer.concat(this.replay);
    c.write(tail.length > this.replayMax ? tail.subarray(tail.length - this.replayMax) : tail);
    c.on("data", (d: Buffer) => this.qemu?.write(d));
    c.on("error", () => {});
    c.on("close", () => this.clients.delete(c));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.qemu?.destroy();
    for (const c of this.clients) c.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await new Promise<void>((r) => (this.logStream ? this.logStream.end(() => r()) : r()));
  }
}
