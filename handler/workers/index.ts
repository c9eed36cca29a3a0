// handler/workers: the node side of DataVolume worker pods (importer now; upload and clone build on it): job
// resolution, target lookup, the egress proxy and the progress relay.
export { clonePvcSource, cloneSourceShape, matchCloneSource } from "./clone.js";
export { connectTarget, type EgressProxy, serveEgress, serveEgressChannel } from "./egress.js";
export { importerShape, importSource, registryEgress, type WorkerShapeDeps, workerArgv } from "./importer.js";
export * from "./job.js";
export { PROGRESS_ANNOTATION, progressText, WorkerServices, withProgress } from "./services.js";
export { claimUploadTicket, probeUploadServer, UPLOAD_ROLE, uploadShape } from "./upload.js";
