// autoscaling/v2 HorizontalPodAutoscaler (targets VMIRS/pools through their /scale subresource).
import type { Static } from "@sinclair/typebox";
import { NamespaceCondition } from "../../core/v1/kinds.js";
import { TypeMeta } from "../../meta/v1/object-meta.js";
import { Int32, Int64, ListOf, Preserve, Str, Struct, Time } from "../../meta/v1/schema.js";

export const HorizontalPodAutoscaler = Struct(
  {
    ...TypeMeta,
    spec: Struct(
      {
        scaleTargetRef: Struct({ apiVersion: Str, kind: Str, name: Str }, ["kind", "name"]),
        minReplicas: Int32,
        maxReplicas: Int32,
        metrics: ListOf(Preserve()),
        behavior: Preserve(),
      },
      ["scaleTargetRef", "maxReplicas"],
    ),
    status: Struct({
      observedGeneration: Int64,
      lastScaleTime: Time,
      currentReplicas: Int32,
      desiredReplicas: Int32,
      currentMetrics: ListOf(Preserve()),
      conditions: ListOf(NamespaceCondition),
    }),
  },
  [],
);
export type HorizontalPodAutoscaler = Static<typeof HorizontalPodAutoscaler>;
