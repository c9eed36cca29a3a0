// What the node agent serves a running worker pod besides its process: the egress proxy (egress.ts) and the
// progress relay (<pod dir>/progress → the pod's annotation cdi.kubevirt.io/storage.progress, at most once a second,
// only on change, and once more when the pod ends). Crash-only: started from the shape's command() before the
// worker starts, and again from the pod cache for a pod still running after an agent restart (its job.json says
// what to allow); stopped when the pod ends or goes.
import type { ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { isStatusError } from "../../lib/errors.js";
import { type Logger, nullLogger } from "../../lib/log.js";
import type { WorkerJob } from "../../storage/importer/index.js";
import { type ApiClient, type Pod, refs } from "../ports.js";
import { type EgressProxy, serveEgress, serveEgressChannel } from "./egress.js";
import { workerPaths } from "./job.js";
import { serveUploadChannel, type UploadChannel } from "./upload.js";

export const PROGRESS_ANNOTATION = "cdi.kubevirt.io/storage.progress";

/** Pure: the pod with its progress annotation set to `progress`, or undefined when it already says so. */
export function withProgress(pod: Pod, progress: string): Pod | undefined {
  if (pod.metadata?.annotations?.[PROGRESS_ANNOTATION] === progress) return undefined;
  return {
    ...pod,
    metadata: { ...pod.metadata, annotations: { ...pod.metadata?.annotations, [PROGRESS_ANNOTATION]: progress } },
  };
}

/** Pure: a progress file's text as the annotation carries it ("45.2%"), or undefined when it is not one. */
export function progressText(text: string): string | undefined {
  const t = text.trim();
  return /^\d{1,3}(\.\d)?%$/.test(t) ? t : undefined;
}

interface Served {
  podDir: string;
  egress?: Promise<EgressProxy | undefined>;
  timer: NodeJS.Timeout;
  last?: string;
}

export interface WorkerServicesOptions {
  api: Pick<ApiClient, "update">;
  /** The latest cached pod by uid. */
  getPod: (uid: string) => Pod | undefined;
  relayEveryMs?: number;
  /** Called when a worker pod's readiness changed by itself (an upload server said it listens), by its pod dir. */
  onReady?: (podDir: string) => void;
  log?: Logger;
}

export class WorkerServices {
  readonly #o: WorkerServicesOptions;
  readonly #served = new Map<string, Served>();
  /** Upload servers' channels by pod dir, while they are connected. */
  readonly #uploads = new Map<string, UploadChannel>();
  readonly #log: Logger;

  constructor(o: WorkerServicesOptions) {
    this.#o = o;
    this.#log = (o.log ?? nullLogger).child({ component: "worker-services" });
  }

  /** Starts the pod's egress proxy (when its job has one) and progress relay; idempotent. */
  async ensure(podUid: string, podDir: string, job: WorkerJob): Promise<void> {
    if (this.#served.has(podUid)) {
      await this.#served.get(podUid)?.egress;
      return;
    }
    const timer = setInterval(() => void this.relay(podUid), this.#o.relayEveryMs ?? 1_000);
    timer.unref();
    const s: Served = { podDir, timer };
    if (job.egress) {
      s.egress = serveEgress(job.egress.socket, job.egress.allow, (msg, f) =>
        this.#log.warn(msg, { podUid, ...f }),
      ).catch((e: unknown) => {
        this.#log.error("egress proxy failed to start", { podUid, err: e });
        return undefined;
      });
    }
    this.#served.set(podUid, s);
    await s.egress;
  }

  /** The pod command's `channel`: the worker's connections handed over on its IPC channel (egress.ts). */
  egressChannel(podUid: string, allow: readonly string[]): (child: ChildProcess) => void {
    return (child) => serveEgressChannel(child, allow, (msg, f) => this.#log.warn(msg, { podUid, ...f }));
  }

  /** The upload pod command's `channel`: connections handed over to the upload server (upload.ts). */
  uploadChannel(podDir: string): (child: ChildProcess) => void {
    return (child) => {
      const ch = serveUploadChannel(child, () => this.#o.onReady?.(podDir));
      this.#uploads.set(podDir, ch);
      child.once("disconnect", () => {
        if (this.#uploads.get(podDir) === ch) this.#uploads.delete(podDir);
      });
    };
  }

  /** The upload server in `podDir` said on its channel that it listens. */
  uploadListening(podDir: string): boolean {
    return this.#uploads.get(podDir)?.listening ?? false;
  }

  /** How to hand a connection to the upload server in `podDir`, when it listens on a channel (handler/server.ts). */
  uploadHandoff(podDir: string): UploadChannel["handOver"] | undefined {
    const ch = this.#uploads.get(podDir);
    return ch?.listening ? ch.handOver : undefined;
  }

  /**
   * Level-triggered from the pod cache: a running worker pod gets its services (after an agent restart: from its
   * job.json); a pod that ended or went loses them (after one last progress relay).
   */
  async sync(podUid: string, podDir: string | undefined): Promise<void> {
    const pod = this.#o.getPod(podUid);
    const phase = pod?.status?.phase;
    const done = !pod || !podDir || phase === "Succeeded" || phase === "Failed" || !!pod.metadata?.deletionTimestamp;
    if (done) return this.stop(podUid);
    if (this.#served.has(podUid) || phase !== "Running") return;
    const job = await readFile(workerPaths(podDir).job, "utf8").then(
      (t) => JSON.parse(t) as WorkerJob,
      () => undefined,
    );
    if (job) await this.ensure(podUid, podDir, job);
  }

  async stop(podUid: string): Promise<void> {
    const s = this.#served.get(podUid);
    if (!s) return;
    this.#served.delete(podUid);
    clearInterval(s.timer);
    await this.relay(podUid, s).catch(() => {});
    await (await s.egress)?.close();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#served.keys()].map((u) => this.stop(u)));
  }

  /** Copies the progress file to the pod's annotation when it changed. */
  async relay(podUid: string, s = this.#served.get(podUid)): Promise<void> {
    if (!s) return;
    const text = progressText(await readFile(workerPaths(s.podDir).progress, "utf8").catch(() => ""));
    if (!text || text === s.last) return;
    const pod = this.#o.getPod(podUid);
    if (!pod) return;
    const next = withProgress(pod, text);
    if (!next) {
      s.last = text;
      return;
    }
    try {
      await this.#o.api.update(refs.pods, next);
      s.last = text;
    } catch (e) {
      // A newer pod on its way through the cache (409/404), or the API server away: the next tick tries again. Never
      // thrown: the interval calls this unawaited, and a rejection there ended the agent whenever the API went down.
      if (!(isStatusError(e) && (e.code === 409 || e.code === 404))) {
        this.#log.warn("progress relay failed; retried", { podUid, err: e });
      }
    }
  }
}
