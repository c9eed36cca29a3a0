// `tsvirt importer --job FILE`: reads the job the node agent wrote, imports its source into the target, and ends
// with ONE termination line: Succeeded only after the data is written, fsynced and verified (exit 0), else Failed
// with fatal true/false (exit 1). Killed mid-way it leaves no line: the DV controller takes that as transient.
import { createHash } from "node:crypto";
import { type Logger, nullLogger } from "../../lib/log.js";
import { readJob, type WorkerJob } from "./job.js";
import { failedOutcome, fatal, type Outcome, writeOutcome, writeProgress } from "./outcome.js";
import { cleanTarget } from "./target.js";

const EMPTY_SHA256 = createHash("sha256").digest("hex");

/** Runs one job; returns the outcome it wrote. */
export async function runImport(job: WorkerJob, log: Logger = nullLogger): Promise<Outcome> {
  let out: Outcome;
  try {
    out = await importOnce(job, log);
  } catch (e) {
    out = failedOutcome(e);
    log.error("import failed", { reason: out.outcome === "Failed" ? out.reason : "", err: e });
  }
  if (out.outcome === "Succeeded") await writeProgress(job.progressFile, "100.0%").catch(() => {});
  await writeOutcome(job.terminationLog, out);
  return out;
}

async function importOnce(job: WorkerJob, log: Logger): Promise<Outcome> {
  const src = job.source;
  log.info("import starting", { source: src.kind, target: job.target.path, sizeBytes: job.target.sizeBytes });
  switch (src.kind) {
    case "blank":
      // A blank disk is a clean target: nothing written, so nothing to verify beyond the clean-up itself.
      await cleanTarget(job.target);
      return { outcome: "Succeeded", message: "Import Complete", bytes: 0, sha256: EMPTY_SHA256 };
    case "invalid":
      throw fatal("InvalidSource", src.message);
    case "pvc": {
      const { cloneInto } = await import("../clone/target.js");
      const r = await cloneInto(job, src, log);
      return { outcome: "Succeeded", message: "Clone Complete", bytes: r.bytes, sha256: r.sha256 };
    }
    default: {
      const { importFrom } = await import("./sources.js");
      const r = await importFrom(job, log);
      return { outcome: "Succeeded", message: "Import Complete", bytes: r.bytes, sha256: r.sha256 };
    }
  }
}

export async function runImporterCli(jobPath: string, log: Logger): Promise<number> {
  let job: WorkerJob;
  try {
    job = await readJob(jobPath);
  } catch (e) {
    log.error("cannot read the job", { err: e });
    return 2;
  }
  const out = await runImport(
    job,
    log.child({ namespace: job.owner.namespace, name: job.owner.name, uid: job.owner.uid }),
  );
  return out.outcome === "Succeeded" ? 0 : 1;
}
