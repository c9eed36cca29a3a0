// coordination.k8s.io/v1 Lease (node heartbeats, leader election).
import type { Static } from "@sinclair/typebox";
import { TypeMeta } from "../../meta/v1/object-meta.js";
import { Int32, Str, Struct, Time } from "../../meta/v1/schema.js";

export const Lease = Struct(
  {
    ...TypeMeta,
    spec: Struct({
      holderIdentity: Str,
      leaseDurationSeconds: Int32,
      acquireTime: Time,
      renewTime: Time,
      leaseTransitions: Int32,
      strategy: Str,
      preferredHolder: Str,
    }),
  },
  [],
);
export type Lease = Static<typeof Lease>;
