// Admission plugins take and return AdmissionReview v1 (mutation as a JSON patch). In embedded mode the API server
// calls them in process; on a cluster the same plugins are served as webhooks.
import type { StatusCause } from "../../lib/errors.js";
import type { PatchOp } from "./json-patch.js";

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}
export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
  userInfo: { username: string; groups?: string[] };
  object?: Record<string, unknown>;
  oldObject?: Record<string, unknown>;
  dryRun?: boolean;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: {
    code?: number;
    reason?: string;
    message?: string;
    details?: { causes?: StatusCause[]; retryAfterSeconds?: number };
  };
  patchType?: "JSONPatch";
  /** base64 of a JSON patch (RFC 6902) */
  patch?: string;
  warnings?: string[];
}

export interface AdmissionReview {
  apiVersion: "admission.k8s.io/v1";
  kind: "AdmissionReview";
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

/**
 * A built-in plugin's decision in process: the response it would send, with its mutation as typed JSON patch
 * operations rather than a base64 string. The operations' values belong to the caller once returned.
 */
export interface AdmissionDecision {
  response: AdmissionResponse;
  patch?: PatchOp[];
}

export interface AdmissionPlugin {
  name: string;
  type: "mutating" | "validating";
  /** Which requests the plugin wants, as a webhook's rules would say. */
  matches(req: AdmissionRequest): boolean;
  /** The webhook interface: AdmissionReview in, AdmissionReview out (mutation as a base64 JSON patch). */
  review(review: AdmissionReview): AdmissionReview | Promise<AdmissionReview>;
  /**
   * The in-process interface of built-in plugins: the same decision as review(), without the AdmissionReview
   * envelope, base64 and JSON round trip. External webhooks leave it out and are called through review().
   */
  admit?(req: AdmissionRequest): AdmissionDecision | Promise<AdmissionDecision>;
}
