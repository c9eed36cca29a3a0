// pods/log, served as kube-apiserver serves it: by proxying to the agent of the node the pod is bound to.
//
// Convention (see apiserver/README.md): a node agent publishes its endpoint in its Node object as
// status.daemonEndpoints.kubeletEndpoint.Port plus the first status.addresses entry of type InternalIP (else
// Hostname), and serves plain HTTP there, kubelet-style:
//   GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&sinceSeconds=&timestamps=&previous=
// `proxyToNode` is generic so console and VNC streams can reuse it later.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { UnstructuredObject as KObj } from "../../api/index.js";
import { badRequest, notFound, statusError } from "../../lib/errors.js";
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

/** Streams GET `path` on a node's agent back to the client. */
export function proxyToNode(
  rest: Rest,
  nodeName: string,
  path: string,
  req: IncomingMessage,
  res: ServerResponse,
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
      { host: ep.host, port: ep.port, path, method: "GET", headers: { accept: req.headers.accept ?? "*/*" } },
      (ur) => {
        const code = ur.statusCode ?? 502;
        if (code >= 400) {
          const chunks: Buffer[] = [];
          ur.on("data", (c: Buffer) => chunks.length < 64 && chunks.push(c));
          ur.on("end", () => {
            const msg = Buffer.concat(chunks).toString("utf8").slice(0, 2000) || `node agent answered ${code}`;
            const s = statusError(
              code === 404 ? 404 : code < 500 ? 400 : 503,
              code === 404 ? "NotFound" : code < 500 ? "BadRequest" : "ServiceUnavailable",
              msg,
            ).status;
            if (!res.headersSent) res.writeHead(s.code, { "Content-Type": "application/json" });
            res.end(JSON.stringify(s));
            resolve();
          });
          return;
        }
        res.writeHead(200, {
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
    up.end();
  });
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
