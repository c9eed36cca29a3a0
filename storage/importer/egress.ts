// The worker's side of the node agent's egress: connection agents whose every TCP connection the agent opens for it.
// The worker runs in its pod's network namespace, where the node's loopback registries and servers are not
// reachable; the agent lets through only the host:ports of the job. Two ways, the first one preferred:
// - the agent's IPC channel (the worker's fd 3, given at spawn): the agent dials in the node's namespace and hands
//   the connected socket itself over (SCM_RIGHTS), so the bytes flow registry → worker with no hop (the proxy's
//   copy through the agent cost as much CPU as the worker's own hashing and decompressing);
// - an HTTP CONNECT tunnel through the pod's unix socket (<pod dir>/sockets/egress.sock), relayed by the agent: when
//   there is no channel (an agent restarted since the worker started serves only the socket).
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";

/** "host:port" as the proxy's allow-list spells it (IPv6 in brackets, lower case). */
export function hostPort(host: string, port: number | string): string {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return `${h.includes(":") ? `[${h}]` : h}:${port}`;
}

/** The host:port a URL connects to (default ports filled in). */
export function urlHostPort(u: URL): string {
  return hostPort(u.hostname, u.port || (u.protocol === "https:" ? 443 : 80));
}

/** The IPC messages of the channel handoff (worker → agent: connect; agent → worker: connected + the socket, or refused). */
export const EGRESS_CONNECT = "tsvirt.egress.connect";
export const EGRESS_CONNECTED = "tsvirt.egress.connected";
export const EGRESS_REFUSED = "tsvirt.egress.refused";
export type EgressRequest = { type: typeof EGRESS_CONNECT; id: number; target: string };
export type EgressReply =
  | { type: typeof EGRESS_CONNECTED; id: number }
  | { type: typeof EGRESS_REFUSED; id: number; why: string };

let nextId = 1;

/** Why a channel request got no socket: the channel is gone or silent (then the proxy socket is tried). */
class ChannelGone extends Error {}

/**
 * A connection to `target` dialled by the agent and handed over on this process's IPC channel, or undefined when
 * the process has no (connected) channel. Rejects with the agent's refusal, or ChannelGone.
 */
export function channelConnect(target: string, timeoutMs = 10_000): Promise<net.Socket> | undefined {
  if (!process.channel || !process.send || !process.connected) return undefined;
  const id = nextId++;
  return new Promise<net.Socket>((resolve, reject) => {
    // (a "message" listener holds the channel ref'd: the worker waits for the answer, and not longer)
    const done = (): void => {
      clearTimeout(timer);
      process.off("message", onMessage);
      process.off("disconnect", onGone);
    };
    const timer = setTimeout(() => {
      done();
      reject(new ChannelGone(`egress channel: no answer for ${target}`));
    }, timeoutMs);
    const onGone = (): void => {
      done();
      reject(new ChannelGone(`egress channel closed asking for ${target}`));
    };
    const onMessage = (m: unknown, handle: unknown): void => {
      const r = m as EgressReply;
      if (r?.id !== id || (r.type !== EGRESS_CONNECTED && r.type !== EGRESS_REFUSED)) return;
      done();
      if (r.type === EGRESS_REFUSED) {
        reject(Object.assign(new Error(`egress refused ${target}: ${r.why}`), { code: "ECONNREFUSED" }));
      } else if (handle instanceof net.Socket) resolve(handle);
      else reject(new ChannelGone(`egress channel: no socket for ${target}`));
    };
    process.on("message", onMessage);
    process.once("disconnect", onGone);
    const req: EgressRequest = { type: EGRESS_CONNECT, id, target };
    process.send?.(req, undefined, {}, (err: Error | null) => {
      if (err) onGone();
    });
  });
}

/**
 * A TCP connection to host:port opened by the agent: handed over on the IPC channel when there is one, else (or when
 * the channel is gone) a tunnel through the proxy socket. Rejects with the agent's refusal.
 */
export async function tunnel(socketPath: string, target: string, timeoutMs = 10_000): Promise<net.Socket> {
  const viaChannel = channelConnect(target, timeoutMs);
  if (viaChannel) {
    try {
      return await viaChannel;
    } catch (e) {
      if (!(e instanceof ChannelGone)) throw e;
    }
  }
  return proxyTunnel(socketPath, target, timeoutMs);
}

/** Opens a tunnel to host:port through the proxy socket; rejects with the proxy's refusal. */
export function proxyTunnel(socketPath: string, target: string, timeoutMs = 10_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`egress proxy: no answer for CONNECT ${target}`)), timeoutMs);
    const fail = (e: Error): void => {
      clearTimeout(timer);
      s.destroy();
      reject(Object.assign(e, { code: (e as NodeJS.ErrnoException).code ?? "ECONNREFUSED" }));
    };
    s.once("error", fail);
    s.once("connect", () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    const onData = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > 8192) fail(new Error("egress proxy: bad answer"));
        return;
      }
      s.off("data", onData);
      clearTimeout(timer);
      const status = head.toString("latin1", 0, head.indexOf("\r\n"));
      if (!/^HTTP\/1\.[01] 200 /.test(status)) {
        fail(new Error(`egress proxy refused ${target}: ${status.replace(/^HTTP\/1\.[01] /, "")}`));
        return;
      }
      s.off("error", fail);
      const rest = head.subarray(end + 4);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    s.on("data", onData);
  });
}

type CreateConnection = (o: Record<string, unknown>, cb: (err: Error | null, s?: Duplex) => void) => undefined;

/** A connection agent whose sockets are tunnels through the egress proxy (TLS on top for https). */
export function egressAgent(socketPath: string, scheme: "http:" | "https:", opts: https.AgentOptions = {}): http.Agent {
  const agent = scheme === "https:" ? new https.Agent(opts) : new http.Agent(opts);
  const create: CreateConnection = (o, done) => {
    let called = false;
    const cb = (err: Error | null, s?: Duplex): void => {
      if (called) return; // (a TLS error after the handshake surfaces on the socket, not here)
      called = true;
      done(err, s);
    };
    const host = String(o["host"] ?? o["hostname"] ?? "localhost");
    const port = Number(o["port"] ?? (scheme === "https:" ? 443 : 80));
    tunnel(socketPath, hostPort(host, port)).then(
      (raw) => {
        if (scheme === "http:") return cb(null, raw);
        const servername = (o["servername"] as string | undefined) ?? (net.isIP(host) ? undefined : host);
        const t = tls.connect({ ...(o as tls.ConnectionOptions), socket: raw, ...(servername ? { servername } : {}) });
        t.once("secureConnect", () => cb(null, t));
        t.once("error", (e) => cb(e));
      },
      (e: Error) => cb(e),
    );
    return undefined;
  };
  (agent as unknown as { createConnection: CreateConnection }).createConnection = create;
  return agent;
}
