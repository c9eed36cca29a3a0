// virt-api's subresources (subresources.kubevirt.io): start/stop/restart/migrate on VMs; pause/unpause/softreboot/reset
// (proxied to the VMI's node agent), console/vnc (WebSocket streams proxied to the node agent) and guestosinfo on VMIs.
// These handlers use only the typed client, never the store, so the same code serves as an aggregated API on a cluster.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Client, JsonPatchOp, VirtualMachine, VirtualMachineInstance } from "../../client/index.js";
import { resources } from "../../client/index.js";
import { planRestart, planStart, planStop } from "../../controller/index.js";
import {
  badRequest,
  conflict,
  isNotFound,
  isStatusError,
  notFound,
  type Status,
  StatusError,
  statusError,
} from "../../lib/errors.js";
import { type Logger, nullLogger } from "../../lib/log.js";
import { nodeEndpoint } from "../server/podlog.js";
import { discoveryDocument, isSubresourcePath, parseRoute, type Route } from "./routes.js";

export { isSubresourcePath, parseRoute, SUBRESOURCE_GROUP } from "./routes.js";

export interface SubresourceOptions {
  client: Client;
  logger?: Logger;
  /** Version reported at /apis/subresources.kubevirt.io/v1/version. */
  version?: string;
}

export interface SubresourceApi {
  handles(pathname: string): boolean;
  handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void>;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
}

