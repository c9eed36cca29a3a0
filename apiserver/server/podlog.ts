// pods/log, served as kube-apiserver serves it: by proxying to the agent of the node the pod is bound to.
//
// Convention (see apiserver/README.md): a node agent publishes its endpoint in its Node object as
// status.daemonEndpoints.kubeletEndpoint.Port plus the first status.addresses entry of type InternalIP (else
// Hostname), and serves plain HTTP there, kubelet-style:
//   GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&sinceSeconds=&timestamps=&previous=
// `proxyToNode` is generic so console and VNC streams can reuse it later.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { UnstructuredObject as KObj } from "../../api/index.js";
import { badRequest, notFound, type Status, statusError } from "../../lib/errors.js";
import { field, rec } from "../../lib/json.js";
import type { Rest } from "./rest.js";

export interface NodeEndpoint {
  host: string;
  port: number;
}

export function nodeEndpoint(node: KObj): NodeEndpoint | undefined {
  const port = field(node, "status.daemonEndpoints.kubeletEndpoint.Port");
  const addrs = field(node, "status.addresses");
  if (typeof port !== "number" || !Number.isInteger(port) || port <= 0 || port > 65535 || !Array.isArray(addrs))
    return undefined;
  const pick = (t: string): string | undefined => {
    const a = addrs.find((x) => rec(x).type === t);
    const v = a ? rec(a).address : undefined;
    return typeof v === "string" && v ? v : undefined;
  };
  const host = pick("InternalIP") ?? pick("Hostname");
  return host ? { host, port } : undefined;
}

/** What a proxied request sends besides GET: a body streamed from the client (uploads), with backpressure. */
export interface ProxyBody {
  method: "POST" | "PUT";
  /** extra request headers (content-type, content-length of the client's body) */
  headers: Record<string, string>;
}

/**
 * Streams `path` on a node's agent back to the client: GET, or with `body` the client's request body piped
 * through (never buffered). A Status the agent answers with passes through as it is.
 */
export function proxyToNode(
  rest: Rest,
  nodeName: string,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
  body?: ProxyBody,
): Promise<void> {
  const node = rest.store.get("/nodes", "", nodeName) as KObj | undefined;
  if (!node) throw notFound({ group: "", resource: "nodes" }, nodeName);
  const ep = nodeEndpoint(node);
  if (!ep)
    throw statusError(
      503,
      "ServiceUnavailable",
      `node "${nodeName}" publishes no agent endpoint (status.daemonEndpoints.kubeletEndpoint.Port and status.addresses)`,
    );
  return new Promise<void>((resolve) => {
    const up = http.request(
      {
        host: ep.host,
        port: ep.port,
        path,
        method: body?.method ?? "GET",
        headers: { accept: req.headers.accept ?? "*/*", ...body?.headers },
      },
      (ur) => {
        const code = ur.statusCode ?? 502;
        if (code >= 400) {
          const chunks: Buffer[] = [];
          ur.on("data", (c: Buffer) => chunks.length < 64 && chunks.push(c));
          ur.on("end", () => {
            const msg = Buffer.concat(chunks).toString("utf8").slice(0, 2000) || `node agent answered ${code}`;
            const passed = asStatus(msg);
            const s =
              passed ??
              statusError(
                code === 404 ? 404 : code < 500 ? 400 : 503,
                code === 404 ? "NotFound" : code < 500 ? "BadRequest" : "ServiceUnavailable",
                msg,
              ).status;
            if (!res.headersSent) res.writeHead(s.code, { "Content-Type": "application/json" });
            res.end(JSON.stringify(s));
            // a refusal before the client's body ended: the rest is drained, not sent on
            if (body && !req.complete) {
              req.unpipe(up);
              req.resume();
            }
            resolve();
          });
          return;
        }
        res.writeHead(code, {
          "Content-Type": ur.headers["content-type"] ?? "text/plain",
          "Transfer-Encoding": "chunked",
        });
        ur.pipe(res);
        ur.on("end", resolve);
        ur.on("error", () => {
          res.end();
          resolve();
        });
      },
    );
    up.on("error", (e) => {
      const s = statusError(
        503,
        "ServiceUnavailable",
        `error dialing node agent of "${nodeName}": ${e.message}`,
      ).status;
      if (!res.headersSent) {
        res.writeHead(503, { "Content-Type": "application/json" });
        res.end(JSON.stringify(s));
      } else res.end();
      resolve();
    });
    const abort = (): void => {
      up.destroy();
      resolve();
    };
    res.on("close", abort);
    if (!body) {
      up.end();
      return;
    }
    // the client's bytes flow at the pace the node takes them (pipe pauses the client when the agent is slow)
    req.pipe(up);
    req.on("error", () => up.destroy());
  });
}

function asStatus(text: string): Status | undefined {
  try {
    const o = JSON.parse(text) as Partial<Status>;
    if (
      o?.kind === "Status" &&
      typeof o.code === "number" &&
      o.code >= 400 &&
      o.code < 600 &&
      typeof o.message === "string"
    )
      return o as Status;
  } catch {
    // not JSON: wrapped below
  }
  return undefined;
}

export async function proxyPodLog(
  rest: Rest,
  ns: string,
  name: string,
  q: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const r = rest.registry.byKey("/pods");
  if (!r) throw notFound({ group: "", resource: "pods" }, name);
  const pod = rest.getObject(r, ns, name);
  const containers = (
    Array.isArray(field(pod, "spec.containers")) ? (field(pod, "spec.containers") as unknown[]) : []
  ).map((c) => String(rec(c).name ?? ""));
  let container = q.get("container") ?? "";
  if (!container) {
    if (containers.length !== 1) {
      throw badRequest(`a container name must be specified for pod ${name}, choose one of: [${containers.join(" ")}]`);
    }
    container = containers[0] ?? "";
  } else if (!containers.includes(container)) {
    throw badRequest(`container ${container} is not valid for pod ${name}`);
  }
  const nodeName = field(pod, "spec.nodeName");
  if (typeof nodeName !== "string" || !nodeName) throw badRequest(`pod ${name} is not yet scheduled to a node`);
  const params = new URLSearchParams();
  for (const k of ["follow", "tailLines", "sinceSeconds", "sinceTime", "timestamps", "previous", "limitBytes"]) {
    const v = q.get(k);
    if (v === null) continue;
    if (k !== "sinceTime" && !/^(true|false|\d+)$/.test(v))
      throw badRequest(`${k}: Invalid value: "${v.slice(0, 40)}"`);
    params.set(k, v);
  }
  const qs = params.toString();
  const path = `/containerLogs/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/${encodeURIComponent(container)}${qs ? `?${qs}` : ""}`;
  await proxyToNode(rest, nodeName, path, req, res);
}
