export { applyJsonPatch } from "../lib/jsonpatch.js";
export { applyMergePatch } from "../lib/mergepatch.js";
export { ClusterConfig, type KubeVirtDefaults } from "./cluster-config.js";
export { type Action, FakeClient, type Reactor, type Verb } from "./fake.js";
export {
  type EventHandlers,
  type IndexFunc,
  Informer,
  type InformerOptions,
  labelIndex,
  NAMESPACE_INDEX,
  ownerUidIndex,
} from "./informer.js";
export type {
  Client,
  DeleteOptions,
  JsonPatchOp,
  ListOptions,
  PatchOptions,
  PatchType,
  WatchHandle,
  WatchHandler,
  WatchOptions,
  WriteOptions,
} from "./interface.js";
export { type ClientConfig, inClusterConfig, type LoadOptions, loadConfig, parseKubeconfig } from "./kubeconfig.js";
export {
  apiVersionOf,
  collectionPath,
  keyOf,
  objectPath,
  type ResourceRef,
  resources,
  SUBRESOURCE_GROUP,
  splitKey,
} from "./resources.js";
export { RestClient, toStatusError } from "./rest.js";
export * from "./types.js";