const MAX_BODY = 64 * 1024;
const vmiGR = { group: "kubevirt.io", resource: "virtualmachineinstances" };

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw statusError(413, "RequestEntityTooLarge", "request body too large");
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString("utf8").trim();
  if (text === "") return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw badRequest(`invalid request body: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw badRequest("request body must be a JSON object");
  return v as Record<string, unknown>;
}

function isDryRun(body: Record<string, unknown>): boolean {
  const d = body.dryRun;
  return Array.isArray(d) ? d.includes("All") : d === true;
}

function writeStatus(res: ServerResponse, s: Status): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(s.code, { "Content-Type": "application/json" });
  res.end(JSON.stringify(s));
}

function toStatus(e: unknown): Status {
  if (isStatusError(e)) return e.status;
  return statusError(500, "InternalError", `Internal error occurred: ${(e as Error)?.message ?? String(e)}`).status;
}

async function getOptional<T extends { metadata: { name?: string } }>(fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

function agentConnected(vmi: VirtualMachineInstance): boolean {
  return (vmi.status?.conditions ?? []).some((c) => c.type === "AgentConnected" && c.status === "True");
}

function acpiDisabled(vmi: VirtualMachineInstance): boolean {
  const features = (vmi.spec?.domain as { features?: { acpi?: { enabled?: boolean } } } | undefined)?.features;
  return features?.acpi?.enabled === false;
}

export function createSubresourceApi(opts: SubresourceOptions): SubresourceApi {
  const { client } = opts;
  const log = opts.logger ?? nullLogger;

  async function nodeOf(vmi: VirtualMachineInstance): Promise<{ host: string; port: number }> {
    const nodeName = vmi.status?.nodeName;
    if (!nodeName) throw conflict(vmiGR, vmi.metadata.name ?? "", "VMI is not scheduled to a node yet");
    const node = await client.get(resources.nodes, undefined, nodeName);
    const ep = nodeEndpoint(node as never);
    if (!ep) throw statusError(503, "ServiceUnavailable", `node "${nodeName}" publishes no agent endpoint`);
    return ep;
  }

  async function runningVmi(ns: string, name: string, what: string): Promise<VirtualMachineInstance> {
    const vmi = await client.get<VirtualMachineInstance>(resources.vmis, ns, name);
    const phase = vmi.status?.phase ?? "";
    if (phase !== "Running") {
      throw badRequest(
        `Unable to ${what} VirtualMachineInstance because phase is ${phase || "Pending"} instead of Running`,
      );
    }
    return vmi;
  }

  async function applyPlan(ns: string, name: string, patches: { subresource: string; ops: JsonPatchOp[] }[]) {
    for (const p of patches) {
      if (p.ops.length === 0) continue;
      await client.patch(resources.vms, ns, name, "json", p.ops, p.subresource ? { subresource: p.subresource } : {});
    }
  }

  async function vmVerb(route: Extract<Route, { kind: "vm" }>, body: Record<string, unknown>): Promise<void> {
    const { namespace: ns, name } = route;
    const vm = await client.get<VirtualMachine>(resources.vms, ns, name);
    const vmi = await getOptional(() => client.get<VirtualMachineInstance>(resources.vmis, ns, name));
    const dry = isDryRun(body);
    switch (route.verb) {
      case "start": {
        const plan = planStart(vm, vmi, { paused: body.paused === true });
        if (!plan.ok) throw plan.error;
        if (!dry) await applyPlan(ns, name, plan.patches);
        return;
      }
      case "stop": {
        const grace = typeof body.gracePeriod === "number" ? body.gracePeriod : undefined;
        if (grace !== undefined && (!Number.isInteger(grace) || grace < 0)) {
          throw badRequest("gracePeriod must be a non-negative integer");
        }
        const plan = planStop(vm, vmi, grace === undefined ? {} : { gracePeriod: grace });
        if (!plan.ok) throw plan.error;
        if (dry) return;
        await applyPlan(ns, name, plan.patches);
        // A shorter grace period is carried to the VMI's deletion, which the node agent honours.
        if (grace !== undefined && vmi !== undefined) {
          await client.delete(resources.vmis, ns, name, { gracePeriodSeconds: grace }).catch((e: unknown) => {
            if (!isNotFound(e)) throw e;
          });
        }
        return;
      }
      case "restart": {
        const plan = planRestart(vm, vmi);
        if (!plan.ok) throw plan.error;
        if (!dry) await applyPlan(ns, name, plan.patches);
        return;
      }
      case "migrate": {
        // MigrateOptions.addedNodeSelector (KubeVirt's): narrows where the target pod may go
        const added = body.addedNodeSelector;
        if (
          added !== undefined &&
          (typeof added !== "object" ||
            added === null ||
            Array.isArray(added) ||
            Object.values(added).some((v) => typeof v !== "string"))
        )
          throw badRequest("addedNodeSelector must be a map of label keys to string values");
        // A VM without VMI: a cold migration (tsvirt; admission labels it, or refuses a VM about to start).
        if (vmi && vmi.status?.phase !== "Running") throw conflict(vmiGR, name, "VMI is not running");
        if (dry) return;
        await client.create(resources.vmims, ns, {
          apiVersion: "kubevirt.io/v1",
          kind: "VirtualMachineInstanceMigration",
          metadata: { generateName: `kubevirt-migrate-vm-`, namespace: ns },
          spec: { vmiName: name, ...(added ? { addedNodeSelector: added } : {}) },
        } as never);
        return;
      }
    }
  }

  /** PUT to the node agent's own endpoint for this VMI, kubelet-style. */
  function forwardToNode(ep: { host: string; port: number }, path: string, method: string, body: string) {
    return new Promise<void>((resolve, reject) => {
      const r = http.request(
        {
          host: ep.host,
          port: ep.port,
          path,
          method,
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
          timeout: 30_000,
        },
        (up) => {
          const chunks: Buffer[] = [];
          up.on("data", (c: Buffer) => chunks.length < 64 && chunks.push(c));
          up.on("end", () => {
            const code = up.statusCode ?? 502;
            if (code < 300) return resolve();
            const text = Buffer.concat(chunks).toString("utf8");
            try {
              const s = JSON.parse(text) as Status;
              if (s && s.kind === "Status") return reject(new StatusError(s));
            } catch {}
            reject(statusError(code >= 500 ? 503 : code, "InternalError", text || `node agent answered ${code}`));
          });
        },
      );
      r.on("timeout", () => r.destroy(new Error("node agent timed out")));
      r.on("error", (e) => reject(statusError(503, "ServiceUnavailable", `node agent unreachable: ${e.message}`)));
      r.end(body);
    });
  }

  async function vmiVerb(route: Extract<Route, { kind: "vmi" }>, body: Record<string, unknown>): Promise<unknown> {
    const { namespace: ns, name, verb } = route;
    const vmi = await client.get<VirtualMachineInstance>(resources.vmis, ns, name);
    const phase = vmi.status?.phase ?? "";
    if (phase !== "Running") throw conflict(vmiGR, name, "VMI is not running");
    const paused = (vmi.status?.conditions ?? []).some((c) => c.type === "Paused" && c.status === "True");
    if (verb === "pause" && paused) throw conflict(vmiGR, name, "VMI is already paused");
    if (verb === "unpause" && !paused) throw conflict(vmiGR, name, "VMI is not paused");
    if (verb === "softreboot" && paused) throw conflict(vmiGR, name, "VMI is paused");
    if (verb === "softreboot" && !agentConnected(vmi) && acpiDisabled(vmi)) {
      // Without an agent the reboot goes through the ACPI power button (libvirt's ACPI reboot flag).
      throw conflict(vmiGR, name, "VMI neither have the agent connected nor the ACPI feature enabled");
    }
    if (isDryRun(body)) return undefined;
    const ep = await nodeOf(vmi);
    const path = `/v1/namespaces/${encodeURIComponent(ns)}/virtualmachineinstances/${encodeURIComponent(name)}/${verb}`;
    await forwardToNode(ep, path, "PUT", JSON.stringify(body));
    return undefined;
  }

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://virt-api");
    const route = parseRoute(url.pathname);
    try {
      switch (route.kind) {
        case "unknown":
          throw statusError(404, "NotFound", route.reason);
        case "version":
          res.writeHead(200, { "Content-Type": "application/json" });
          res.end(
            JSON.stringify({
              gitVersion: opts.version ?? "v1.8.0-tsvirt",
              gitCommit: "",
              gitTreeState: "clean",
              buildDate: "",
              goVersion: process.version,
              compiler: "tsc",
              platform: `${process.platform}/${process.arch}`,
            }),
          );
          return;
        case "healthz":
          res.writeHead(200, { "Content-Type": "text/plain" });
          res.end("ok");
          return;
        case "discovery":
          res.writeHead(200, { "Content-Type": "application/json" });
          res.end(JSON.stringify(discoveryDocument(route.version)));
          return;
        case "vm":
          if (req.method !== "PUT") throw statusError(405, "MethodNotAllowed", `${req.method} is not supported here`);
          await vmVerb(route, await readJson(req));
          res.writeHead(202);
          res.end();
          return;
        case "vmi": {
          if (route.verb === "console" || route.verb === "vnc") {
            throw badRequest(`${route.verb} needs a WebSocket upgrade`);
          }
          if (route.verb === "guestosinfo") {
            if (req.method !== "GET") throw statusError(405, "MethodNotAllowed", `${req.method} is not supported here`);
            await runningVmi(route.namespace, route.name, "read guest OS info of");
            const connected = false; // no guest agent channel is connected in our guests yet
            if (!connected) throw conflict(vmiGR, route.name, "VMI does not have guest agent connected");
            return;
          }
          if (req.method !== "PUT") throw statusError(405, "MethodNotAllowed", `${req.method} is not supported here`);
          await vmiVerb(route, await readJson(req));
          res.writeHead(202);
          res.end();
          return;
        }
      }
    } catch (e) {
      const s = toStatus(e);
      if (s.code >= 500) log.error("subresource request failed", { path: url.pathname, err: e });
      writeStatus(res, s);
    }
  }

  function rejectUpgrade(socket: Duplex, s: Status): void {
    const body = JSON.stringify(s);
    const reason = http.STATUS_CODES[s.code] ?? "Error";
    socket.end(
      `HTTP/1.1 ${s.code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }

  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? "/", "http://virt-api");
    const route = parseRoute(url.pathname);
    socket.on("error", () => socket.destroy());
    try {
      if (route.kind !== "vmi" || (route.verb !== "console" && route.verb !== "vnc")) {
        throw statusError(404, "NotFound", "the server could not find the requested resource");
      }
      const vmi = await runningVmi(route.namespace, route.name, "connect to");
      const ep = await nodeOf(vmi);
      const path = `/v1/namespaces/${encodeURIComponent(route.namespace)}/virtualmachineinstances/${encodeURIComponent(route.name)}/${route.verb}${url.search}`;
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined || k === "host" || k === "authorization") continue;
        headers[k] = v;
      }
      const up = http.request({ host: ep.host, port: ep.port, path, method: "GET", headers });
      up.on("upgrade", (ures, usock, uhead) => {
        let resp = `HTTP/1.1 101 Switching Protocols\r\n`;
        for (let i = 0; i < ures.rawHeaders.length; i += 2)
          resp += `${ures.rawHeaders[i]}: ${ures.rawHeaders[i + 1]}\r\n`;
        socket.write(`${resp}\r\n`);
        if (uhead.length) socket.write(uhead);
        if (head.length) usock.write(head);
        usock.on("error", () => socket.destroy());
        socket.on("close", () => usock.destroy());
        usock.on("close", () => socket.destroy());
        usock.pipe(socket);
        socket.pipe(usock);
      });
      up.on("response", (ures) => {
        const chunks: Buffer[] = [];
        ures.on("data", (c: Buffer) => chunks.length < 64 && chunks.push(c));
        ures.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let s: Status | undefined;
          try {
            const v = JSON.parse(text) as Status;
            if (v?.kind === "Status") s = v;
          } catch {}
          rejectUpgrade(socket, s ?? statusError(502, "InternalError", text || "node agent refused the stream").status);
        });
      });
      up.on("error", (e) =>
        rejectUpgrade(socket, statusError(503, "ServiceUnavailable", `node agent unreachable: ${e.message}`).status),
      );
      up.end();
    } catch (e) {
      if (isNotFound(e) && route.kind === "vmi") {
        rejectUpgrade(socket, notFound(vmiGR, route.name).status);
        return;
      }
      rejectUpgrade(socket, toStatus(e));
    }
  }

  return { handles: isSubresourcePath, handleRequest, handleUpgrade };
}
