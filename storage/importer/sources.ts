// The importer's network sources. Each opens its source through the egress proxy (when the job has one) and hands
// the bytes to the sink (sink.ts), which writes, fsyncs and verifies the target.
// - http(s): one GET (redirects followed, at most 5), basic auth from the secretRef, the certConfigMap's CA bundle;
//   404/410 → SourceNotFound (fatal), anything else that fails (refused, timeout, 5xx, a body cut short) transient.
// - registry: the node's registry list for the image (failover in its order), the manifest's digest checked by the
//   client, the layer streamed: its sha256 is computed as it passes and checked against the manifest before the
//   import counts; the first regular file under disk/ goes straight into the sink (no scratch copy for raw).
//   Unknown everywhere → SourceNotFound (fatal); otherwise the last registry's failure, transient.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type http from "node:http";
import type https from "node:https";
import { Readable } from "node:stream";
import {
  decodeLayerStream,
  diskEntryName,
  type HttpResponse,
  httpRequest,
  parseReference,
  RegistryClient,
  type RegistryCredential,
  readTar,
  resolveSources,
  toRegistryError,
} from "../../images/index.js";
import type { Logger } from "../../lib/log.js";
import { egressAgent } from "./egress.js";
import type { HttpJobSource, RegistryJobSource, WorkerJob } from "./job.js";
import { fatal, ImportError, progressReporter, transient } from "./outcome.js";
import { pushSource, type SinkResult, writeImage } from "./sink.js";
import { cleanTarget } from "./target.js";

export async function importFrom(job: WorkerJob, log: Logger): Promise<SinkResult> {
  const progress = progressReporter(job.progressFile);
  try {
    if (job.source.kind === "http") return await importHttp(job, job.source, log, progress.update);
    if (job.source.kind === "registry") return await importRegistry(job, job.source, log, progress.update);
    throw fatal("InvalidSource", `source ${job.source.kind} is not imported here`);
  } finally {
    await progress.flush();
  }
}

type OnProgress = (done: number, total: number) => void;

/** Connection agents: through the pod's egress proxy when the job has one, else node's own. */
function agentFor(job: WorkerJob, opts: https.AgentOptions = {}) {
  const socket = job.egress?.socket;
  if (!socket) return undefined;
  return (scheme: "http:" | "https:", o: https.AgentOptions): http.Agent =>
    egressAgent(socket, scheme, { ...opts, ...o });
}

async function readCredential(file: string | undefined): Promise<{ username: string; password: string } | undefined> {
  if (!file) return undefined;
  return JSON.parse(await readFile(file, "utf8")) as { username: string; password: string };
}

/** Progress never shows 100% before the sink has verified (the DV says 100.0% on Succeeded). */
function capped(onProgress: OnProgress): OnProgress {
  return (done, total) => onProgress(Math.min(done, total * 0.99), total);
}

