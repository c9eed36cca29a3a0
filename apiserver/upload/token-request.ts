// POST .../upload.cdi.kubevirt.io/v1beta1/namespaces/NS/uploadtokenrequests: answered with the request and its
// status.token, stored nowhere (as SelfSubjectAccessReview). Who may ask is authorize()'s call (create/update of
// DataVolumes in the namespace).
import { UPLOAD_GROUP } from "../../api/index.js";
import { invalid } from "../../lib/errors.js";
import { clone, isObject } from "../../lib/json.js";
import type { UserInfo } from "../auth/index.js";
import type { WriteResult } from "../server/options.js";
import type { UploadTokens } from "./token.js";

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function uploadTokenRequestHandler(tokens: UploadTokens) {
  return (ns: string, body: unknown, _user: UserInfo): WriteResult => {
    const o = isObject(body) ? clone(body) : {};
    const spec = isObject(o.spec) ? o.spec : {};
    const pvcName = spec.pvcName;
    const gk = { group: UPLOAD_GROUP, kind: "UploadTokenRequest" };
    const meta = isObject(o.metadata) ? o.metadata : {};
    const name = typeof meta.name === "string" ? meta.name : "";
    if (typeof pvcName !== "string" || pvcName === "")
      throw invalid(gk, name, [
        {
          type: "FieldValueRequired",
          field: "spec.pvcName",
          message: "Required value: the DataVolume/PVC to upload to",
        },
      ]);
    if (pvcName.length > 253 || !NAME.test(pvcName))
      throw invalid(gk, name, [
        {
          type: "FieldValueInvalid",
          field: "spec.pvcName",
          message: `Invalid value: "${pvcName.slice(0, 64)}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`,
        },
      ]);
    return {
      object: {
        ...o,
        apiVersion: `${UPLOAD_GROUP}/v1beta1`,
        kind: "UploadTokenRequest",
        metadata: { ...meta, namespace: ns },
        spec: { pvcName },
        status: { token: tokens.sign(ns, pvcName) },
      },
      code: 201,
      warnings: [],
    };
  };
}
