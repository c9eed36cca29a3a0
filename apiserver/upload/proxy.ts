// CDI's upload proxy, served on the API server's own address (so HTTPS whenever the API is): POST /v1beta1/upload
// (or upload-async, and the v1alpha1 aliases) with `Authorization: Bearer <upload token>`. The token names the
// DataVolume; its upload pod (label cdi.kubevirt.io=cdi-upload-server, controller owner the DV) tells the node, and
// the body streams to that node's agent, which hands it to the upload server's unix socket. Nothing is buffered:
// the client is read at the pace the volume is written.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { UnstructuredObject as KObj } from "../../api/index.js";
import {
  badRequest,
  methodNotAllowed,
  notFound,
  type StatusError,
  statusError,
  unauthorized,
} from "../../lib/errors.js";
import { field } from "../../lib/json.js";
import { mintUploadTicket, UPLOAD_TICKET_ANNOTATION, UPLOAD_TICKET_PARAM } from "../../lib/upload-ticket.js";
import { nodeEndpoint, proxyToNode } from "../server/podlog.js";
import type { Rest } from "../server/rest.js";
import { StoreError } from "../storage/store.js";
import type { UploadTokens } from "./token.js";

/** The paths CDI's upload proxy serves (virtctl probes upload-async with HEAD and falls back to upload). */
const UPLOAD_PATH = /^\/v1(?:alpha1|beta1)\/(upload|upload-async|upload-form|upload-form-async|upload-archive)$/;

export function isUploadPath(pathname: string): boolean {
  return UPLOAD_PATH.test(pathname);
}

/**
 * A client that sends this header (virtctl does, with `Expect: 100-continue`) may be answered, before it sends its
 * body, with a 307 to the node agent's upload path: one hop less for every byte (the API server no longer relays
 * them). Only over plain HTTP, as the agent serves: an HTTPS API keeps relaying (HTTPS whenever the API is), and
 * tsvirt serves plain HTTP on loopback only, where the client reaches whatever the API server reaches. Either way
 * the agent's path carries a one-time ticket (lib/upload-ticket.ts) the agent checks against the pod: only a client
 * that passed the token check here gets one.
 */
export const UPLOAD_REDIRECT_HEADER = "x-tsvirt-upload-redirect";

export const UPLOAD_POD_LABEL = "cdi.kubevirt.io";
export const UPLOAD_POD_ROLE = "cdi-upload-server";

/** The node agent's path for a pod's upload (handler/server.ts serves it), with its one-time ticket. */
export function nodeUploadPath(namespace: string, pod: string, ticket: string): string {
  const q = new URLSearchParams({ [UPLOAD_TICKET_PARAM]: ticket });
  return `/upload/${encodeURIComponent(namespace)}/${encodeURIComponent(pod)}?${q}`;
}

/**
 * Opens a one-time ticket for the upload pod: its hash and expiry go on the pod (replacing any earlier one, so only
 * the newest redirect is good), the ticket itself only to the client that passed the token check.
 */
export function openUploadTicket(rest: Rest, pod: KObj): string {
  const { ticket, record } = mintUploadTicket();
  for (let i = 0; ; i++) {
    const cur = rest.store.get("/pods", pod.metadata.namespace ?? "", pod.metadata.name ?? "") as KObj | undefined;
    if (!cur || cur.metadata.uid !== pod.metadata.uid)
      throw statusError(503, "ServiceUnavailable", "upload pod not ready yet: it was replaced", {
        retryAfterSeconds: 2,
      });
    const next = structuredClone(cur);
    next.metadata.annotations = { ...next.metadata.annotations, [UPLOAD_TICKET_ANNOTATION]: record };
    try {
      rest.store.update("/pods", next, Number(cur.metadata.resourceVersion));
      return ticket;
    } catch (e) {
      // another writer (the agent's status) got in between: read it again
      if (!(e instanceof StoreError) || i >= 4) throw e;
    }
  }
}

const DVS = "cdi.kubevirt.io/datavolumes";
const DV_GR = { group: "cdi.kubevirt.io", resource: "datavolumes" };

function podReady(pod: KObj): boolean {
  if (field(pod, "status.phase") !== "Running") return false;
  const conds = field(pod, "status.conditions");
  return Array.isArray(conds) && conds.some((c) => c?.type === "Ready" && c?.status === "True");
}

/** The DataVolume's upload pod: the one it controls with the upload server's label (the newest, after a restart). */
export function uploadPodOf(rest: Rest, dv: KObj): KObj | undefined {
  const uid = dv.metadata.uid;
  const pods = rest.store
    .dependents(uid ?? "")
    .filter((d) => d.resource === "/pods")
    .map((d) => rest.store.get("/pods", d.namespace, d.name) as KObj | undefined)
    .filter(
      (p): p is KObj =>
        !!p &&
        p.metadata.labels?.[UPLOAD_POD_LABEL] === UPLOAD_POD_ROLE &&
        !p.metadata.deletionTimestamp &&
        !!p.metadata.ownerReferences?.some((r) => r.uid === uid && r.controller === true),
    );
  return pods.sort((a, b) =>
    String(b.metadata.creationTimestamp ?? "").localeCompare(String(a.metadata.creationTimestamp ?? "")),
  )[0];
}

/** How long a client waiting for 100 Continue is held for its upload pod to get ready (virtctl waits 300 s). */
const READY_WAIT_MS = 120_000;

