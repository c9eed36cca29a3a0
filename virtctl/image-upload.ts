// virtctl image-upload dv|pvc NAME --image-path FILE --size SIZE: KubeVirt's verb. Checks the file is a disk image
// before creating anything, creates the DataVolume (source upload, immediate bind), waits for UploadReady, asks for an
// upload token (UploadTokenRequest), POSTs the file to the upload proxy (the API server's address unless told
// otherwise) with a progress bar on a terminal (plain lines otherwise), then waits for the DV to be Succeeded.
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { Transform } from "node:stream";
import { gunzipSync } from "node:zlib";
import type { Command } from "commander";
import {
  type Client,
  type ClientConfig,
  type KObject,
  type ResourceRef,
  resources,
  type WatchEvent,
  type WatchOptions,
} from "../client/index.js";
import { isStatusError } from "../lib/errors.js";
import { type Io, runVerb, type VerbContext } from "./context.js";

export const IMMEDIATE_BIND = "cdi.kubevirt.io/storage.bind.immediate.requested";

const UPLOAD_TOKEN_REQUESTS: ResourceRef = {
  group: "upload.cdi.kubevirt.io",
  version: "v1beta1",
  resource: "uploadtokenrequests",
  namespaced: true,
  kind: "UploadTokenRequest",
};

export interface UploadFlags {
  imagePath?: string;
  size?: string;
  storageClass?: string;
  accessMode?: string;
  volumeMode?: string;
  insecure?: boolean;
  uploadproxyUrl?: string;
  noCreate?: boolean;
  forceBind?: boolean;
  waitSecs: string;
}

export interface UploadTarget {
  kind: "dv" | "pvc";
  name: string;
}

/** Pure: the positional arguments (`dv NAME` or `pvc NAME`). */
export function parseTarget(kind: string, name: string | undefined): UploadTarget {
  const k = kind.toLowerCase();
  if (k !== "dv" && k !== "pvc") throw new Error(`unsupported resource type "${kind}": use dv or pvc`);
  if (!name) throw new Error(`expecting two args: ${k} NAME`);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63)
    throw new Error(`invalid name "${name}": a lowercase RFC 1123 label`);
  return { kind: k, name };
}

const QUANTITY = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/;
const MULT: Record<string, number> = {
  "": 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
};

/** Pure: a --size quantity in bytes. */
export function sizeBytes(q: string): number {
  const m = QUANTITY.exec(q);
  if (!m) throw new Error(`invalid --size "${q}": a quantity such as 512Mi or 10Gi`);
  const n = Math.ceil(Number(m[1]) * (MULT[m[2] ?? ""] ?? 1));
  if (!(n > 0)) throw new Error(`invalid --size "${q}": must be more than zero`);
  return n;
}

/** Pure: the flags checked together (what KubeVirt's virtctl refuses before it talks to the cluster). */
export function checkFlags(f: UploadFlags): { waitSecs: number; size?: number } {
  if (!f.imagePath) throw new Error("--image-path is required");
  const waitSecs = Number(f.waitSecs);
  if (!Number.isInteger(waitSecs) || waitSecs <= 0) throw new Error(`invalid --wait-secs "${f.waitSecs}"`);
  if (f.accessMode && !["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"].includes(f.accessMode))
    throw new Error(`invalid --access-mode "${f.accessMode}": ReadWriteOnce, ReadOnlyMany, ReadWriteMany`);
  if (f.volumeMode && !["filesystem", "block"].includes(f.volumeMode.toLowerCase()))
    throw new Error(`invalid --volume-mode "${f.volumeMode}": block or filesystem`);
  if (f.uploadproxyUrl && !/^https?:\/\/[^/]+/.test(f.uploadproxyUrl))
    throw new Error(`invalid --uploadproxy-url "${f.uploadproxyUrl}": an http(s) URL`);
  if (f.noCreate) return { waitSecs };
  if (!f.size) throw new Error("when creating a DataVolume, the size must be specified (--size)");
  return { waitSecs, size: sizeBytes(f.size) };
}

