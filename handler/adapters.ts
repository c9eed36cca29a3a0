// The node agent's ports bound to the real parts: the launcher's socket client and pod command (launcher/), the
// image puller and node cache (images/).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type PullOptions, pinImage, pullContainerDisk, type RegistriesConfig, unpinImage } from "../images/index.js";
import { LauncherClient, podCommand, podPaths, readTerminationLog, terminatePod } from "../launcher/index.js";
import type { ImagePuller, LauncherConnection, LauncherDialer } from "./ports.js";

export const launcherDialer: LauncherDialer = async (podDir) => {
  const c = await LauncherClient.connect(podPaths(podDir).commandSocket, 2_000);
  const conn: LauncherConnection = {
    ping: async () => {
      await c.call("Ping", undefined, { timeoutMs: 5_000 });
    },
    sync: async (vmi, prepared) => {
      await c.call("Sync", { vmi: vmi as unknown as Record<string, unknown>, prepared });
    },
    watch: (fn) => {
      const done = new Promise<void>((resolve) => {
        if (c.isClosed) resolve();
        else c.onClose(resolve);
      });
      const stop = c.watch((d) => fn(d.status));
      return { stop, done };
    },
    shutdown: async (gracePeriodSeconds) => {
      // Answered at once (the launcher does not wait for the guest): bounded so a wedged launcher cannot hold VMI sync.
      await c.call("Shutdown", { gracePeriodSeconds }, { timeoutMs: 30_000 });
    },
    command: async (verb) => {
      await c.call(verb, undefined, { timeoutMs: 60_000 });
    },
    close: () => c.close(),
  };
  return conn;
};

export interface LauncherCommandOptions {
  dataDir: string;
  tsvirtJs: string;
  accel?: string;
}

/** The launcher pod's command line: built from the VMI uid and the pod dir only. */
export function launcherCommand(o: LauncherCommandOptions) {
  return (vmiUid: string, podDir: string): { argv: string[]; env: NodeJS.ProcessEnv } => {
    mkdirSync(join(o.dataDir, "locks"), { recursive: true });
    mkdirSync(podPaths(podDir).socketsDir, { recursive: true });
    const cmd = podCommand({
      uid: vmiUid,
      podDir,
      lockDir: join(o.dataDir, "locks"),
      nodeDir: o.dataDir,
      tsvirtJs: o.tsvirtJs,
      ...(o.accel ? { accel: o.accel } : {}),
    });
    return { argv: [cmd.command, ...cmd.args], env: cmd.env };
  };
}

/** The domain's final state a launcher pod left behind (its termination log). */
export const terminationLog = readTerminationLog;

/** Graceful stop of a launcher pod: SIGTERM to the pod's init (unshare itself ignores it). */
export function terminateLauncherPod(pid: number): void {
  terminatePod(pid);
}

export interface PullerOptions {
  cacheDir: string;
  /** The registry list in force at each pull (it follows the ConfigMap kubevirt/tsvirt-registries). */
  registries?: () => RegistriesConfig | Promise<RegistriesConfig>;
}

export function imagePuller(o: PullerOptions): ImagePuller {
  const pinned = new Map<string, number>();
  return {
    async pull(image, vmiUid) {
      const opts: PullOptions = { cacheDir: o.cacheDir };
      if (o.registries) opts.registries = await o.registries();
      const d = await pullContainerDisk(image, opts);
      const n = pinned.get(vmiUid) ?? 0;
      await pinImage(o.cacheDir, n === 0 ? vmiUid : `${vmiUid}.${n}`, d.manifestDigest);
      pinned.set(vmiUid, n + 1);
      return { path: d.diskPath, digest: d.manifestDigest };
    },
    async release(vmiUid) {
      const n = Math.max(pinned.get(vmiUid) ?? 1, 1);
      for (let i = 0; i < n; i++) await unpinImage(o.cacheDir, i === 0 ? vmiUid : `${vmiUid}.${i}`);
      pinned.delete(vmiUid);
    },
  };
}
