// The worker's side of the node agent's egress proxy: connection agents that open every TCP connection as an HTTP
// CONNECT tunnel through the pod's unix socket (<pod dir>/sockets/egress.sock). The worker runs in its pod's network
// namespace, where the node's loopback registries and servers are not reachable; the agent lets through only the
// host:ports of the job.
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

/** Opens a tunnel to host:port through the proxy socket; rejects with the proxy's refusal. */
export function tunnel(socketPath: string, target: string, timeoutMs = 10_000): Promise<net.Socket> {
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
