// images/: containerDisk images for the node agent and DataVolume imports — registry client, registry list with
// failover and back-off, node cache (pins, GC), safe extraction, overlays, build and push. Knows nothing of the API.

/** The node cache: pin/unpin by VMI uid (on disk, survives restarts), LRU GC that never drops pinned images. */
export type { CachedDisk, DiskMeta } from "./cache.js";
/** The node agent's image port: pull+pin per VMI, release all of a VMI's pins. */
export { type NodeImagePuller, type NodeImagePullerOptions, nodeImagePuller } from "./node-puller.js";
/** Pull a containerDisk into the node cache: `{manifestDigest, diskPath, format, virtualSize}`; ErrImagePull on failure. */
export {
  defaultPullPolicy,
  type PulledDisk,
  type PullOptions,
  type PullPolicy,
  type PullProgress,
  pullContainerDisk,
  registryHealth,
} from "./pull.js";
/** qcow2 overlay over a cached base (the launcher calls it in its private directory); format probing. */
export { createOverlay, type DiskFormat, type DiskInfo, diskInfo } from "./qemu-img.js";

import { ImageCache } from "./cache.js";

export { ImageCache };

/** Pin the image `manifestDigest` for the VMI `uid` in the cache at `cacheDir` (a VMI may pin several). */
export async function pinImage(cacheDir: string, uid: string, manifestDigest: string): Promise<void> {
  await ImageCache.open(cacheDir).pin(uid, manifestDigest);
}
/** Drop the VMI `uid`'s pin of one image, or of all its images (idempotent). */
export async function unpinImage(cacheDir: string, uid: string, manifestDigest?: string): Promise<void> {
  await ImageCache.open(cacheDir).unpin(uid, manifestDigest);
}
/** Size-bounded LRU garbage collection of the cache (pinned and in-progress images are kept). */
export async function gcImages(cacheDir: string, maxBytes: number): Promise<{ removed: string[]; bytes: number }> {
  return ImageCache.open(cacheDir).gc({ maxBytes });
}

/** Circuit breakers per registry host (back-off after failures). */
export { type BreakerState, RegistryHealth } from "./breaker.js";
/** Build a containerDisk image from a disk file; push cached images to registries. */
export {
  type BuiltImage,
  buildContainerDisk,
  type PushOptions,
  type PushResult,
  pushImage,
  resolveCached,
} from "./build.js";
/** Credentials per registry host, parsed from a `.dockerconfigjson` Secret value or an auth file. */
/** The registry client and its HTTP layer (DataVolume imports stream a layer straight into a volume). */
export {
  type Credentials,
  type Descriptor,
  type FetchedManifest,
  parseDockerConfigJson,
  RegistryClient,
  type RegistryClientOptions,
  type RegistryCredential,
} from "./client.js";
/** Decompression by content; decompressor binaries as streams (DataVolume imports reuse them). */
export { type Compression, decodeLayerStream, detectCompression, toolDecode } from "./decompress.js";
/** Failure kinds and the ErrImagePull Status error (one cause per registry tried). */
export { errImagePull, type FailureKind, type PullAttempt, RegistryError, toRegistryError } from "./errors.js";
export { type HttpResponse, httpRequest, type TlsOptions } from "./http.js";
/** Progress display (bar on a TTY, log lines otherwise). */
export { type ProgressSink, progressFigures, progressSink, renderBar } from "./progress.js";
/** Image references. */
export { formatReference, type ImageReference, parseReference } from "./reference.js";
/** The registry list (containers-registries.conf(5) shape): parse from a string (ConfigMap data) or a file. */
export {
  emptyRegistriesConfig,
  type ImageSource,
  loadRegistriesConf,
  type MirrorEntry,
  parseRegistriesConf,
  type RegistriesConfig,
  type RegistryEntry,
  resolveSources,
} from "./registries-conf.js";
/** Streaming tar reading/writing (the reader only ever writes regular files under disk/ into its target). */
export { diskEntryName, extractDiskFiles, readTar, type TarHeader, tarStream } from "./tar.js";
/** Whether every registry of the list serves the same manifest digest for a reference. */
export { type SourceDigest, summarizeVerify, type VerifyResult, verifyImage } from "./verify.js";
