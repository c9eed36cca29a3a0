// `tsvirt uploadserver --job FILE`: reads the job the node agent wrote, serves uploads on <pod dir>/sockets/
// upload.sock until one is written and verified through the importer's sink, then writes the Succeeded line and
// exits 0. Refused or interrupted uploads mark nothing; killed, it leaves no line (transient for the DV controller).
// It listens (and says so) before it loads the importer's code (storage/importer, images/: ~40–60 ms here).
import { readFile } from "node:fs/promises";
import net from "node:net";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "../../lib/log.js";
import type { WorkerJob } from "../importer/index.js";
import {
  startUploadServer,
  UPLOAD_CONNECTION,
  UPLOAD_LISTENING,
  type UploadConnectionMessage,
  type UploadSink,
} from "./server.js";

/** storage/importer (the sink, images/ under it): loaded when first needed, after the server listens. */
const importer = () => import("../importer/index.js");

/** The socket the node agent bridges uploads to (handler/server.ts uploadSocket names the same place). */
export function uploadSocketPath(podDir: string): string {
  return join(podDir, "sockets", "upload.sock");
}

/** The importer's sink over the job's target, reporting progress in the job's progress file. */
export function jobSink(job: WorkerJob): UploadSink {
  return async (body, { expectedBytes }) => {
    const { progressReporter, writeImage } = await importer();
    const progress = progressReporter(job.progressFile);
    try {
      const r = await writeImage(body as Readable & AsyncIterable<Buffer>, {
        target: job.target,
        scratchDir: job.scratchDir,
        ...(expectedBytes !== undefined ? { sourceBytes: expectedBytes } : {}),
        onProgress: (done, total) => progress.update(done, total),
      });
      return { bytes: r.bytes, sha256: r.sha256 };
    } finally {
      await progress.flush();
    }
  };
}

/**
 * Listens first, then loads the importer's code and checks the job (readJob): the pod is Ready (the client told to
 * send) without waiting for that code, which loads while the client's connection makes its way here. A job that
 * does not check out ends the process with 2 (the pod fails; the DV controller makes another).
 */
export async function runUploadServer(jobPath: string, log: Logger): Promise<number> {
  let loading: Promise<WorkerJob> | undefined;
  const job = (): Promise<WorkerJob> => {
    loading ??= importer().then((m) => m.readJob(jobPath));
    return loading;
  };
  const srv = await startUploadServer({
    socketPath: uploadSocketPath(join(jobPath, "..")),
    sink: async (body, o) => jobSink(await job())(body, o),
    markSucceeded: async (r) => {
      const [{ writeOutcome, writeProgress }, j] = await Promise.all([importer(), job()]);
      await writeProgress(j.progressFile, "100.0%").catch(() => {});
      await writeOutcome(j.terminationLog, { outcome: "Succeeded", message: "Upload Complete", ...r });
    },
    log,
  });
  // The agent's channel (when it spawned this process with one): connections handed over, and the word that this
  // server listens (the pod is Ready at once, without the agent's probe loop).
  const onMessage = (m: unknown, handle: unknown): void => {
    const msg = m as UploadConnectionMessage;
    if (msg?.type !== UPLOAD_CONNECTION || !(handle instanceof net.Socket)) return;
    srv.adopt(handle, Buffer.from(typeof msg.head === "string" ? msg.head : "", "base64"));
  };
  const said = new Promise<void>((resolve) => {
    if (!process.channel || !process.send) return resolve();
    process.on("message", onMessage);
    process.send({ type: UPLOAD_LISTENING }, undefined, {}, () => resolve());
  });
  await said;
  const bad = await job().then(
    () => undefined,
    (e: unknown) => e,
  );
  if (bad === undefined) await srv.done;
  else log.error("cannot read the job", { err: bad });
  process.off("message", onMessage);
  if (process.connected) process.disconnect?.();
  await srv.close();
  return bad === undefined ? 0 : 2;
}

export async function runUploadServerCli(jobPath: string, log: Logger): Promise<number> {
  // (the owner, for the log lines; readJob checks the whole job once the server listens)
  const owner = await readFile(jobPath, "utf8")
    .then((t) => (JSON.parse(t) as Partial<WorkerJob>).owner)
    .catch((e: unknown) => void log.error("cannot read the job", { err: e }));
  if (!owner) return 2;
  return runUploadServer(jobPath, log.child({ namespace: owner.namespace, name: owner.name, uid: owner.uid }));
}
