// `tsvirt uploadserver --job FILE`: reads the job the node agent wrote, serves uploads on <pod dir>/sockets/
// upload.sock until one is written and verified through the importer's sink, then writes the Succeeded line and
// exits 0. Refused or interrupted uploads mark nothing; killed, it leaves no line (transient for the DV controller).
import net from "node:net";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Logger } from "../../lib/log.js";
import {
  progressReporter,
  readJob,
  type WorkerJob,
  writeImage,
  writeOutcome,
  writeProgress,
} from "../importer/index.js";
import {
  startUploadServer,
  UPLOAD_CONNECTION,
  UPLOAD_LISTENING,
  type UploadConnectionMessage,
  type UploadSink,
} from "./server.js";

/** The socket the node agent bridges uploads to (handler/server.ts uploadSocket names the same place). */
export function uploadSocketPath(podDir: string): string {
  return join(podDir, "sockets", "upload.sock");
}

/** The importer's sink over the job's target, reporting progress in the job's progress file. */
export function jobSink(job: WorkerJob): UploadSink {
  return async (body, { expectedBytes }) => {
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

export async function runUploadServer(job: WorkerJob, podDir: string, log: Logger): Promise<number> {
  const srv = await startUploadServer({
    socketPath: uploadSocketPath(podDir),
    sink: jobSink(job),
    markSucceeded: async (r) => {
      await writeProgress(job.progressFile, "100.0%").catch(() => {});
      await writeOutcome(job.terminationLog, { outcome: "Succeeded", message: "Upload Complete", ...r });
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
  if (process.channel && process.send) {
    process.on("message", onMessage);
    process.send({ type: UPLOAD_LISTENING }, undefined, {}, () => {});
  }
  await srv.done;
  process.off("message", onMessage);
  if (process.connected) process.disconnect?.();
  await srv.close();
  return 0;
}

export async function runUploadServerCli(jobPath: string, log: Logger): Promise<number> {
  const job = await readJob(jobPath).catch((e: unknown) => void log.error("cannot read the job", { err: e }));
  if (!job) return 2;
  const owner = { namespace: job.owner.namespace, name: job.owner.name, uid: job.owner.uid };
  return runUploadServer(job, join(jobPath, ".."), log.child(owner));
}
