// The importer's network sources (http, registry): each turns its source into a byte stream for the sink.
import type { Logger } from "../../lib/log.js";
import type { WorkerJob } from "./job.js";
import { fatal } from "./outcome.js";

export async function importFrom(job: WorkerJob, _log: Logger): Promise<{ bytes: number; sha256: string }> {
  throw fatal("InvalidSource", `source ${job.source.kind} is not supported yet`);
}