type UploadTarget = { ready: true; pod: KObj; node: string } | (StatusError & { ready: false });

/** The DV's upload pod and node when it takes an upload now; throws when it never will; else a 503 "not ready". */
function uploadTarget(rest: Rest, namespace: string, name: string): UploadTarget {
  const dv = rest.store.get(DVS, namespace, name) as KObj | undefined;
  if (!dv) throw notFound(DV_GR, name);
  if (field(dv, "spec.source.upload") === undefined)
    throw badRequest(`DataVolume "${name}" is not an upload target: its spec.source is not upload`);
  const phase = String(field(dv, "status.phase") ?? "") || "Pending";
  if (phase === "Succeeded" || phase === "Failed")
    throw statusError(409, "Conflict", `DataVolume "${name}" is ${phase}: it takes no more uploads`);
  const pod = uploadPodOf(rest, dv);
  const node = pod ? field(pod, "spec.nodeName") : undefined;
  if (!pod || typeof node !== "string" || !node || !podReady(pod))
    return Object.assign(
      statusError(503, "ServiceUnavailable", `upload pod not ready yet: ${phase}`, { retryAfterSeconds: 2 }),
      { ready: false as const },
    );
  return { ready: true, pod, node };
}

/** uploadTarget once it is ready (re-read at every write to the namespace's pods and DVs), or a 503 after `ms`. */
function whenReady(rest: Rest, namespace: string, name: string, req: IncomingMessage, ms: number) {
  return new Promise<UploadTarget>((resolve, reject) => {
    const check = (): void => {
      try {
        const t = uploadTarget(rest, namespace, name);
        if (t.ready) done(() => resolve(t));
      } catch (e) {
        done(() => reject(e));
      }
    };
    const unsubscribe = rest.store.subscribe((e) => {
      if (e.namespace === namespace && (e.resource === "/pods" || e.resource === DVS)) check();
    });
    const timer = setTimeout(() => done(() => resolve(uploadTarget(rest, namespace, name))), ms);
    const gone = (): void => done(() => reject(statusError(499, "ClientClosedRequest", "the client went away")));
    req.socket.once("close", gone);
    let settled = false;
    const done = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      unsubscribe();
      clearTimeout(timer);
      req.socket.off("close", gone);
      fn();
    };
    check();
  });
}

export function uploadProxy(rest: Rest, tokens: UploadTokens) {
  return async (req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> => {
    const kind = UPLOAD_PATH.exec(pathname)?.[1] ?? "";
    const method = req.method ?? "";
    if (method === "HEAD") {
      // virtctl's probe for the async endpoint
      req.resume();
      res.writeHead(kind === "upload" || kind === "upload-async" ? 200 : 404);
      res.end();
      return;
    }
    if (method !== "POST" && method !== "PUT") {
      req.resume();
      throw methodNotAllowed(`${pathname} takes POST (or PUT) with the image as the body`);
    }
    if (kind !== "upload" && kind !== "upload-async") {
      req.resume();
      throw statusError(
        415,
        "UnsupportedMediaType",
        `${pathname} is not served: send the image as application/octet-stream to /v1beta1/upload or /v1beta1/upload-async`,
      );
    }
    const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    if (!auth) {
      req.resume();
      throw unauthorized("an upload needs an Authorization: Bearer header with a token from an UploadTokenRequest");
    }
    const v = tokens.verify(auth[1] ?? "");
    if (!v.ok) {
      req.resume();
      throw unauthorized(`${v.why}: ask for a new one (UploadTokenRequest)`);
    }
    const { namespace, name } = v.claim;
    let target: UploadTarget;
    try {
      target = uploadTarget(rest, namespace, name);
      // A client that waits for the go-ahead has sent nothing yet: it is held until the pod is ready (the DV's
      // UploadReady, without the round trips of the DV's status and the client's polling of it).
      if (!target.ready && /100-continue/i.test(req.headers.expect ?? ""))
        target = await whenReady(rest, namespace, name, req, READY_WAIT_MS);
    } catch (e) {
      req.resume();
      throw e;
    }
    if (!target.ready) {
      req.resume();
      throw target;
    }
    const { pod, node } = target;
    const path = nodeUploadPath(namespace, pod.metadata.name ?? "", openUploadTicket(rest, pod));
    if (req.headers[UPLOAD_REDIRECT_HEADER] === "allowed" && !(req.socket as { encrypted?: boolean }).encrypted) {
      const nodeObj = rest.store.get("/nodes", "", node) as KObj | undefined;
      const ep = nodeObj ? nodeEndpoint(nodeObj) : undefined;
      if (ep) {
        const host = ep.host.includes(":") ? `[${ep.host}]` : ep.host;
        const location = `http://${host}:${ep.port}${path}`;
        const body = JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Success",
          message: `upload to ${location}`,
          code: 307,
        });
        // no body was sent (the client waits for 100 Continue): the connection is not kept for a body to drain
        res.writeHead(307, { location, "content-type": "application/json", connection: "close" });
        res.end(body);
        return;
      }
    }
    // relayed: the client may send its body now
    if (/100-continue/i.test(req.headers.expect ?? "")) res.writeContinue();
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    const len = req.headers["content-length"];
    if (len !== undefined && /^\d+$/.test(len)) headers["content-length"] = len;
    else headers["transfer-encoding"] = "chunked";
    await proxyToNode(rest, node, path, req, res, {
      method: "POST",
      headers,
    });
  };
}
