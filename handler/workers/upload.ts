// The upload pod shape (label cdi.kubevirt.io=cdi-upload-server, controller owner a DataVolume): resolves the DV's
// target like the importer's (handler/workers/job.ts), writes job.json with an upload source, and runs
// `tsvirt uploadserver --job <pod dir>/job.json`. Ready once the upload server answers on its socket: the DV then
// shows UploadReady and the upload proxy streams to it (handler/server.ts bridges to that socket).
import { request } from "node:http";
import { isStatusError, statusError } from "../../lib/errors.js";
import { checkUploadTicket, UPLOAD_TICKET_ANNOTATION } from "../../lib/upload-ticket.js";
import type { WorkerJob } from "../../storage/importer/index.js";
import type { PodShape } from "../pod-shapes.js";
import { type ApiClient, type Pod, refs } from "../ports.js";
import { uploadSocket } from "../server.js";
import type { WorkerShapeDeps } from "./importer.js";
import { workerArgv } from "./importer.js";
import {
  DATA_VOLUME_NAME,
  matchDvWorker,
  ownerDataVolume,
  podClaim,
  resolveTarget,
  workerPaths,
  writeJob,
} from "./job.js";

export const UPLOAD_ROLE = "cdi-upload-server";

/** Readiness probe: GET /healthz on the upload server's socket answers 200 (bounded by `timeoutMs`). */
export function probeUploadServer(socketPath: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/healthz", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(false));
    req.end();
  });
}

/**
 * Checks and consumes the one-time ticket the API server's upload proxy put on the upload pod: the record is removed
 * with a resourceVersion precondition, so of two uses (or a use racing a newer ticket) only one wins, also across an
 * agent restart. Rejects with 401 (no/bad/used/expired ticket), 404 (no such upload pod).
 */
export async function claimUploadTicket(
  api: ApiClient,
  ns: string,
  name: string,
  ticket: string | null,
  now: () => number = Date.now,
): Promise<void> {
  for (let i = 0; ; i++) {
    const pod = await api.get<Pod>(refs.pods, ns, name);
    if (pod.metadata.labels?.["cdi.kubevirt.io"] !== UPLOAD_ROLE)
      throw statusError(404, "NotFound", `pod "${name}" is not an upload server`);
    const why = checkUploadTicket(pod.metadata.annotations?.[UPLOAD_TICKET_ANNOTATION], ticket, now());
    if (why) throw statusError(401, "Unauthorized", `${why}: ask the API server's upload proxy again`);
    try {
      const annotations = { ...pod.metadata.annotations };
      delete annotations[UPLOAD_TICKET_ANNOTATION];
      // (a PUT carries the resourceVersion read: the precondition)
      await api.update<Pod>(refs.pods, { ...pod, metadata: { ...pod.metadata, annotations } });
      return;
    } catch (e) {
      // the pod changed meanwhile (its status, or a newer ticket): look again
      if (!isStatusError(e) || e.status.code !== 409 || i >= 4) throw e;
    }
  }
}

export function uploadShape(d: WorkerShapeDeps): PodShape {
  return {
    name: "cdi-upload-server",
    match: (pod) => matchDvWorker(pod, UPLOAD_ROLE),
    async command(ownerUid, podDir, pod) {
      const dv = await ownerDataVolume(d.api, pod, ownerUid);
      const ns = dv.metadata.namespace ?? "default";
      const name = dv.metadata.name ?? "";
      const target = await resolveTarget(d, ns, podClaim(pod, DATA_VOLUME_NAME, name), name);
      const p = workerPaths(podDir);
      const job: WorkerJob = {
        version: 1,
        owner: { namespace: ns, name, uid: ownerUid },
        target,
        source: { kind: "upload" },
        progressFile: p.progress,
        terminationLog: p.terminationLog,
        scratchDir: p.scratch,
      };
      const jobPath = await writeJob(podDir, job);
      // (no egress: the bytes come in through the node agent; the progress relay follows the pod)
      await d.services.ensure(pod.metadata?.uid ?? "", podDir, job);
      return { argv: workerArgv(d, "uploadserver", jobPath) };
    },
    // the bytes come in on the pod dir's unix socket and nothing goes out: no veth, no VM binding to make before
    // the pod is Running (what held UploadReady back most)
    isolatedNetwork: true,
    ready: (_ownerUid, podDir) => probeUploadServer(uploadSocket(podDir)),
    terminationMessagePath: (podDir) => workerPaths(podDir).terminationLog,
  };
}
