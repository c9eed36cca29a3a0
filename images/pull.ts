// pullContainerDisk: from the registry list by priority, with failover, back-off, verification, a shared node
// cache and safe extraction. The node agent's entry point (it knows nothing of the API).
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { appendFile, mkdir, rename, rm, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Logger } from "../lib/log.js";
import { nullLogger } from "../lib/log.js";
import { RegistryHealth } from "./breaker.js";
import { type CachedDisk, ImageCache } from "./cache.js";
import {
  type Credentials,
  type Descriptor,
  type FetchedManifest,
  RegistryClient,
  type RegistryCredential,
} from "./client.js";
import { decodeLayerStream, openLayer } from "./decompress.js";
import { errImagePull, type PullAttempt, RegistryError, toRegistryError, tripsBreaker } from "./errors.js";
import type { TlsOptions } from "./http.js";
import { type DiskFormat, diskInfo } from "./qemu-img.js";
import { formatReference, type ImageReference, parseReference } from "./reference.js";
import { emptyRegistriesConfig, type ImageSource, type RegistriesConfig, resolveSources } from "./registries-conf.js";
import { type ExtractedFile, extractDiskFiles } from "./tar.js";

export type PullPolicy = "Always" | "IfNotPresent" | "Never";

export interface PullProgress {
  ref: string;
  phase: "resolving" | "downloading" | "extracting" | "done";
  /** `registry/repository` being used. */
  source?: string;
  completedBytes: number;
  totalBytes: number;
}

export interface PullOptions {
  /** The node's image cache directory. */
  cacheDir: string;
  registries?: RegistriesConfig;
  /** Per registry host (host[:port]). */
  credentials?: Credentials;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
  /** Default: IfNotPresent, or Always when the tag is `latest` (Kubernetes' rule). */
  pullPolicy?: PullPolicy;
  /** Registry health shared across pulls (default: one per process). */
  health?: RegistryHealth;
  tls?: TlsOptions;
  connectTimeoutMs?: number;
  stallTimeoutMs?: number;
  log?: Logger;
}

export interface PulledDisk {
  manifestDigest: string;
  diskPath: string;
  format: DiskFormat;
  virtualSize: number;
  /** Where the image came from (`registry/repository`), or undefined when served from the cache alone. */
  source?: string;
  /** Blob bytes this call downloaded. */
  downloadedBytes: number;
}

const defaultHealth = new RegistryHealth();

/** The process-wide registry health (circuit breakers) used when a pull names none. */
export function registryHealth(): RegistryHealth {
  return defaultHealth;
}

/** Kubernetes' default: Always for `:latest` (or no tag), else IfNotPresent. A digest reference is immutable. */
export function defaultPullPolicy(ref: ImageReference): PullPolicy {
  if (ref.digest) return "IfNotPresent";
  return ref.tag === undefined || ref.tag === "latest" ? "Always" : "IfNotPresent";
}

interface Flight {
  promise: Promise<PulledDisk>;
  ac: AbortController;
  waiters: number;
  listeners: Set<(p: PullProgress) => void>;
}
const flights = new Map<string, Flight>();

function abortError(): Error {
  return Object.assign(new Error("pull aborted"), { name: "AbortError", code: "ABORT_ERR" });
}

/**
 * Pulls a containerDisk image into the node cache and returns its extracted, verified disk. Tries the registries
 * of `registries` for the image in priority order, failing over on connection errors, 5xx, 429, timeouts, stalls
 * and digest mismatches; failed registries go into back-off. Concurrent pulls of one image share one download.
 * Throws a StatusError with reason `ErrImagePull` and one cause per registry tried.
 */
