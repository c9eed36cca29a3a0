// policy/v1 Eviction (and policy/v1beta1, the same shape): the body of POST pods/NAME/eviction, as kubectl drain and
// the descheduler send it. It is never stored: the API server answers it by deleting the pod (or refusing, 429).
import type { Static } from "@sinclair/typebox";
import { TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Enum, Int64, ListOf, Str, Struct } from "../../meta/v1/schema.js";

/** meta/v1 DeleteOptions as an Eviction carries it. */
export const DeleteOptions = Struct({
  apiVersion: Str,
  kind: Str,
  gracePeriodSeconds: Int64,
  preconditions: Struct({ uid: Str, resourceVersion: Str }),
  orphanDependents: Bool,
  propagationPolicy: Enum(["Orphan", "Background", "Foreground"] as const),
  dryRun: ListOf(Enum(["All"] as const)),
  ignoreStoreReadErrorWithClusterBreakingPotential: Bool,
});
export type DeleteOptions = Static<typeof DeleteOptions>;

export const Eviction = Struct({ ...TypeMeta, deleteOptions: DeleteOptions });
export type Eviction = Static<typeof Eviction>;

/** The versions of the policy group whose Eviction the pods/eviction subresource accepts. */
export const EVICTION_API_VERSIONS = ["policy/v1", "policy/v1beta1"] as const;
