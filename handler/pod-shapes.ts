// The pod shapes the embedded pod runner will run: only pods tsvirt renders itself, each with the command line the
// runner builds for it (never a pod's command, args or image), its readiness probe and its termination message.
// The one list: later importer, upload, export or hotplug helper pods add an entry here.
import type { ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import type { RegistriesConfig } from "../images/index.js";
import { commandSocketPath, parseTerminationLog, podPaths } from "../launcher/index.js";
import { isStatusError } from "../lib/errors.js";
import { classifyPod } from "./launcher-pod.js";
import { isFinal } from "./phase.js";
import { type ApiClient, type Pod, refs, type VirtualMachineInstance } from "./ports.js";
import { logPath } from "./processes.js";
import { cloneSourceShape, importerShape, uploadShape, type WorkerServices, workerArgv } from "./workers/index.js";

/** A pod's process: its argv and env, and optionally an IPC channel to it (fd 3, served by `channel`). */
export interface PodCommand {
  argv: string[];
  env?: NodeJS.ProcessEnv;
  /** Given the child when it is spawned with an IPC channel (the agent answers it while both live). */
  channel?: (child: ChildProcess) => void;
  /** This pod gets no link at all (as the shape's isolatedNetwork): decided per pod once its job is known. */
  isolatedNetwork?: boolean;
}

export interface PodShape {
  /** Its name in logs and refusals. */
  name: string;
  /** The uid of the object the pod belongs to (its controller owner), or why the pod is not of this shape. */
  match(pod: Pod): { ok: true; ownerUid: string } | { ok: false; why: string };
  /**
   * The command line: from the owner's uid, the pod's directory on the node and what the shape itself resolves from
   * the API for this pod (never the pod's command, args or image). A shape may write the job its process reads into
   * the pod's directory first; rejecting (a StatusError) reports the pod as failed to start.
   */
  command(ownerUid: string, podDir: string, pod: Pod): PodCommand | Promise<PodCommand>;

  /** Readiness probe (kubelet's): true once the pod serves what it is for. */
  ready(ownerUid: string, podDir: string): Promise<boolean>;
  /** The pod gets its own IP only, no VM masquerade binding (a pod that serves on its IP itself). */
  plainNetwork?: boolean;
  /** The pod gets no link at all, only its namespace's loopback (it serves on a unix socket and reaches nothing). */
  isolatedNetwork?: boolean;
  /** The file the pod leaves its last words in (kubelet's terminationMessagePath). */
  terminationMessagePath(podDir: string): string;
  /**
   * Asked once a deleted pod's process has ended, before the pod goes from the API: false holds the removal back
   * (bounded) so that whoever follows the pod's owner can record its end first.
   */
  beforeRemove?(pod: Pod, ownerUid: string, terminationMessage: string | undefined): Promise<boolean>;
}

export interface ShapeDeps {
  node: string;
  /** Node data directory (the launchers' command sockets live below it). */
  dataDir: string;
  api: ApiClient;
  launcherCommand: (vmiUid: string, podDir: string) => { argv: string[]; env?: NodeJS.ProcessEnv };
  /** Answers whether a launcher serves its command socket (Ping). */
  probe: (socketPath: string) => Promise<boolean>;
  /** DataVolume worker pods (handler/workers): absent, none is run. */
  workers?: {
    registries: () => Promise<RegistriesConfig>;
    services: WorkerServices;
    tsvirtJs?: string;
    loopDeviceOf?: (image: string) => Promise<string | undefined>;
  };
}

/** virt-launcher: one per VMI, rendered by virt-controller (controller/vmi/pod.ts). */
export function launcherShape(d: ShapeDeps): PodShape {
  return {
    name: "virt-launcher",
    match(pod) {
      const c = classifyPod(pod);
      return c.kind === "launcher" ? { ok: true, ownerUid: c.vmiUid } : { ok: false, why: c.message };
    },
    command: d.launcherCommand,
    ready: (vmiUid) => d.probe(commandSocketPath(d.dataDir, vmiUid)),
    terminationMessagePath: (podDir) => podPaths(podDir).terminationLog,
    // A guest that ended (its domain's last state in the termination message) makes its VMI final; that phase goes
    // to the API before the pod does, or the VMI controller would take the pod's removal for a loss (Failed).
    async beforeRemove(pod, vmiUid, message) {
      const end = message ? parseTerminationLog(message) : undefined;
      if (!end || (end.state !== "Shutoff" && end.state !== "Crashed")) return true;
      const owner = pod.metadata?.ownerReferences?.find((r) => r.uid === vmiUid);
      if (!owner) return true;
      try {
        const vmi = await d.api.get<VirtualMachineInstance>(refs.vmis, pod.metadata?.namespace, owner.name);
        const phase = vmi.status?.phase ?? "";
        if (vmi.metadata?.uid !== vmiUid || isFinal(phase)) return true;
        if (phase !== "Scheduled" && phase !== "Running") return true;
        return (vmi.status?.nodeName ?? d.node) !== d.node;
      } catch (e) {
        if (isStatusError(e) && e.code === 404) return true;
        throw e;
      }
    },
  };
}

/** Every pod shape the embedded pod runner runs. */
export function podShapes(d: ShapeDeps): PodShape[] {
  const shapes = [launcherShape(d)];
  if (d.workers) {
    const w = { node: d.node, dataDir: d.dataDir, api: d.api, ...d.workers };
    shapes.push(importerShape(w), uploadShape(w));
    shapes.push(cloneSourceShape({ ...w, argv: (cmd, job) => workerArgv(w, cmd, job) }));
  }
  return shapes;
}

/** The shape a pod matches, or why it matches none (the runner reports that and runs nothing). */
export function shapeOf(
  shapes: readonly PodShape[],
  pod: Pod,
): { shape: PodShape; ownerUid: string } | { shape: undefined; message: string } {
  const why: string[] = [];
  for (const shape of shapes) {
    const m = shape.match(pod);
    if (m.ok) return { shape, ownerUid: m.ownerUid };
    why.push(m.why);
  }
  const names = shapes.map((s) => s.name).join(", ");
  return {
    shape: undefined,
    message: `The embedded pod runner runs only pods tsvirt renders (${names}): ${why.join("; ")}`,
  };
}

const MAX_MESSAGE = 4096;
const FALLBACK_LOG_BYTES = 2048;

/**
 * kubelet's termination message with FallbackToLogsOnError: the terminationMessagePath's contents, or, when that is
 * empty and the process failed, the tail of its log. Capped as kubelet caps it.
 */
export async function terminationMessage(
  shape: PodShape,
  podDir: string,
  exitCode: number,
): Promise<string | undefined> {
  const own = (await readFile(shape.terminationMessagePath(podDir), "utf8").catch(() => "")).trim();
  if (own) return own.slice(0, MAX_MESSAGE);
  if (exitCode === 0) return undefined;
  const log = await readFile(logPath(podDir), "utf8").catch(() => "");
  const tail = log.slice(-FALLBACK_LOG_BYTES).trim();
  return tail || undefined;
}
