// The upload pod shape (label cdi.kubevirt.io=cdi-upload-server, controller owner a DataVolume): resolves the DV's
// target like the importer's (handler/workers/job.ts), writes job.json with an upload source, and runs
// `tsvirt uploadserver --job <pod dir>/job.json` with an IPC channel. Ready once the upload server says on that
// channel that it listens (else, after an agent restart, once it answers on its socket): the DV then shows
// UploadReady; handler/server.ts hands an upload's connection to the server over the channel (or relays the body to
// its socket when there is none).
import type { ChildProcess } from "node:child_process";
import { request } from "node:http";
import type net from "node:net";
import { isStatusError, statusError } from "../../lib/errors.js";
import { checkUploadTicket, UPLOAD_TICKET_ANNOTATION } from "../../lib/upload-ticket.js";
import type { WorkerJob } from "../../storage/importer/index.js";
import { UPLOAD_CONNECTION, UPLOAD_LISTENING, type UploadConnectionMessage } from "../../storage/upload/index.js";
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

/** One upload server's IPC channel as the agent sees it. */
export interface UploadChannel {
  /** The server said it listens. */
  listening: boolean;
  /**
   * Hands a client's connection (and the bytes read of it) to the server: false when the channel could not take it
   * (the connection is left as it was), true once it is no longer this process's.
   */
  handOver(socket: net.Socket, head: Buffer): Promise<boolean>;
}

/** Serves an upload worker's channel: notes when it listens (then calls `onListening`), and hands connections over. */
export function serveUploadChannel(child: ChildProcess, onListening: () => void): UploadChannel {
  child.channel?.unref(); // the agent's event loop does not wait for a worker
  const ch: UploadChannel = {
    listening: false,
    handOver: (socket, head) =>
      new Promise<boolean>((resolve) => {
        if (!child.connected) return resolve(false);
        const m: UploadConnectionMessage = { type: UPLOAD_CONNECTION, head: head.toString("base64") };
        // (keepOpen false: this process drops its copy once sent. No `server` on it: Node would else track it as a
        // cluster worker's and make the agent's server wait at close for the worker to report it closed)
        (socket as unknown as { server: unknown }).server = null;
        child.send(m, socket, { keepOpen: false }, (err) => {
          const gone = !(socket as unknown as { _handle: unknown })._handle;
          // The socket object stays here without its handle: destroying it ends it for the server's count
          if (!err || gone) socket.destroy();
          resolve(!err || gone);
        });
      }),
  };
  child.on("message", (m: unknown) => {
    if ((m as { type?: string })?.type !== UPLOAD_LISTENING || ch.listening) return;
    ch.listening = true;
    onListening();
  });
  return ch;
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
      return { argv: workerArgv(d, "uploadserver", jobPath), channel: d.services.uploadChannel(podDir) };
    },
    // the bytes come in on the pod dir's unix socket and nothing goes out: no veth, no VM binding to make before
    // the pod is Running (what held UploadReady back most)
    isolatedNetwork: true,
    ready: async (_ownerUid, podDir) => d.services.uploadListening(podDir) || probeUploadServer(uploadSocket(podDir)),
    terminationMessagePath: (podDir) => workerPaths(podDir).terminationLog,
  };
}
