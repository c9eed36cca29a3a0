// virtctl vnc VMI [--proxy-only] [--port N] [--address A]: a local TCP listener whose clients are relayed to the VMI's
// VNC stream (WebSocket GET .../virtualmachineinstances/VMI/vnc, subprotocol plain.kubevirt.io). With --proxy-only it
// prints KubeVirt's `{"port":N}` and relays every client until interrupted (each client gets its own stream, as a
// VNC handshake cannot be shared); otherwise it listens on loopback and runs a VNC viewer found in $PATH
// (remote-viewer, then TigerVNC's vncviewer) against it, and ends when the viewer does.
import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { delimiter, join } from "node:path";
import type { Command } from "commander";
import type WebSocket from "ws";
import type { ClientConfig } from "../client/index.js";
import { dialStream, PING_INTERVAL_MS, streamUrl } from "./console.js";
import { type Io, runVerb, type VerbContext } from "./context.js";

export interface VncOptions {
  proxyOnly: boolean;
  /** 0: any free port. */
  port: number;
  /** Listen address with --proxy-only (a viewer is always given loopback). */
  address: string;
  /** Search path for a viewer (default $PATH). */
  path?: string;
  /** Ends a --proxy-only session (default: SIGINT/SIGTERM). */
  signal?: AbortSignal;
}

export interface Viewer {
  bin: string;
  args: string[];
}

/** The viewers virtctl knows, in the order it tries them, with the arguments each takes for host:port. */
const VIEWERS: { name: string; args: (port: number) => string[] }[] = [
  { name: "remote-viewer", args: (port) => [`vnc://127.0.0.1:${port}`] },
  // TigerVNC: `host::port` is a port (a single colon would be a display number below 100).
  { name: "vncviewer", args: (port) => [`127.0.0.1::${port}`] },
  { name: "xtigervncviewer", args: (port) => [`127.0.0.1::${port}`] },
];

/** The first known VNC viewer on the search path, with its arguments for a local port. */
export async function findViewer(searchPath: string, port: number): Promise<Viewer | undefined> {
  for (const v of VIEWERS) {
    for (const dir of searchPath.split(delimiter)) {
      if (dir === "") continue;
      const bin = join(dir, v.name);
      const ok = await access(bin, constants.X_OK).then(
        () => true,
        () => false,
      );
      if (ok) return { bin, args: v.args(port) };
    }
  }
  return undefined;
}

/**
 * A stream opened ahead of its TCP client (so a wrong name or a stopped VMI is reported before anything listens):
 * what the server sends before the client arrives (QEMU's RFB banner) is kept for it.
 */
class PendingStream {
  private readonly queued: Buffer[] = [];
  private target: Socket | undefined;
  closed = false;
  readonly ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("close", () => {
      this.closed = true;
      this.target?.end();
    });
    ws.on("error", () => {
      this.closed = true;
      this.target?.destroy();
    });
  }

  /** Opens a stream; its first bytes are kept from the moment the upgrade is answered. */
  static async dial(cfg: ClientConfig, url: string): Promise<PendingStream> {
    let self: PendingStream | undefined;
    const early: Buffer[] = [];
    const ws = await dialStream(cfg, url, (b) => {
      if (!self) early.push(b);
      else if (self.target) self.target.write(b);
      else self.queued.push(b);
    });
    self = new PendingStream(ws);
    self.queued.push(...early);
    return self;
  }

  /** Relays the client both ways until either end closes. */
  attach(tcp: Socket): void {
    this.target = tcp;
    for (const b of this.queued.splice(0)) tcp.write(b);
    const ws = this.ws;
    const ping = setInterval(() => {
      if (ws.readyState === ws.OPEN) ws.ping();
    }, PING_INTERVAL_MS);
    tcp.on("data", (d: Buffer) => {
      if (ws.readyState === ws.OPEN) ws.send(d);
    });
    const end = (): void => {
      clearInterval(ping);
      tcp.destroy();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1000);
    };
    tcp.on("close", end);
    tcp.on("error", end);
    ws.on("close", end);
    if (this.closed) end();
  }
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const a = server.address();
      resolve(typeof a === "object" && a ? a.port : port);
    });
  });
}