export interface ImageCheck {
  format: string;
  compression: string;
  /** The disk's size when the header tells it (raw file length, qcow2 virtual size); compressed: unknown. */
  virtualSize?: number;
  fileBytes: number;
}

/** A raw image is whole sectors (storage/importer's sink checks the same). */
const RAW_SECTOR = 512;

/** Reads the file's head: a disk image (raw, qcow2 & co, or gz/xz/zstd of one) or a clear error. */
export async function checkImage(path: string): Promise<ImageCheck> {
  const st = await stat(path).catch(() => {
    throw new Error(`cannot read --image-path ${path}: no such file`);
  });
  if (!st.isFile()) throw new Error(`--image-path ${path} is not a regular file`);
  if (st.size === 0) throw new Error(`${path} is empty, not a disk image`);
  // (storage/importer, and images/ under it, load only for this verb: not at every virtctl start)
  const { detectCompression, detectFormat } = await import("../storage/importer/index.js");
  const fh = await open(path, "r");
  const head = Buffer.alloc(Math.min(st.size, 64 << 10));
  try {
    await fh.read(head, 0, head.length, 0);
  } finally {
    await fh.close();
  }
  const compression = detectCompression(head);
  let body = head;
  if (compression === "gzip") {
    try {
      body = gunzipSync(head, { finishFlush: 2 /* Z_SYNC_FLUSH: a prefix decodes */ }).subarray(0, 4096);
    } catch {
      throw new Error(`${path} is not a valid gzip file`);
    }
  } else if (compression !== "none") {
    // xz/zstd: the upload server looks inside; the container itself is a known one
    return { format: "unknown", compression, fileBytes: st.size };
  }
  const format = detectFormat(body.subarray(0, 4096));
  if (format === "text")
    throw new Error(`${path} is not a disk image (raw, qcow2, vmdk, vhdx, vpc or vdi; optionally gz/xz/zstd)`);
  const out: ImageCheck = { format, compression, fileBytes: st.size };
  if (compression === "none" && format === "raw") {
    // the upload server's sink refuses it after the transfer; say so before anything is created
    if (st.size % RAW_SECTOR !== 0)
      throw new Error(
        `${path} is ${st.size} bytes, not a whole number of ${RAW_SECTOR}-byte sectors: not a disk image`,
      );
    out.virtualSize = st.size;
  }
  if (format === "qcow2" && body.length >= 32) out.virtualSize = Number(body.readBigUInt64BE(24));
  return out;
}

/** The upload proxy's URL: the flag, else CDIConfig status.uploadProxyURL, else the kubeconfig's server. */
export async function uploadProxyUrl(client: Client, config: ClientConfig, flag: string | undefined): Promise<string> {
  if (flag) return flag.replace(/\/+$/, "");
  try {
    const cfg = await client.get<{ metadata: { name?: string }; status?: { uploadProxyURL?: string } }>(
      resources.cdiconfigs,
      undefined,
      "config",
    );
    const u = cfg.status?.uploadProxyURL;
    if (u) return u.replace(/\/+$/, "");
  } catch (e) {
    if (!isStatusError(e) || (e.code !== 404 && e.code !== 403)) throw e;
  }
  return config.server.replace(/\/+$/, "");
}

