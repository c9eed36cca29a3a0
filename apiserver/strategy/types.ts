// A kind's REST rules, as kube-apiserver's per-resource strategy.go: what the server sets on create, what it checks
// beyond the schema, what may not change, how deletion goes. The generic REST code (server/rest.ts) asks the
// resource's strategy and knows no kind by name.

import type { UnstructuredObject as KObj } from "../../api/index.js";
import type { Registry } from "../registry/resources.js";
import type { DeleteOptions } from "../server/options.js";
import type { Store } from "../storage/store.js";

export const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** What a strategy may read: the served kinds and the stored objects. */
export interface StrategyContext {
  registry: Registry;
  store: Store;
}

/**
 * The outcome of a strategy's delete step: "update" stores the strategy's changes to the object and ends the
 * delete there (graceful deletion, a namespace turning Terminating); "keep" answers with the object unchanged;
 * undefined goes on with the generic path (finalizers, then removal).
 */
export type DeleteStep = "update" | "keep" | undefined;

export interface Strategy {
  /** metadata.name must be a DNS-1123 label (63 characters) instead of a subdomain */
  nameIsLabel?: boolean;
  /** a built-in kind that counts metadata.generation (custom resources always do) */
  generation?: boolean;
  /** server-set fields of a new object (kube-apiserver's PrepareForCreate), after the generic metadata defaults */
  prepareForCreate?(o: KObj): void;
  /** semantic checks of a new or updated object beyond its schema; throws a Status */
  validate?(o: KObj, ctx: StrategyContext): void;
  /** what an update may not change (kube-apiserver's ValidateUpdate); `sub` is the subresource written; `ctx` lets
   * a rule read other objects (a claim's StorageClass) */
  validateUpdate?(cur: KObj, next: KObj, sub: string | undefined, ctx?: StrategyContext): void;
  /** refuses a delete outright (protected objects); throws a Status */
  checkDelete?(cur: KObj): void;
  /** the kind's own delete semantics; may change `next` (a copy of `cur`) */
  prepareForDelete?(cur: KObj, next: KObj, o: DeleteOptions): DeleteStep;
  /** DELETE on the collection is refused (namespaces, as kube-apiserver) */
  noDeleteCollection?: boolean;
  /** a deleting object whose finalizers are gone is removed by a controller of its own, not by the write */
  keepsFinalizedObject?: boolean;
  /** the object is in its graceful-termination period: an empty finalizer list does not remove it yet */
  terminating?(o: KObj): boolean;
  /** the kind changes what the server serves (CRDs): called after every stored change */
  servesDefinitions?: boolean;
}
