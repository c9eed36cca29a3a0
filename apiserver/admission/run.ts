// Runs admission in process the way kube-apiserver runs webhooks: every matching mutating plugin in order (each
// sees the previous one's result), then every matching validating plugin. A denial becomes the StatusError
// kube-apiserver would return: `admission webhook "<name>" denied the request: <message>`, 422 Invalid with one
// cause per field path when the plugin gave causes.
import { randomUUID } from "node:crypto";
import { type StatusCause, type StatusError, statusError } from "../../lib/errors.js";
import { applyJsonPatch, decodePatch } from "./json-patch.js";
import type { AdmissionPlugin, AdmissionRequest, AdmissionResponse } from "./types.js";

export interface AdmissionResult {
  /** The object after all mutations (undefined for DELETE/CONNECT without an object). */
  object: Record<string, unknown> | undefined;
  /** Warning texts for `Warning: 299 - "<text>"` response headers, in plugin order. */
  warnings: string[];
}

function denial(plugin: AdmissionPlugin, req: AdmissionRequest, res: AdmissionResponse): StatusError {
  const st = res.status ?? {};
  const code = st.code && st.code >= 400 ? st.code : 400;
  const reason = st.reason ?? (code === 422 ? "Invalid" : "BadRequest");
  const message = `admission webhook "${plugin.name}" denied the request${st.message ? `: ${st.message}` : " without explanation"}`;
  const causes: StatusCause[] | undefined = st.details?.causes;
  const name = req.name ?? (req.object?.metadata as { name?: string } | undefined)?.name ?? "";
  return statusError(code, reason, message, {
    name,
    group: req.kind.group,
    kind: req.kind.kind,
    ...(causes && causes.length > 0 ? { causes } : {}),
  });
}

/** Applies the matching mutating plugins, then the matching validating ones. Throws StatusError on denial. */
export async function runAdmission(
  plugins: readonly AdmissionPlugin[],
  request: AdmissionRequest,
): Promise<AdmissionResult> {
  let req: AdmissionRequest = { ...request, uid: request.uid || randomUUID() };
  const warnings: string[] = [];
  const ordered = [...plugins.filter((p) => p.type === "mutating"), ...plugins.filter((p) => p.type === "validating")];
  for (const plugin of ordered) {
    if (!plugin.matches(req)) continue;
    const review = await plugin.review({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: req });
    const res = review.response;
    if (!res)
      throw statusError(
        500,
        "InternalError",
        `Internal error occurred: admission webhook "${plugin.name}" returned no response`,
      );
    if (res.warnings) warnings.push(...res.warnings);
    if (!res.allowed) throw denial(plugin, req, res);
    if (res.patch) {
      if (plugin.type !== "mutating")
        throw statusError(
          500,
          "InternalError",
          `Internal error occurred: validating webhook "${plugin.name}" returned a patch`,
        );
      if (req.object) req = { ...req, object: applyJsonPatch(req.object, decodePatch(res.patch)) };
    }
  }
  return { object: req.object, warnings };
}