interface Dv {
  metadata: { name?: string; namespace?: string; annotations?: Record<string, string> };
  spec?: { source?: { upload?: object } };
  status?: {
    phase?: string;
    progress?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/** Pure: the DataVolume the verb creates (CDI's shape; tsvirt always binds it at once, see --force-bind). */
export function uploadDataVolume(ns: string, name: string, f: UploadFlags, size: number): Record<string, unknown> {
  const storage: Record<string, unknown> = { resources: { requests: { storage: f.size ?? String(size) } } };
  if (f.accessMode) storage.accessModes = [f.accessMode];
  if (f.volumeMode) storage.volumeMode = f.volumeMode.toLowerCase() === "block" ? "Block" : "Filesystem";
  if (f.storageClass) storage.storageClassName = f.storageClass;
  return {
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: { name, namespace: ns, annotations: { [IMMEDIATE_BIND]: "true" } },
    spec: { source: { upload: {} }, storage },
  };
}

function failedMessage(dv: Dv): string {
  const running = dv.status?.conditions?.find((c) => c.type === "Running");
  return running?.message ? `${running.reason ?? "Failed"}: ${running.message}` : "the DataVolume failed";
}

/**
 * What KubeVirt's virtctl says when --wait-secs runs out before the upload pod is ready (its poll's "timed out
 * waiting for the condition"), with what tsvirt knows: nothing was sent and the DataVolume is kept.
 */
export function readyTimeout(ns: string, name: string, waitSecs: number, why: string): Error {
  return new Error(
    `timed out waiting for the condition: the upload pod of DataVolume ${ns}/${name} was not ready within ` +
      `--wait-secs ${waitSecs} (${why}); nothing was sent, the DataVolume is kept (upload later with --no-create)`,
  );
}

/** How long a watch that ended waits before it is opened again. */
const REWATCH_MS = 200;

/**
 * Follows a watch until the returned stop: one that ends (the server's timeout, a restart, 410 Expired) is opened
 * again after `rewatchMs`, from the current state (its ADDED events). stop() ends the watch and its timer.
 */
export function follow<T extends KObject>(
  client: Client,
  ref: ResourceRef,
  ns: string,
  opts: WatchOptions,
  onEvent: (ev: WatchEvent<T>) => void,
  rewatchMs = REWATCH_MS,
): () => void {
  let stopped = false;
  let handle: { stop(): void } | undefined;
  let timer: NodeJS.Timeout | undefined;
  const open = (): void => {
    if (stopped) return;
    const w = client.watch<T>(ref, ns, opts, (ev) => {
      if (!stopped) onEvent(ev);
    });
    handle = w;
    const again = (): void => {
      if (!stopped) timer = setTimeout(open, rewatchMs).unref();
    };
    w.done.then(again, again);
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    handle?.stop();
  };
}

/**
 * Waits for the DV's phase to satisfy `want`, on a watch of it (each change as it happens, no poll interval);
 * Failed or deleted rejects; at `deadline` (epoch ms) rejects with `timedOut(phase)`.
 */
export function waitForPhase(
  client: Client,
  ns: string,
  name: string,
  want: (phase: string) => boolean,
  deadline: number,
  timedOut: (phase: string) => Error,
): Promise<Dv> {
  return new Promise<Dv>((resolve, reject) => {
    let last = "Pending";
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop();
      fn();
    };
    const timer = setTimeout(() => settle(() => reject(timedOut(last))), Math.max(0, deadline - Date.now()));
    const stop = follow<Dv & { metadata: { name?: string } }>(
      client,
      resources.datavolumes,
      ns,
      { fieldSelector: `metadata.name=${name}` },
      (ev) => {
        const dv = ev.object;
        if (dv?.metadata?.name !== name) return;
        if (ev.type === "DELETED") return settle(() => reject(new Error(`DataVolume ${ns}/${name} was deleted`)));
        if (ev.type !== "ADDED" && ev.type !== "MODIFIED") return;
        const phase = dv.status?.phase ?? "";
        last = phase || "Pending";
        if (want(phase)) settle(() => resolve(dv));
        else if (phase === "Failed")
          settle(() => reject(new Error(`DataVolume ${ns}/${name} failed: ${failedMessage(dv)}`)));
      },
    );
  });
}

interface VolumeEvent {
  metadata: { name?: string; resourceVersion?: string };
  type?: string;
  reason?: string;
  message?: string;
  involvedObject?: { kind?: string; name?: string };
}

/** Pure: the line a Warning of the DataVolume or its claim prints, else undefined. */
export function volumeWarning(e: VolumeEvent, name: string): string | undefined {
  const o = e.involvedObject;
  if (e.type !== "Warning" || o?.name !== name) return undefined;
  if (o.kind !== "PersistentVolumeClaim" && o.kind !== "DataVolume") return undefined;
  return `Warning: ${o.kind} ${name}: ${e.reason}: ${e.message}`;
}

/**
 * Prints each new Warning of the DataVolume and its claim (a claim no node can hold, a class that does not fit) while
 * the command waits, from a watch of the namespace's events selected by involvedObject.name and type (the API server
 * selects; the line is checked here too): a wait that cannot end says why as it happens, not after --wait-secs. The
 * returned stop ends the watch (none is left to keep the process alive).
 */
export function warnWhileWaiting(client: Client, ns: string, name: string, io: Io, rewatchMs = REWATCH_MS): () => void {
  const seen = new Set<string>();
  return follow<VolumeEvent & { metadata: { name?: string } }>(
    client,
    resources.events,
    ns,
    { fieldSelector: `involvedObject.name=${name},type=Warning` },
    (ev) => {
      if (ev.type !== "ADDED" && ev.type !== "MODIFIED") return;
      // (a watch opened again replays what is there: each line once)
      const line = volumeWarning(ev.object, name);
      if (line && !seen.has(line)) {
        seen.add(line);
        io.err(`${line}\n`);
      }
    },
    rewatchMs,
  );
}

/** A fresh upload token for the DataVolume (UploadTokenRequest; it expires after a few minutes). */
async function uploadToken(client: Client, ns: string, name: string): Promise<string> {
  const tok = await client.create<{ metadata: { name?: string }; status?: { token?: string } }>(
    UPLOAD_TOKEN_REQUESTS,
    ns,
    {
      apiVersion: "upload.cdi.kubevirt.io/v1beta1",
      kind: "UploadTokenRequest",
      metadata: { name, namespace: ns },
      spec: { pvcName: name },
    } as never,
  );
  const token = tok.status?.token;
  if (!token) throw new Error("the server returned no upload token");
  return token;
}

/** Counts bytes on their way out (the bar's figures) without holding any. */
function meter(onBytes: (n: number) => void): Transform {
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

export interface Progress {
  update(done: number, total: number): void;
  finish(): void;
}

/** images/'s bar (virtctl loads images/ only for an upload). */
export type BarFormat = Pick<typeof import("../images/index.js"), "progressFigures" | "renderBar">;

/** A bar redrawn on a terminal, else a plain line every 2 s. */
export function progressDisplay(io: Io, tty: boolean, fmt: BarFormat, now: () => number = Date.now): Progress {
  const { progressFigures, renderBar } = fmt;
  const start = now();
  let last = 0;
  let done = 0;
  let total = 0;
  const line = (): string => renderBar("Uploading", progressFigures(done, total, now() - start), 30);
  return {
    update(d, t) {
      done = d;
      total = t;
      const n = now();
      if (n - last < (tty ? 200 : 2000)) return;
      last = n;
      io.out(tty ? `\r${line()}` : `${line()}\n`);
    },
    finish() {
      io.out(tty ? `\r${line()}\n` : `${line()}\n`);
    },
  };
}

interface PostResult {
  status: number;
  body: string;
  /** A redirect's Location (what was sent of the file before it, if anything, is dropped with the connection). */
  location?: string;
}

/** Asks the upload proxy to send us straight to the node agent (apiserver/upload/proxy.ts says when it does). */
const REDIRECT_HEADER = "x-tsvirt-upload-redirect";
/** How long a request that expects 100 Continue waits for it before it sends its body anyway (as curl does). */
const CONTINUE_WAIT_MS = 3_000;

interface PostOptions {
  /** Bearer token (the upload proxy's); none for the node agent's path a redirect named. */
  token?: string;
  /** Offer to follow a redirect: `Expect: 100-continue`, the file goes only after the go-ahead. */
  redirect?: boolean;
  /** How long to wait for 100 Continue before sending anyway (default CONTINUE_WAIT_MS). */
  continueWaitMs?: number;
  /**
   * With `redirect`: no go-ahead by this time (epoch ms) → the request is dropped with nothing sent, and the POST
   * rejects with GoAheadTimeout (instead of sending anyway after continueWaitMs).
   */
  goBy?: number;
  /** Called once the server said go (100 Continue, or a redirect to where the file goes). */
  onGo?: () => void;
}

/** The proxy gave no go-ahead by PostOptions.goBy: not a byte of the file was sent. */
export class GoAheadTimeout extends Error {}

function post(
  url: URL,
  file: string,
  size: number,
  tls: https.RequestOptions,
  p: Progress,
  o: PostOptions,
): Promise<PostResult> {
  return new Promise((resolve, reject) => {
    const mod = url.protocol === "https:" ? https : http;
    let sent = 0;
    let sending = false;
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "content-length": String(size),
    };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (o.redirect) {
      headers.expect = "100-continue";
      headers[REDIRECT_HEADER] = "allowed";
    }
    const req = mod.request(url, { method: "POST", headers, ...(url.protocol === "https:" ? tls : {}) }, (res) => {
      clearTimeout(waiting);
      const code = res.statusCode ?? 0;
      const location = res.headers.location;
      if (code === 307 && location) o.onGo?.();
      let body = "";
      res.on("data", (c: Buffer) => {
        if (body.length < 65536) body += c.toString();
      });
      res.on("end", () => {
        // an answer before the whole file went (a refusal, a redirect): stop sending the rest
        if (!req.writableFinished) {
          src?.destroy();
          req.destroy();
        }
        resolve({
          status: code,
          body,
          ...(code === 307 && location ? { location } : {}),
        });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    let src: ReturnType<typeof createReadStream> | undefined;
    const send = (): void => {
      if (sending) return;
      sending = true;
      clearTimeout(waiting);
      src = createReadStream(file, { highWaterMark: 1 << 20 });
      src.on("error", (e) => req.destroy(e));
      src
        .pipe(
          meter((n) => {
            sent += n;
            p.update(sent, size);
          }),
        )
        .pipe(req);
    };
    let waiting: NodeJS.Timeout | undefined;
    if (o.redirect) {
      req.on("continue", () => {
        o.onGo?.();
        send();
      });
      waiting =
        o.goBy !== undefined
          ? setTimeout(
              () => {
                if (sending) return;
                reject(new GoAheadTimeout("no go-ahead from the upload proxy in time"));
                req.destroy();
              },
              Math.max(0, o.goBy - Date.now()),
            )
          : setTimeout(send, o.continueWaitMs ?? CONTINUE_WAIT_MS);
      req.flushHeaders();
    } else send();
  });
}

/** Connection errors that mean nothing was sent: the redirect's target is not reachable from here. */
function unreachable(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? "";
  return ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EADDRNOTAVAIL"].includes(code);
}

/**
 * POSTs the file to the upload proxy; when it redirects to the node agent's upload path (plain HTTP on loopback),
 * straight there, and through the proxy after all when that address is not reachable from here.
 */
export async function uploadFile(
  base: string,
  token: string,
  file: string,
  size: number,
  tls: https.RequestOptions,
  p: Progress,
  first: Pick<PostOptions, "continueWaitMs" | "goBy" | "onGo"> = {},
): Promise<PostResult> {
  const url = new URL(`${base}/v1beta1/upload`);
  const r = await post(url, file, size, tls, p, { token, redirect: true, ...first });
  if (!r.location) return r;
  const direct = new URL(r.location, url);
  if (direct.protocol !== url.protocol) return post(url, file, size, tls, p, { token });
  return post(direct, file, size, tls, p, {}).catch((e: unknown) => {
    if (!unreachable(e)) throw e;
    return post(url, file, size, tls, p, { token });
  });
}

function statusMessage(r: PostResult): string {
  try {
    const s = JSON.parse(r.body) as { message?: string };
    if (s.message) return s.message;
  } catch {
    // not a Status
  }
  return r.body.trim().slice(0, 500) || `the upload proxy answered ${r.status}`;
}

export async function imageUpload(
  client: Client,
  config: ClientConfig,
  ns: string,
  target: UploadTarget,
  f: UploadFlags,
  io: Io,
  tty: boolean,
): Promise<void> {
  const { waitSecs, size } = checkFlags(f);
  const file = f.imagePath ?? "";
  // the file first: nothing is created for a file that is not a disk image, or one that cannot fit
  const img = await checkImage(file);
  if (size !== undefined && img.virtualSize !== undefined && img.virtualSize > size)
    throw new Error(
      `the image's size (${img.virtualSize} bytes) is larger than the requested --size ${f.size} (${size} bytes)`,
    );
  // (already loaded under storage/importer for checkImage; imported here for the bar's own names)
  const barFormat = import("../images/index.js");
  barFormat.catch(() => {}); // awaited before the upload
  const name = target.name;
  if (target.kind === "pvc") io.out(`tsvirt uploads through a DataVolume: PVC ${name} is DataVolume ${name}'s claim\n`);
  let dv: Dv | undefined;
  try {
    dv = await client.get<Dv & { metadata: { name?: string } }>(resources.datavolumes, ns, name);
  } catch (e) {
    if (!isStatusError(e) || e.code !== 404) throw e;
  }
  if (dv) {
    if (!dv.spec?.source?.upload) throw new Error(`DataVolume ${ns}/${name} exists and is not an upload target`);
    if (dv.status?.phase === "Succeeded")
      throw new Error(`DataVolume ${ns}/${name} has already been uploaded (phase Succeeded)`);
    io.out(`Using existing DataVolume ${ns}/${name} (an upload always starts over on a clean volume)\n`);
  } else {
    if (f.noCreate) throw new Error(`DataVolume ${ns}/${name} not found (--no-create)`);
    await client.create(resources.datavolumes, ns, uploadDataVolume(ns, name, f, size ?? 0) as never);
    io.out(`DataVolume ${ns}/${name} created\n`);
  }
  io.out(`Waiting for PVC ${name} upload pod to be ready...\n`);
  const stopWarnings = warnWhileWaiting(client, ns, name, io);
  try {
    // the proxy's URL and a token while the upload pod starts (neither needs it)
    const asked = Date.now();
    const early = Promise.all([uploadProxyUrl(client, config, f.uploadproxyUrl), uploadToken(client, ns, name)]);
    early.catch(() => {}); // awaited below
    const deadline = Date.now() + waitSecs * 1000;
    const timedOut = (why: string) => readyTimeout(ns, name, waitSecs, why);
    const waitReady = () =>
      waitForPhase(
        client,
        ns,
        name,
        (p) => p === "UploadReady",
        deadline,
        (p) => timedOut(`phase ${p}`),
      );
    const [base, earlyToken] = await early.catch(async (e: unknown) => {
      await waitReady(); // (a DV that never gets ready says so first)
      throw e;
    });
    let firstToken: string | undefined = earlyToken;
    // tsvirt's upload proxy is the API server itself (CDIConfig names its URL): the kubeconfig's TLS settings hold for
    // it unless the user named another proxy
    const sameServer = !f.uploadproxyUrl || base === config.server.replace(/\/+$/, "");
    const tls: https.RequestOptions = {
      rejectUnauthorized: !(f.insecure || (sameServer && config.insecureSkipTLSVerify)),
      ...(sameServer && config.ca ? { ca: config.ca } : {}),
    };
    // The first POST goes at once, with `Expect: 100-continue`: tsvirt's proxy holds it until the upload pod is
    // ready and then says go (no polling of the DV in between). Anything else (an older or other proxy, not ready,
    // not reachable) falls back to KubeVirt's way: wait for UploadReady, then upload.
    let ready = false;
    const said = (): void => {
      if (ready) return;
      ready = true;
      io.out("Pod now ready\n");
      io.out(`Uploading data to ${base}\n`);
    };
    for (let attempt = 0; ; attempt++) {
      let token = firstToken && Date.now() - asked < 60_000 ? firstToken : undefined;
      firstToken = undefined;
      if (attempt > 0 || !sameServer) {
        // (past the deadline, not even a last look: nothing goes after --wait-secs)
        if (!ready && Date.now() >= deadline) throw timedOut("the upload proxy never said go");
        await waitReady();
        said();
      }
      token ??= await uploadToken(client, ns, name);
      const bar = progressDisplay(io, tty, await barFormat);
      const early = attempt === 0 && sameServer;
      const r = await uploadFile(
        base,
        token,
        file,
        img.fileBytes,
        tls,
        bar,
        early ? { goBy: deadline, onGo: said } : {},
      ).catch((e: unknown) => {
        if (e instanceof GoAheadTimeout) throw timedOut("the upload proxy held the upload until then");
        if (early && !ready) return undefined; // not taken as it is: the usual way (a failure mid-way is the user's)
        // (the upload server serves the connection itself: killed, it leaves only a reset behind)
        throw new Error(
          `the upload was interrupted (${(e as Error).message}); nothing is marked: run the same command again, it starts over`,
        );
      });
      if (!r) continue;
      if (ready) bar.finish();
      if (r.status >= 200 && r.status < 300) break;
      // (only "not ready yet", answered before any byte is taken: a failure mid-way is the user's to retry)
      if (r.status === 503 && statusMessage(r).startsWith("upload pod not ready yet")) {
        if (Date.now() >= deadline) throw timedOut(statusMessage(r));
        if (ready) io.out(`${statusMessage(r)}; retrying\n`);
        continue;
      }
      throw new Error(statusMessage(r));
    }
    io.out(
      "Uploading data completed successfully, waiting for processing to complete, you can hit ctrl-c without interrupting the progress\n",
    );
    await waitForPhase(
      client,
      ns,
      name,
      (p) => p === "Succeeded",
      Date.now() + 24 * 3600 * 1000,
      (p) => new Error(`timed out waiting for processing to complete (DataVolume phase ${p})`),
    );
    io.out("Processing completed successfully\n");
    io.out(`Uploading ${file} completed successfully\n`);
  } finally {
    stopWarnings();
  }
}

export function registerImageUpload(program: Command, ctx: VerbContext, tty: () => boolean): void {
  program
    .command("image-upload")
    .argument("<kind>", "dv or pvc")
    .argument("[name]", "the DataVolume (or its PVC) to upload to")
    .description("Upload a VM image to a DataVolume/PersistentVolumeClaim.")
    .option("--image-path <path>", "path to the local VM image (raw, qcow2, ...; optionally gz/xz/zstd)")
    .option("--size <quantity>", "size of the DataVolume to create, e.g. 10Gi")
    .option("--storage-class <name>", "the storage class of the DataVolume's claim")
    .option("--access-mode <mode>", "the claim's access mode (ReadWriteOnce, ...)")
    .option("--volume-mode <mode>", "the claim's volume mode: block or filesystem")
    .option("--insecure", "allow an insecure (self-signed) upload proxy certificate")
    .option(
      "--uploadproxy-url <url>",
      "the upload proxy (default: CDIConfig status.uploadProxyURL, else the API server)",
    )
    .option("--no-create", "do not create the DataVolume: it must exist")
    .option(
      "--force-bind",
      "accepted for KubeVirt compatibility: tsvirt always asks for immediate binding (the upload needs its volume's node before any consumer exists)",
    )
    .option("--wait-secs <n>", "seconds to wait for the upload pod to be ready", "300")
    .action(async (kind: string, name: string | undefined, f: UploadFlags & { create?: boolean }, cmd: Command) => {
      const flags: UploadFlags = { ...f, noCreate: f.create === false };
      await runVerb(ctx, cmd, (s) =>
        imageUpload(s.client, s.config, s.namespace, parseTarget(kind, name), flags, ctx.io, tty()),
      );
    });
}
