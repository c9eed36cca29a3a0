// `tsvirt clonesource --job FILE`: the clone-source pod's process. Serves the source volume on the pod's IP to the
// target DV's importer (stream.ts), its newest connection, until the DV controller deletes the pod: SIGTERM drops
// every connection and exits at once (a retry waits for this pod to be gone). Writes `<pod dir>/ready` once
// listening (the node agent's readiness probe reads it). No API access.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../lib/log.js";
import { failedOutcome, writeOutcome } from "../importer/index.js";
import { CLONE_PORT, serveVolume } from "./stream.js";

export const CLONE_SOURCE_READY = "ready";

export interface CloneSourceJob {
  version: 1;
  kind: "clonesource";
  /** The target DV (log lines only). */
  owner: { namespace: string; name: string; uid: string };
  source: { path: string; block: boolean };
  /** What a client must present: the target DV's uid. */
  token: string;
  port: number;
  terminationLog: string;
}

export async function readCloneSourceJob(path: string): Promise<CloneSourceJob> {
  const job = JSON.parse(await readFile(path, "utf8")) as CloneSourceJob;
  if (job?.version !== 1 || job.kind !== "clonesource" || !job.source?.path || !job.token) {
    throw new Error(`${path}: not a version 1 clone-source job`);
  }
  return job;
}

/** The ready marker of a clone-source pod's directory. */
export function cloneSourceReadyPath(podDir: string): string {
  return join(podDir, CLONE_SOURCE_READY);
}

export async function runCloneSourceCli(jobPath: string, podDir: string, log: Logger): Promise<number> {
  let job: CloneSourceJob;
  try {
    job = await readCloneSourceJob(jobPath);
  } catch (e) {
    log.error("cannot read the job", { err: e });
    return 2;
  }
  const l = log.child({ namespace: job.owner.namespace, name: job.owner.name, uid: job.owner.uid });
  const ready = cloneSourceReadyPath(podDir);
  await rm(ready, { force: true });
  try {
    const server = await serveVolume({
      source: job.source,
      token: job.token,
      port: job.port || CLONE_PORT,
      log: (msg, fields) => l.info(msg, fields),
    });
    await writeFile(ready, "");
    l.info("serving the clone source", { source: job.source.path, port: job.port || CLONE_PORT });
    await new Promise<void>((resolve) => {
      const stop = () => void server.close().then(resolve);
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    return 0;
  } catch (e) {
    l.error("the clone source cannot serve", { err: e });
    await writeOutcome(job.terminationLog, failedOutcome(e));
    return 1;
  }
}
