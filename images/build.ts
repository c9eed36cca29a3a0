// Builds a containerDisk image from a local disk file (one layer holding /disk/disk.qcow2 or /disk/disk.img,
// owner 107:107, mode 0440, fixed mtimes: the digest is reproducible) into the node cache, and pushes cached
// images to registries (monolithic or chunked uploads, cross-repository mount when the blob is on the registry).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { stat, writeFile } from "node:fs/promises";
import { PassThrough, type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { statusError } from "../lib/errors.js";
import type { Logger } from "../lib/log.js";
import { nullLogger } from "../lib/log.js";
import { ImageCache } from "./cache.js";
import {
  type Credentials,
  type ImageManifest,
  MT_OCI_CONFIG,
  MT_OCI_LAYER,
  MT_OCI_LAYER_GZIP,
  MT_OCI_LAYER_ZSTD,
  MT_OCI_MANIFEST,
  RegistryClient,
} from "./client.js";
import { toRegistryError } from "./errors.js";
import type { TlsOptions } from "./http.js";
import { diskInfo } from "./qemu-img.js";
import { formatReference, isDigest, parseReference } from "./reference.js";
import { emptyRegistriesConfig, type RegistriesConfig, resolveSources } from "./registries-conf.js";
import { tarStream } from "./tar.js";

export type LayerCompression = "gzip" | "zstd" | "none";

export interface BuildOptions {
  cacheDir: string;
  compression?: LayerCompression;
}

export interface BuiltImage {
  manifestDigest: string;
  manifest: ImageManifest;
  raw: Buffer;
  layerDigest: string;
  diffId: string;
}

/** The fixed mtime of every tar entry (2000-01-01T00:00:00Z): same disk in, same digest out. */
export const FIXED_MTIME = 946684800;

function counter(onChunk: (c: Buffer) => void): Transform {
  return new Transform({
    highWaterMark: 1 << 20,
    transform(c: Buffer, _e, cb) {
      onChunk(c);
      cb(null, c);
    },
  });
}

function zstdEncode(): { input: PassThrough; output: Readable; done: Promise<void> } {
  const child = spawn("zstd", ["-c", "-q", "-3", "-T1", "--no-progress"], { stdio: ["pipe", "pipe", "pipe"] });
  const input = new PassThrough();
  input.pipe(child.stdin);
  child.stderr.resume();
  const done = new Promise<void>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`zstd exited with ${code}`))));
  });
  return { input, output: child.stdout, done };
}

/** Builds the image of `diskPath` into the cache (blobs + manifest). The format comes from qemu-img, not the name. */
export async function buildContainerDisk(diskPath: string, opts: BuildOptions): Promise<BuiltImage> {
  const info = await diskInfo(diskPath);
  const st = await stat(diskPath);
  const cache = ImageCache.open(opts.cacheDir);
  await cache.init();
  const compression = opts.compression ?? "gzip";
  const name = info.format === "qcow2" ? "disk/disk.qcow2" : "disk/disk.img";
  const tar = tarStream([
    { name: "disk/", type: "dir", mode: 0o555, uid: 107, gid: 107, mtime: FIXED_MTIME },
    {
      name,
      type: "file",
      mode: 0o440,
      uid: 107,
      gid: 107,
      mtime: FIXED_MTIME,
      size: st.size,
      data: createReadStream(diskPath, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>,
    },
  ]);
  const diff = createHash("sha256");
  const blobHash = createHash("sha256");
  let blobSize = 0;
  const tmp = cache.tempPath("build");
  const sink = createWriteStream(tmp);
  const counted = counter((c) => {
    blobHash.update(c);
    blobSize += c.length;
  });
  const tarCounted = counter((c) => diff.update(c));
  if (compression === "gzip") {
    await pipeline(tar, tarCounted, createGzip({ level: 6 }), counted, sink);
  } else if (compression === "none") {
    await pipeline(tar, tarCounted, counted, sink);
  } else {
    const z = zstdEncode();
    await Promise.all([pipeline(tar, tarCounted, z.input), pipeline(z.output, counted, sink), z.done]);
  }
  const layerDigest = `sha256:${blobHash.digest("hex")}`;
  const diffId = `sha256:${diff.digest("hex")}`;
  await cache.commitBlob(layerDigest, tmp);
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { User: "107" },
      rootfs: { type: "layers", diff_ids: [diffId] },
    }),
  );
  const configDigest = `sha256:${createHash("sha256").update(config).digest("hex")}`;
  const ctmp = cache.tempPath("config");
  await writeFile(ctmp, config);
  await cache.commitBlob(configDigest, ctmp);
  const layerType =
    compression === "gzip" ? MT_OCI_LAYER_GZIP : compression === "zstd" ? MT_OCI_LAYER_ZSTD : MT_OCI_LAYER;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MT_OCI_MANIFEST,
    config: { mediaType: MT_OCI_CONFIG, digest: configDigest, size: config.length },
    layers: [{ mediaType: layerType, digest: layerDigest, size: blobSize }],
  };
  const raw = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = `sha256:${createHash("sha256").update(raw).digest("hex")}`;
  await cache.putManifest(manifestDigest, raw);
  return { manifestDigest, manifest, raw, layerDigest, diffId };
}

