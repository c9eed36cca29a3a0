// The clone target's side of `tsvirt importer` (job source kind "pvc"): the local source read directly, or the
// remote clone-source pod's stream received; progress to the pod's progress file.
import type { Logger } from "../../lib/log.js";
import { fatal, type PvcJobSource, progressReporter, type WorkerJob } from "../importer/index.js";
import { type CopyResult, cloneLocal } from "./sparse.js";
import { receiveVolume } from "./stream.js";

export async function cloneInto(job: WorkerJob, src: PvcJobSource, log: Logger): Promise<CopyResult> {
  const progress = progressReporter(job.progressFile);
  const onProgress = (done: number, total: number) => progress.update(done, total);
  let r: CopyResult;
  try {
    if (src.local) {
      log.info("cloning from a volume of this node", { source: src.local.path, target: job.target.path });
      r = await cloneLocal(src.local, job.target, onProgress);
    } else if (src.remote) {
      log.info("cloning from a clone-source pod", { host: src.remote.host, port: src.remote.port });
      r = await receiveVolume({ ...src.remote, target: job.target, onProgress });
    } else {
      throw fatal("InvalidSource", "the clone job names neither a local nor a remote source");
    }
  } finally {
    await progress.flush();
  }
  log.info("clone verified", { bytes: r.bytes, written: r.written, sha256: r.sha256 });
  return r;
}
