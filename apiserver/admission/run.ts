// Runs admission in process the way kube-apiserver runs webhooks: every matching mutating plugin in order (each
// sees the previous one's result), then every matching validating plugin. A denial becomes the StatusError
// kube-apiserver would return: `admission webhook "<name>" denied the request: <message>`, 422 Invalid with one
// cause per field path when the plugin gave causes.
import { randomUUID } from "node:crypto";
import { type StatusCause, type StatusError, statusError } from "../../lib/errors.js";
import { applyJsonPatch } from "../../lib/jsonpatch.js";
import { decodePatch, type PatchOp } from "./json-patch.js";
import type { AdmissionPlugin, AdmissionRequest, AdmissionResponse } from "./types.js";

export interface RunAdmissionOptions {
  /**
   * The caller owns request.object and lets mutations change it in place (the API server's own copy of the
   * request body). Otherwise the object is copied once before the first mutation and the caller's stays as it was.
   */
  mutateInPlace?: boolean;
}

export interface AdmissionResult {
  /** The object after all mutations (undefined for DELETE/CONNECT without an object). */
  object: Record<string, unknown> | undefined;
  /** Warning texts for `Warning: 299 - "<text>"` response headers, in plugin order. */
  warnings: string[];
}

function denial(plugin: AdmissionPlugin, req: AdmissionRequest, res: AdmissionResponse): StatusError {
  const st = res.status ?? {};
  const code = st.code && st.code >= 400 ? st.code : 400;
  const reason = st.reason ?? (code === 422 ? "Invalid" : code === 429 ? "TooManyRequests" : "BadRequest");
  const message = `admission webhook "${plugin.name}" denied the request${st.message ? `: ${st.message}` : " without explanation"}`;
  const causes: StatusCause[] | undefined = st.details?.causes;
  const retry = st.details?.retryAfterSeconds;
  const name = req.name ?? (req.object?.metadata as { name?: string } | undefined)?.name ?? "";
  return statusError(code, reason, message, {
    name,
    group: req.kind.group,
    kind: req.kind.kind,
    ...(causes && causes.length > 0 ? { causes } : {}),
    ...(retry && retry > 0 ? { retryAfterSeconds: retry } : {}),
  });
}

/**
 * Applies the matching mutating plugins, then the matching validating ones. Throws StatusError on denial.
 * Built-in plugins are called through their in-process interface (admit); others through review(), as webhooks.
 */
export async function runAdmission(
  plugins: readonly AdmissionPlugin[],
  request: AdmissionRequest,
  opts: RunAdmissionOptions = {},
): Promise<AdmissionResult> {
  const req: AdmissionRequest = { ...request, uid: request.uid || randomUUID() };
  const warnings: string[] = [];
  let owned = !!opts.mutateInPlace;
  for (const type of ["mutating", "validating"] as const) {
    for (const plugin of plugins) {
      if (plugin.type !== type || !plugin.matches(req)) continue;
      let res: AdmissionResponse | undefined;
      let patch: PatchOp[] | undefined;
      if (plugin.admit) {
        const d = await plugin.admit(req);
        res = d.response;
        patch = d.patch;
      } else {
        const review = await plugin.review({
          apiVersion: "admission.k8s.io/v1",
          kind: "AdmissionReview",
          request: req,
        });
        res = review.response;
        if (res?.patch) patch = decodePatch(res.patch);
      }
      if (!res)
        throw statusError(
          500,
          "InternalError",
          `Internal error occurred: admission webhook "${plugin.name}" returned no response`,
        );
      if (res.warnings) warnings.push(...res.warnings);
      if (!res.allowed) throw denial(plugin, req, res);
      if (patch && patch.length > 0) {
        if (plugin.type !== "mutating")
          throw statusError(
            500,
            "InternalError",
            `Internal error occurred: validating webhook "${plugin.name}" returned a patch`,
          );
        if (req.object) {
          if (!owned) {
            req.object = structuredClone(req.object);
            owned = true;
          }
          // values decoded from a webhook's patch are fresh; a built-in plugin's are handed over
          req.object = applyJsonPatch(req.object, patch, { inPlace: true });
        }
      }
    }
  }
  return { object: req.object, warnings };
}
