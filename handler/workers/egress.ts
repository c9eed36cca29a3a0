// The node agent's egress for one worker pod, letting through only the host:ports of the pod's job. The worker runs
// in its pod's network namespace; the agent (in the node's) dials for it, so loopback registries and servers are
// reachable and nothing else is. Two ways (storage/importer/egress.ts is the worker's side):
// - the worker's IPC channel (serveEgressChannel): the agent dials and hands the connected socket over, out of the
//   data path;
// - an HTTP CONNECT proxy on the unix socket <pod dir>/sockets/egress.sock (serveEgress), relaying the bytes: for a
//   worker whose channel is gone (the agent restarted since it started).
import type { ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import net from "node:net";
import {
  EGRESS_CONNECT,
  EGRESS_CONNECTED,
  EGRESS_REFUSED,
  type EgressReply,
  type EgressRequest,
  hostPort,
} from "../../storage/importer/index.js";

/** Pure: the CONNECT target of a request head, normalised as the allow-list spells it, or why it is refused. */
export function connectTarget(
  head: string,
): { ok: true; target: string; host: string; port: number } | { ok: false; why: string } {
  const line = head.slice(0, head.indexOf("\r\n") >= 0 ? head.indexOf("\r\n") : head.length);
  const m = /^CONNECT (\S+) HTTP\/1\.[01]$/.exec(line);
  if (!m) return { ok: false, why: "only CONNECT is served" };
  const hp = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(m[1] ?? "");
  if (!hp) return { ok: false, why: "bad CONNECT target" };
  const host = (hp[1] ?? hp[2] ?? "").toLowerCase();
  const port = Number(hp[3]);
  if (!(port > 0 && port < 65536)) return { ok: false, why: "bad port" };
  return { ok: true, target: hostPort(host, port), host, port };
}

/**
 * Answers the worker's connect requests on its IPC channel: an allowed host:port is dialled here and the connected
 * socket handed to the worker (this process keeps no copy); anything else is refused. Ends with the channel.
 */
export function serveEgressChannel(
  child: ChildProcess,
  allow: readonly string[],
  log?: (msg: string, f: Record<string, unknown>) => void,
): void {
  const allowed = new Set(allow.map((a) => a.toLowerCase()));
  child.channel?.unref(); // the agent's event loop does not wait for a worker
  const reply = (r: EgressReply, socket?: net.Socket): void => {
    if (!child.connected) return void socket?.destroy();
    child.send(r, socket, { keepOpen: false }, (err) => {
      if (err) socket?.destroy();
    });
  };
  child.on("message", (m: unknown) => {
    const req = m as EgressRequest;
    if (req?.type !== EGRESS_CONNECT || typeof req.id !== "number" || typeof req.target !== "string") return;
    const t = connectTarget(`CONNECT ${req.target} HTTP/1.1`);
    if (!t.ok) return reply({ type: EGRESS_REFUSED, id: req.id, why: t.why });
    if (!allowed.has(t.target)) {
      log?.("egress refused", { target: t.target });
      return reply({ type: EGRESS_REFUSED, id: req.id, why: `403 Forbidden (${t.target} is not in the job)` });
    }
    const up = net.connect({ host: t.host, port: t.port });
    let connected = false;
    up.once("connect", () => {
      connected = true;
      up.pause();
      reply({ type: EGRESS_CONNECTED, id: req.id }, up);
    });
    up.on("error", (e: NodeJS.ErrnoException) => {
      if (connected) return void up.destroy();
      reply({ type: EGRESS_REFUSED, id: req.id, why: `502 Bad Gateway (${e.code ?? e.message})` });
    });
  });
}

export interface EgressProxy {
  socket: string;
  close(): Promise<void>;
}

/** Serves the proxy on `socket` (a stale socket file is replaced), allowing exactly `allow` ("host:port"). */
export async function serveEgress(
  socket: string,
  allow: readonly string[],
  log?: (msg: string, f: Record<string, unknown>) => void,
): Promise<EgressProxy> {
  const allowed = new Set(allow.map((a) => a.toLowerCase()));
  const conns = new Set<net.Socket>();
  const server = net.createServer((c) => {
    conns.add(c);
    c.on("close", () => conns.delete(c));
    c.on("error", () => c.destroy());
    let head = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > 8192) c.end("HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n");
        return;
      }
      c.off("data", onData);
      c.pause();
      const t = connectTarget(head.toString("latin1", 0, end));
      if (!t.ok) return void c.end(`HTTP/1.1 405 Method Not Allowed\r\n\r\n`);
      if (!allowed.has(t.target)) {
        log?.("egress refused", { target: t.target });
        return void c.end(`HTTP/1.1 403 Forbidden (${t.target} is not in the job)\r\n\r\n`);
      }
      const up = net.connect({ host: t.host, port: t.port });
      conns.add(up);
      up.on("close", () => conns.delete(up));
      let connected = false;
      up.once("connect", () => {
        connected = true;
        c.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        const rest = head.subarray(end + 4);
        if (rest.length) up.write(rest);
        c.pipe(up);
        up.pipe(c);
        c.resume();
      });
      up.on("error", (e) => {
        if (connected) c.destroy();
        else c.end(`HTTP/1.1 502 Bad Gateway (${(e as NodeJS.ErrnoException).code ?? e.message})\r\n\r\n`);
      });
      c.on("close", () => up.destroy());
      // A clean end upstream ends the client through the pipe once what is buffered for it is written; destroying it
      // here cut the last bytes of a response off (an import seen "broken off" just short of its end).
      up.on("close", (hadError) => {
        if (connected && hadError) c.destroy();
      });
    };
    c.on("data", onData);
  });
  await rm(socket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    socket,
    async close() {
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(socket, { force: true });
    },
  };
}