export interface PushOptions {
  cacheDir: string;
  registries?: RegistriesConfig;
  credentials?: Credentials;
  tls?: TlsOptions;
  signal?: AbortSignal;
  /** Blobs larger than this go up in chunks (PATCH … PUT). Default 64 MiB. */
  chunkSize?: number;
  onProgress?: (p: { ref: string; completedBytes: number; totalBytes: number }) => void;
  log?: Logger;
}

export interface PushResult {
  ref: string;
  manifestDigest: string;
  /** Blobs uploaded / mounted from another repository / already present. */
  uploaded: number;
  mounted: number;
  skipped: number;
}

/** Resolves a cache source (`sha256:…` manifest digest, or a reference pulled before) to its manifest digest. */
export async function resolveCached(cacheDir: string, source: string): Promise<string> {
  const cache = ImageCache.open(cacheDir);
  await cache.init();
  if (isDigest(source)) {
    if (await cache.getManifest(source)) return source;
    throw new Error(`image ${source} is not in the cache`);
  }
  const d = parseReference(source).digest ?? (await cache.lookupRef(formatReference(parseReference(source))));
  if (!d || !(await cache.getManifest(d))) throw new Error(`image ${source} is not in the cache`);
  return d;
}

/** Pushes the cached image `manifestDigest` to each reference (tag or digest). */
export async function pushImage(
  manifestDigest: string,
  refs: readonly string[],
  opts: PushOptions,
): Promise<PushResult[]> {
  const cache = ImageCache.open(opts.cacheDir);
  await cache.init();
  const log = opts.log ?? nullLogger;
  const raw = await cache.getManifest(manifestDigest);
  if (!raw) throw new Error(`image ${manifestDigest} is not in the cache`);
  const manifest = JSON.parse(raw.toString("utf8")) as ImageManifest;
  const mediaType = manifest.mediaType ?? MT_OCI_MANIFEST;
  const blobs = [manifest.config, ...manifest.layers];
  const pushedRepos = new Map<string, string[]>(); // registry → repositories already holding the blobs
  const out: PushResult[] = [];
  for (const refStr of refs) {
    const ref = parseReference(refStr);
    if (ref.digest && ref.digest !== manifestDigest)
      throw new Error(`${refStr}: digest does not match the image ${manifestDigest}`);
    const src = resolveSources(
      { registry: ref.registry, repository: ref.repository },
      opts.registries ?? emptyRegistriesConfig(),
    ).find((s) => s.registry === ref.registry);
    const client = new RegistryClient({
      registry: ref.registry,
      insecure: src?.insecure ?? false,
      credential: opts.credentials?.[ref.registry],
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
    const res: PushResult = { ref: refStr, manifestDigest, uploaded: 0, mounted: 0, skipped: 0 };
    try {
      const total = blobs.reduce((s, b) => s + b.size, 0);
      let done = 0;
      for (const b of blobs) {
        if (await client.blobExists(ref.repository, b.digest, opts.signal)) {
          res.skipped++;
        } else {
          const from = (pushedRepos.get(ref.registry) ?? []).find((r) => r !== ref.repository);
          if (from && (await client.mountBlob(ref.repository, b.digest, from, opts.signal))) res.mounted++;
          else {
            let cur = 0;
            await client.uploadBlob(ref.repository, b.digest, cache.blobPath(b.digest), b.size, {
              ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
              ...(opts.signal ? { signal: opts.signal } : {}),
              onBytes: (n) => {
                cur += n;
                opts.onProgress?.({ ref: refStr, completedBytes: done + cur, totalBytes: total });
              },
            });
            res.uploaded++;
          }
        }
        done += b.size;
        opts.onProgress?.({ ref: refStr, completedBytes: done, totalBytes: total });
      }
      await client.putManifest(ref.repository, ref.tag ?? manifestDigest, raw, mediaType, opts.signal);
      pushedRepos.set(ref.registry, [...(pushedRepos.get(ref.registry) ?? []), ref.repository]);
      log.info("pushed", {
        ref: refStr,
        digest: manifestDigest,
        uploaded: res.uploaded,
        mounted: res.mounted,
        skipped: res.skipped,
      });
    } catch (e) {
      const re = toRegistryError(e);
      throw statusError(502, "ErrImagePush", `Failed to push image "${refStr}": ${re.message}`, {
        name: refStr,
        causes: [{ type: re.kind, field: `${ref.registry}/${ref.repository}`, message: re.message }],
      });
    } finally {
      client.close();
    }
    out.push(res);
  }
  return out;
}
