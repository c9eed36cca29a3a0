// Per-resource strategies, looked up by the resource's storage key ("group/plural").
import type { ServedResource } from "../registry/resources.js";
import { controllerRevisionStrategy } from "./apps.js";
import { eventStrategy, immutableDataStrategy, namespaceStrategy, podStrategy } from "./core.js";
import { crdStrategy } from "./crd.js";
import { pvcStrategy } from "./storage.js";
import type { Strategy } from "./types.js";

export { SYSTEM_NAMESPACES } from "./core.js";
export { type DeleteStep, dns1123Label, dns1123Subdomain, type Strategy, type StrategyContext } from "./types.js";

const STRATEGIES: Readonly<Record<string, Strategy>> = {
  "/namespaces": namespaceStrategy,
  "/pods": podStrategy,
  "/events": eventStrategy,
  "/configmaps": immutableDataStrategy,
  "/secrets": immutableDataStrategy,
  "/persistentvolumeclaims": pvcStrategy,
  "apiextensions.k8s.io/customresourcedefinitions": crdStrategy,
  "apps/controllerrevisions": controllerRevisionStrategy,
};

const DEFAULT: Strategy = {};

/** The strategy of a resource; kinds without rules of their own get the generic behaviour. */
export function strategyFor(r: ServedResource): Strategy {
  return STRATEGIES[r.key] ?? DEFAULT;
}