/** Runs one `virtctl vnc` session to its end. */
export async function vncSession(cfg: ClientConfig, ns: string, name: string, o: VncOptions, io: Io): Promise<void> {
  const url = streamUrl(cfg, ns, name, "vnc");
  let first: PendingStream | undefined;
  try {
    first = await PendingStream.dial(cfg, url);
  } catch (err) {
    throw new Error(`Can't access VMI ${name}: ${(err as Error).message}`);
  }
  const server = createServer();
  const streams = new Set<PendingStream>([first]);
  const closeAll = (): void => {
    server.close();
    for (const s of streams) s.ws.terminate();
  };
  try {
    const port = await listen(server, o.port, o.proxyOnly ? o.address : "127.0.0.1");
    let viewer: Viewer | undefined;
    if (!o.proxyOnly) {
      viewer = await findViewer(o.path ?? process.env.PATH ?? "", port);
      if (!viewer) {
        throw new Error(
          `could not find a VNC viewer (${VIEWERS.map((v) => v.name).join(", ")}) in $PATH; ` +
            "install one, or run with --proxy-only and point any VNC client at the printed port",
        );
      }
    }
    server.on("connection", (tcp: Socket) => {
      const take = first && !first.closed ? first : undefined;
      first = undefined;
      if (take) return take.attach(tcp);
      tcp.pause();
      PendingStream.dial(cfg, url).then(
        (s) => {
          streams.add(s);
          s.ws.once("close", () => streams.delete(s));
          s.attach(tcp);
          tcp.resume();
        },
        (err: unknown) => {
          io.err(`Can't access VMI ${name}: ${(err as Error).message}\n`);
          tcp.destroy();
        },
      );
    });
    if (viewer) {
      const v = viewer;
      if (!o.proxyOnly) server.maxConnections = 1;
      await new Promise<void>((resolve, reject) => {
        const child = spawn(v.bin, v.args, { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (d: Buffer) => {
          stderr = (stderr + d.toString()).slice(-4000);
        });
        child.once("error", reject);
        child.once("exit", (code, sig) =>
          code === 0 || sig === "SIGINT" || sig === "SIGTERM"
            ? resolve()
            : reject(new Error(`${v.bin} exited with ${code ?? sig}: ${stderr.trim()}`)),
        );
      });
      return;
    }
    io.out(`${JSON.stringify({ port })}\n`);
    await new Promise<void>((resolve) => {
      const done = (): void => {
        process.off("SIGINT", done);
        process.off("SIGTERM", done);
        o.signal?.removeEventListener("abort", done);
        resolve();
      };
      if (o.signal) {
        if (o.signal.aborted) return done();
        o.signal.addEventListener("abort", done);
      } else {
        process.once("SIGINT", done);
        process.once("SIGTERM", done);
      }
    });
  } finally {
    closeAll();
  }
}

export function parsePort(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`invalid --port "${v}": must be 0..65535`);
  return n;
}

export function registerVnc(program: Command, ctx: VerbContext): void {
  program
    .command("vnc")
    .argument("<vmi>", "the VirtualMachineInstance")
    .description("Open a vnc connection to a virtual machine instance.")
    .option("--proxy-only", "only start a proxy and print its port as JSON; connect any VNC client to it", false)
    .option("--port <port>", "local port to listen on (0: any free port)", "0")
    .option("--address <address>", "address the --proxy-only listener binds", "127.0.0.1")
    .action(async (name: string, f: { proxyOnly: boolean; port: string; address: string }, cmd: Command) =>
      runVerb(ctx, cmd, (s) =>
        vncSession(
          s.config,
          s.namespace,
          name,
          { proxyOnly: f.proxyOnly, port: parsePort(f.port), address: f.address },
          ctx.io,
        ),
      ),
    );
}
