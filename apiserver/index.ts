// The embedded Kubernetes-compatible API server: `startApiServer` for `tsvirt api`, `tsvirt up` and tests.

export { componentKubeconfigPath, tokenPath } from "./auth/index.js";
export { Registry, type ServedResource } from "./registry/resources.js";
export { nodeEndpoint, proxyToNode } from "./server/podlog.js";
export {
  type ApiServer,
  type ApiServerOptions,
  checkListen,
  startApiServer,
  writeKubeconfig,
} from "./server/start.js";
export { Store, type StoreEvent, type StoreOptions } from "./storage/store.js";