export async function importHttp(
  job: WorkerJob,
  src: HttpJobSource,
  log: Logger,
  onProgress: OnProgress,
): Promise<SinkResult> {
  const cred = await readCredential(src.authFile);
  const ca = src.caFile ? await readFile(src.caFile, "utf8") : undefined;
  const make = agentFor(job, ca ? { ca } : {});
  let url = new URL(src.url);
  let res: HttpResponse | undefined;
  for (let hop = 0; hop <= 5; hop++) {
    const headers: Record<string, string> = { "user-agent": "tsvirt-importer" };
    if (cred) headers["authorization"] = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString("base64")}`;
    const scheme = url.protocol as "http:" | "https:";
    const agent = make?.(scheme, { keepAlive: false });
    try {
      res = await httpRequest(url, {
        headers,
        ...(agent ? { agent } : {}),
        ...(ca ? { tls: { ca } } : {}),
        connectTimeoutMs: 15_000,
        stallTimeoutMs: 60_000,
      });
    } catch (e) {
      throw transient("Error", `GET ${url.href}: ${(e as Error).message}`);
    }
    const loc = res.headers.location;
    if (res.status >= 300 && res.status < 400 && loc) {
      res.body.resume();
      url = new URL(loc, url);
      log.info("redirected", { to: url.href });
      continue;
    }
    break;
  }
  if (!res) throw transient("Error", `GET ${src.url}: too many redirects`);
  if (res.status === 404 || res.status === 410) {
    res.body.resume();
    throw fatal("SourceNotFound", `GET ${url.href}: ${res.status} (not found)`);
  }
  if (res.status !== 200) {
    res.body.resume();
    throw transient("Error", `GET ${url.href}: HTTP ${res.status}`);
  }
  const length = Number(res.headers["content-length"] ?? Number.NaN);
  const total = Number.isSafeInteger(length) ? length : undefined;
  let received = 0;
  const body = (async function* () {
    try {
      for await (const c of res.body as AsyncIterable<Buffer>) {
        received += c.length;
        yield c;
      }
    } catch (e) {
      throw transient(
        "Error",
        `GET ${url.href}: the transfer broke off after ${received} bytes (${(e as Error).message})`,
      );
    }
    if (total !== undefined && received !== total) {
      throw transient("Error", `GET ${url.href}: the transfer ended after ${received} of ${total} bytes`);
    }
  })();
  const r = await writeImage(body, {
    target: job.target,
    scratchDir: job.scratchDir,
    ...(src.checksum ? { checksum: src.checksum } : {}),
    ...(total !== undefined ? { sourceBytes: total } : {}),
    onProgress: capped(onProgress),
  });
  log.info("http import verified", {
    bytes: r.bytes,
    format: r.format,
    compression: r.compression,
    sha256: r.sha256,
    scratchBytes: r.scratchBytes,
    fallback: r.fallback,
    ...r.timings,
  });
  return r;
}

export async function importRegistry(
  job: WorkerJob,
  src: RegistryJobSource,
  log: Logger,
  onProgress: OnProgress,
): Promise<SinkResult> {
  let ref: ReturnType<typeof parseReference>;
  let sources: ReturnType<typeof resolveSources>;
  try {
    ref = parseReference(src.image);
    sources = resolveSources(ref, src.registries);
  } catch (e) {
    throw fatal("InvalidSource", (e as Error).message);
  }
  const cred = await readCredential(src.authFile);
  const ca = src.caFile ? await readFile(src.caFile, "utf8") : undefined;
  const make = agentFor(job);
  const failures: string[] = [];
  let allNotFound = true;
  for (const s of sources) {
    const label = `${s.registry}/${s.repository}`;
    const credential: RegistryCredential | undefined = cred;
    const client = new RegistryClient({
      registry: s.registry,
      insecure: s.insecure,
      credential,
      ...(ca ? { tls: { ca } } : {}),
      ...(make ? { agent: make } : {}),
      connectTimeoutMs: 10_000,
      stallTimeoutMs: 60_000,
    });
    try {
      const r = await fromRegistry(client, s.repository, ref.digest ?? ref.tag ?? "latest", job, onProgress);
      log.info("registry import verified", {
        source: label,
        bytes: r.bytes,
        format: r.format,
        sha256: r.sha256,
        scratchBytes: r.scratchBytes,
        fallback: r.fallback,
        ...r.timings,
      });
      return r;
    } catch (e) {
      if (e instanceof ImportError && e.fatal) throw e;
      const re = e instanceof ImportError ? undefined : toRegistryError(e);
      if (re?.kind !== "notFound") allNotFound = false;
      failures.push(`${label}: ${(e as Error).message}`);
      log.warn("registry failed, trying the next", { source: label, err: (e as Error).message });
    } finally {
      client.close();
    }
  }
  const what = `image ${src.image}: ${failures.join("; ") || "no registry to try"}`;
  if (allNotFound && failures.length) throw fatal("SourceNotFound", `${what}`);
  throw transient("RegistryUnavailable", what);
}

/** One registry: the manifest, then its layers from the last until one holds a disk/ file, into the sink. */
async function fromRegistry(
  client: RegistryClient,
  repository: string,
  reference: string,
  job: WorkerJob,
  onProgress: OnProgress,
): Promise<SinkResult> {
  // The target is cleaned while the manifest and the blob's first bytes are on their way (the sink awaits it).
  const cleaning = cleanTarget(job.target, { durable: false });
  cleaning.catch(() => {}); // (handled: the sink awaits it, and its failure fails the import there)
  try {
    return await fromRegistryInto(client, repository, reference, job, onProgress, cleaning);
  } finally {
    await cleaning.catch(() => {}); // (nothing of it still running once this returns)
  }
}

async function fromRegistryInto(
  client: RegistryClient,
  repository: string,
  reference: string,
  job: WorkerJob,
  onProgress: OnProgress,
  cleaning: Promise<void>,
): Promise<SinkResult> {
  const man = await client.getManifest(repository, reference);
  const layers = [...man.manifest.layers].reverse();
  const total = layers.reduce((n, l) => n + l.size, 0);
  let done = 0;
  for (const layer of layers) {
    const res = await client.openBlob(repository, layer.digest);
    if (res.status !== 200) {
      res.body.resume();
      throw new Error(`blob ${layer.digest}: HTTP ${res.status}`);
    }
    const hash = createHash("sha256");
    let n = 0;
    const counted = Readable.from(
      (async function* () {
        for await (const c of res.body as AsyncIterable<Buffer>) {
          hash.update(c);
          n += c.length;
          done += c.length;
          onProgress(done, total);
          yield c;
        }
      })(),
    );
    const decoded = decodeLayerStream(counted);
    let result: SinkResult | undefined;
    await readTar(decoded as AsyncIterable<Buffer>, async (h, data) => {
      if (result || h.type !== "file" || diskEntryName(h.name) === undefined) return;
      const p = pushSource();
      const sink = writeImage(p.input, { target: job.target, scratchDir: job.scratchDir, targetClean: cleaning });
      sink.catch((e: Error) => p.fail(e));
      try {
        await data(p.write);
        p.end();
      } catch (e) {
        p.fail(e as Error);
        await sink.catch(() => {});
        throw e;
      }
      result = await sink;
    });
    // the rest of the blob (tar padding) still counts in its digest
    for await (const _ of decoded as AsyncIterable<Buffer>) {
      // drained
    }
    const got = `sha256:${hash.digest("hex")}`;
    if (got !== layer.digest || n !== layer.size) {
      throw new Error(`blob ${layer.digest}: received ${n} bytes with digest ${got}`);
    }
    if (result) return result;
  }
  throw fatal("NotADiskImage", `image ${repository}:${reference} has no file under /disk/`);
}
