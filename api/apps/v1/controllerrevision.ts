// apps/v1 ControllerRevision: an immutable snapshot of state (KubeVirt pins instance types and a VM's start-time
// spec with them). `data` is any object; `revision` orders the snapshots of one owner.
import type { Static } from "@sinclair/typebox";
import { TypeMeta } from "../../meta/v1/object-meta.js";
import { Int64, Preserve, Struct } from "../../meta/v1/schema.js";

export const ControllerRevision = Struct({ ...TypeMeta, data: Preserve(), revision: Int64 }, ["revision"]);
export type ControllerRevision = Static<typeof ControllerRevision>;
