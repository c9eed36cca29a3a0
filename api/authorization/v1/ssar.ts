// authorization.k8s.io/v1 SelfSubjectAccessReview (kubectl auth can-i).
import type { Static } from "@sinclair/typebox";
import { TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Preserve, Str, Struct } from "../../meta/v1/schema.js";

export const SelfSubjectAccessReview = Struct(
  {
    ...TypeMeta,
    spec: Struct({
      resourceAttributes: Struct({
        namespace: Str,
        verb: Str,
        group: Str,
        version: Str,
        resource: Str,
        subresource: Str,
        name: Str,
        fieldSelector: Preserve(),
        labelSelector: Preserve(),
      }),
      nonResourceAttributes: Struct({ path: Str, verb: Str }),
    }),
    status: Struct({ allowed: Bool, denied: Bool, reason: Str, evaluationError: Str }, ["allowed"]),
  },
  ["spec"],
);
export type SelfSubjectAccessReview = Static<typeof SelfSubjectAccessReview>;