export async function pullContainerDisk(ref: string, opts: PullOptions): Promise<PulledDisk> {
  let parsed: ImageReference;
  try {
    parsed = parseReference(ref);
  } catch (e) {
    throw errImagePull(ref, [{ source: ref, kind: "protocol", message: (e as Error).message }]);
  }
  const cache = ImageCache.open(opts.cacheDir);
  const policy = opts.pullPolicy ?? defaultPullPolicy(parsed);
  const key = `${cache.root}\n${formatReference(parsed)}\n${policy}`;
  let f = flights.get(key);
  if (!f || f.ac.signal.aborted) {
    // (an aborted flight is still winding down: a new caller starts afresh instead of sharing its fate)
    const ac = new AbortController();
    const listeners = new Set<(p: PullProgress) => void>();
    const onProgress = (p: PullProgress): void => {
      for (const l of listeners) l(p);
    };
    const flight: Flight = { ac, waiters: 0, listeners, promise: Promise.resolve() as unknown as Promise<PulledDisk> };
    flight.promise = doPull(parsed, ref, policy, cache, { ...opts, signal: ac.signal, onProgress }).finally(() => {
      if (flights.get(key) === flight) flights.delete(key);
    });
    flight.promise.catch(() => {});
    flights.set(key, flight);
    f = flight;
  }
  const flight = f;
  flight.waiters++;
  if (opts.onProgress) flight.listeners.add(opts.onProgress);
  const signal = opts.signal;
  try {
    if (!signal) return await flight.promise;
    if (signal.aborted) throw abortError();
    return await new Promise<PulledDisk>((resolve, reject) => {
      const onAbort = (): void => reject(abortError());
      signal.addEventListener("abort", onAbort, { once: true });
      flight.promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  } finally {
    flight.waiters--;
    if (opts.onProgress) flight.listeners.delete(opts.onProgress);
    if (flight.waiters === 0 && signal?.aborted) flight.ac.abort();
  }
}

interface PullCtx extends PullOptions {
  signal: AbortSignal;
  onProgress: (p: PullProgress) => void;
}

async function doPull(
  parsed: ImageReference,
  refStr: string,
  policy: PullPolicy,
  cache: ImageCache,
  o: PullCtx,
): Promise<PulledDisk> {
  const log = (o.log ?? nullLogger).child({ image: refStr });
  const canonical = formatReference(parsed);
  await cache.init();
  // 1. The cache alone, when the policy allows it: no network request at all.
  if (policy !== "Always" || parsed.digest) {
    const digest = parsed.digest ?? (await cache.lookupRef(canonical));
    const disk = digest ? await cache.getDisk(digest) : undefined;
    if (disk) {
      o.onProgress({ ref: refStr, phase: "done", completedBytes: 0, totalBytes: 0 });
      return result(disk, undefined, 0);
    }
  }
  if (policy === "Never") {
    throw errImagePull(refStr, [
      { source: canonical, kind: "notFound", message: "not in the node cache and pullPolicy is Never" },
    ]);
  }
  const health = o.health ?? defaultHealth;
  let sources: ImageSource[];
  try {
    sources = resolveSources(parsed, o.registries ?? emptyRegistriesConfig());
  } catch (e) {
    throw errImagePull(refStr, [{ source: canonical, kind: "protocol", message: (e as Error).message }]);
  }
  const attempts: PullAttempt[] = [];
  let pinned: FetchedManifest | undefined;
  let downloaded = 0;
  let total = 0;
  let done = 0;
  let usedSource: string | undefined;
  let preExtracted: PreExtracted | undefined;

  const tryOne = async (src: ImageSource): Promise<boolean> => {
    const label = `${src.registry}/${src.repository}`;
    const client = new RegistryClient({
      registry: src.registry,
      insecure: src.insecure,
      credential: credentialFor(o.credentials, src.registry),
      ...(o.tls ? { tls: o.tls } : {}),
      ...(o.connectTimeoutMs !== undefined ? { connectTimeoutMs: o.connectTimeoutMs } : {}),
      ...(o.stallTimeoutMs !== undefined ? { stallTimeoutMs: o.stallTimeoutMs } : {}),
    });
    try {
      o.onProgress({ ref: refStr, phase: "resolving", source: label, completedBytes: done, totalBytes: total });
      if (!pinned) {
        // Fetched by tag once, then pinned to its digest for the rest of the pull (every registry).
        pinned = await client.getManifest(src.repository, parsed.digest ?? parsed.tag ?? "latest", o.signal);
        if (pinned.manifest.layers.length === 0) throw new RegistryError("protocol", `${label}: image has no layers`);
        log.info("resolved manifest", { source: label, digest: pinned.digest });
        if (await cache.getDisk(pinned.digest)) return true;
        const blobs = [pinned.manifest.config, ...pinned.manifest.layers];
        for (const b of blobs) if (!(await cache.hasBlob(b.digest))) total += b.size;
      }
      cache.active.set(pinned.digest, (cache.active.get(pinned.digest) ?? 0) + 1);
      const layers = pinned.manifest.layers;
      // A one-layer image (the containerDisk layout) is extracted while it downloads; the result is used only
      // once the blob's digest has been verified.
      let streaming: StreamExtraction | undefined;
      const only = layers.length === 1 ? layers[0]! : undefined;
      if (
        only &&
        !preExtracted &&
        !(await cache.hasBlob(only.digest)) &&
        !cache.partials.has(only.digest) &&
        !cache.blobFlights.has(only.digest)
      ) {
        streaming = startStreamExtraction(cache);
      }
      try {
        for (const b of [pinned.manifest.config, ...layers]) {
          downloaded += await ensureBlob(
            cache,
            client,
            src.repository,
            b,
            o.signal,
            (n) => {
              done += n;
              o.onProgress({
                ref: refStr,
                phase: "downloading",
                source: label,
                completedBytes: done,
                totalBytes: total,
              });
            },
            b === only ? streaming?.input : undefined,
          );
        }
        if (streaming) {
          if (!streaming.input.writableEnded) streaming.input.destroy(new Error("layer was not streamed"));
          preExtracted = await streaming.result.catch(() => undefined);
        }
      } catch (e) {
        if (streaming) {
          // destroy with an error: a stream destroyed after end() would leave its readers waiting
          streaming.input.destroy(new Error("download failed"));
          const r = await streaming.result.catch(() => undefined);
          if (r) await rm(r.staging, { recursive: true, force: true });
        }
        throw e;
      } finally {
        const n = (cache.active.get(pinned.digest) ?? 1) - 1;
        if (n <= 0) cache.active.delete(pinned.digest);
        else cache.active.set(pinned.digest, n);
      }
      return true;
    } finally {
      client.close();
    }
  };

  const order = sources.filter((s) => health.tryAcquire(s.registry));
  for (const s of sources) {
    if (!order.includes(s)) {
      const ms = health.remainingMs(s.registry);
      attempts.push({
        source: `${s.registry}/${s.repository}`,
        kind: "backOff",
        message: `skipped: in back-off for ${Math.ceil(ms / 1000)} s after a failure`,
      });
    }
  }
  // A pull never fails only because every registry is in back-off: then they are all tried anyway.
  const plan = order.length > 0 ? order : sources;
  let ok = false;
  const tried = new Set<ImageSource>();
  for (const src of plan) {
    const label = `${src.registry}/${src.repository}`;
    tried.add(src);
    try {
      ok = await tryOne(src);
      health.success(src.registry);
      usedSource = label;
      break;
    } catch (e) {
      const re = toRegistryError(e);
      if (re.kind === "aborted" || o.signal.aborted) {
        health.release(src.registry);
        throw abortError();
      }
      attempts.push({ source: label, kind: re.kind, message: re.message });
      if (tripsBreaker(re.kind)) health.failure(src.registry, re.retryAfterMs);
      else health.success(src.registry);
      log.warn("registry failed, trying the next", { source: label, kind: re.kind, err: re.message });
    }
  }
  for (const s of order) if (!tried.has(s)) health.release(s.registry);
  if (!ok || !pinned) throw errImagePull(refStr, attempts);
  const man = pinned;
  await cache.putManifest(man.digest, man.raw);
  o.onProgress({ ref: refStr, phase: "extracting", source: usedSource ?? "", completedBytes: done, totalBytes: total });
  let disk: CachedDisk;
  try {
    disk = await extractOnce(cache, man, preExtracted);
  } catch (e) {
    throw errImagePull(refStr, [
      ...attempts,
      { source: usedSource ?? canonical, kind: "protocol", message: (e as Error).message },
    ]);
  }
  if (!parsed.digest) await cache.recordRef(canonical, man.digest);
  o.onProgress({ ref: refStr, phase: "done", source: usedSource ?? "", completedBytes: done, totalBytes: total });
  return result(disk, usedSource, downloaded);
}

function result(d: CachedDisk, source: string | undefined, downloadedBytes: number): PulledDisk {
  const r: PulledDisk = {
    manifestDigest: d.manifestDigest,
    diskPath: d.diskPath,
    format: d.format,
    virtualSize: d.virtualSize,
    downloadedBytes,
  };
  if (source !== undefined) r.source = source;
  return r;
}

function credentialFor(creds: Credentials | undefined, host: string): RegistryCredential | undefined {
  return creds?.[host];
}

/** Downloads one blob into the cache unless present (shared with concurrent pulls). Returns bytes downloaded. */
async function ensureBlob(
  cache: ImageCache,
  client: RegistryClient,
  repository: string,
  desc: Descriptor,
  signal: AbortSignal,
  onBytes: (n: number) => void,
  tee?: Writable,
): Promise<number> {
  for (;;) {
    if (await cache.hasBlob(desc.digest)) return 0;
    const other = cache.blobFlights.get(desc.digest);
    if (!other) break;
    await other.catch(() => {}); // someone else's registry failing is not ours; look again
  }
  let n = 0;
  const p = downloadBlob(
    cache,
    client,
    repository,
    desc,
    signal,
    (k) => {
      n += k;
      onBytes(k);
    },
    tee,
  );
  cache.blobFlights.set(desc.digest, p);
  try {
    await p;
  } finally {
    cache.blobFlights.delete(desc.digest);
  }
  return n;
}

async function downloadBlob(
  cache: ImageCache,
  client: RegistryClient,
  repository: string,
  desc: Descriptor,
  signal: AbortSignal,
  onBytes: (n: number) => void,
  tee?: Writable,
): Promise<void> {
  const what = `blob ${client.registry}/${repository}@${desc.digest.slice(0, 19)}`;
  let part = cache.partials.get(desc.digest);
  const resumed = part !== undefined && part.bytes > 0;
  if (!part) {
    part = { path: cache.tempPath("blob"), hash: createHash("sha256"), bytes: 0 };
    cache.partials.set(desc.digest, part);
  }
  const fresh = async (): Promise<void> => {
    await truncate(part.path, 0).catch(() => {});
    part.hash = createHash("sha256");
    part.bytes = 0;
  };
  if (tee && part.bytes > 0) tee.destroy(new Error("resumed download")); // a streaming extraction needs the blob from its first byte
  const res = await client.openBlob(repository, desc.digest, part.bytes, signal);
  if (part.bytes > 0) {
    const cr = /^bytes (\d+)-/.exec(String(res.headers["content-range"] ?? ""));
    if (res.status !== 206 || !cr || Number(cr[1]) !== part.bytes) await fresh();
  }
  const hash = part.hash;
  const partRef = part;
  const feed = tee && !tee.destroyed ? tee : undefined;
  const ws = createWriteStream(part.path, { flags: "a", highWaterMark: 1 << 20 });
  let unwritten: Buffer | undefined;
  try {
    await pipeline(
      res.body,
      async function* (src: AsyncIterable<Buffer>) {
        // Socket reads (<= 64 KiB) are batched into ~1 MiB buffers: one hash call, file write, zlib thread-pool
        // round trip and tar reader turn per batch instead of per chunk. Bytes count (and are hashed) once their
        // batch goes out; a batch still held when the source fails is appended to the partial below.
        let held: Buffer[] = [];
        let heldBytes = 0;
        const take = (): Buffer => {
          const out = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes);
          held = [];
          heldBytes = 0;
          return out;
        };
        const accept = async (b: Buffer): Promise<void> => {
          partRef.bytes += b.length;
          hash.update(b);
          onBytes(b.length);
          if (feed && !feed.destroyed && !feed.write(b)) {
            await new Promise<void>((r) => {
              const done = (): void => {
                feed.off("drain", done);
                feed.off("close", done);
                r();
              };
              feed.on("drain", done);
              feed.on("close", done);
            });
          }
        };
        try {
          for await (const c of src) {
            if (partRef.bytes + heldBytes + c.length > desc.size)
              throw new RegistryError("digestMismatch", `${what}: more bytes than the ${desc.size} announced`);
            held.push(c);
            heldBytes += c.length;
            if (heldBytes >= BATCH_BYTES) {
              const out = take();
              await accept(out);
              yield out;
            }
          }
        } catch (e) {
          if (heldBytes > 0 && !(e instanceof RegistryError && e.kind === "digestMismatch")) unwritten = take();
          throw e;
        }
        if (heldBytes > 0) {
          const out = take();
          await accept(out);
          yield out;
        }
      },
      ws,
    );
    feed?.end();
  } catch (e) {
    feed?.destroy(e as Error);
    // Bytes counted and hashed but still buffered in the write stream were dropped with it: a partial is kept
    // for resuming only when the file holds exactly the bytes the hash covers.
    if (!ws.closed) await new Promise<void>((r) => ws.once("close", () => r()));
    let size = (await stat(part.path).catch(() => undefined))?.size;
    if (unwritten && size === part.bytes) {
      // the bytes received but not yet batched out: kept, so a failover resumes after them
      const add = unwritten;
      size = await appendFile(part.path, add).then(
        () => {
          hash.update(add);
          part.bytes += add.length;
          onBytes(add.length);
          return part.bytes;
        },
        () => undefined,
      );
    }
    if ((e instanceof RegistryError && e.kind === "digestMismatch") || size !== part.bytes) {
      cache.partials.delete(desc.digest);
      await rm(part.path, { force: true });
    }
    throw e;
  }
  if (part.bytes < desc.size)
    throw new RegistryError("unreachable", `${what}: connection closed after ${part.bytes} of ${desc.size} bytes`);
  const got = `sha256:${hash.digest("hex")}`;
  cache.partials.delete(desc.digest);
  const onDisk = (await stat(part.path).catch(() => undefined))?.size;
  if (got !== desc.digest || onDisk !== desc.size) {
    await rm(part.path, { force: true });
    // A resumed blob mixes two registries' bytes: the fault may be the first one's; retry this one whole, once.
    if (resumed) return downloadBlob(cache, client, repository, desc, signal, onBytes);
    throw new RegistryError("digestMismatch", `${what}: content has digest ${got.slice(0, 19)}…, discarded`);
  }
  await cache.commitBlob(desc.digest, part.path);
}

/** Batch size of downloaded bytes (hashed, written, fed to a streaming extraction). */
const BATCH_BYTES = 1 << 20;

interface PreExtracted {
  staging: string;
  found: ExtractedFile[];
}

interface StreamExtraction {
  input: PassThrough;
  result: Promise<PreExtracted>;
}

/** Extracts a layer from the bytes written to `input` as they arrive, into a staging directory. */
function startStreamExtraction(cache: ImageCache): StreamExtraction {
  const staging = cache.tempPath("disk");
  const files = join(staging, "files");
  const input = new PassThrough({ highWaterMark: 4 << 20 });
  input.on("error", () => {}); // its readers see the error; the writer checks `destroyed`
  const result = (async () => {
    try {
      await mkdir(files, { recursive: true });
      const found = await extractDiskFiles(decodeLayerStream(input) as AsyncIterable<Buffer>, files);
      if (!input.writableEnded) throw new Error("layer stream did not complete");
      return { staging, found };
    } catch (e) {
      await rm(staging, { recursive: true, force: true });
      throw e;
    } finally {
      // Whatever follows the tar's end is not needed: the download stops feeding us, the decoder is torn down.
      input.destroy(new Error("extraction finished"));
    }
  })();
  result.catch(() => {});
  return { input, result };
}

/** Extracts the disk of a manifest (once per digest per process) into the cache. */
async function extractOnce(
  cache: ImageCache,
  man: FetchedManifest,
  pre: PreExtracted | undefined,
): Promise<CachedDisk> {
  const have = await cache.getDisk(man.digest);
  if (have) {
    if (pre) await rm(pre.staging, { recursive: true, force: true });
    return have;
  }
  let p = cache.extractFlights.get(man.digest);
  if (!p) {
    p = extract(cache, man, pre).finally(() => cache.extractFlights.delete(man.digest));
    cache.extractFlights.set(man.digest, p);
  } else if (pre) await rm(pre.staging, { recursive: true, force: true });
  return p;
}

async function extract(cache: ImageCache, man: FetchedManifest, pre: PreExtracted | undefined): Promise<CachedDisk> {
  const staging = pre?.staging ?? cache.tempPath("disk");
  const files = join(staging, "files");
  try {
    let found: ExtractedFile[] = pre?.found ?? [];
    if (!pre) {
      await mkdir(files, { recursive: true });
      for (const layer of man.manifest.layers) {
        const { stream } = await openLayer(cache.blobPath(layer.digest));
        const got = await extractDiskFiles(stream as AsyncIterable<Buffer>, files);
        found = [...found.filter((f) => !got.some((g) => g.name === f.name)), ...got];
      }
    }
    if (found.length !== 1) {
      throw new RegistryError(
        "protocol",
        found.length === 0
          ? "image has no disk under /disk/"
          : `image has ${found.length} files under /disk/, want one`,
      );
    }
    const file = found[0]!;
    await rename(file.path, join(staging, "disk.img"));
    await rm(files, { recursive: true, force: true });
    const info = await diskInfo(join(staging, "disk.img"));
    return await cache.commitDisk(staging, {
      manifestDigest: man.digest,
      format: info.format,
      virtualSize: info.virtualSize,
      size: file.size,
      blobs: [man.manifest.config.digest, ...man.manifest.layers.map((l) => l.digest)],
    });
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}
