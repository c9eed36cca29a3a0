// The node agent's ports bound to the real parts: the launcher's socket client and pod command (launcher/). The
// image port is images/'s nodeImagePuller.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { childPids, commandSocketsDir, LauncherClient, podCommand, podPaths } from "../launcher/index.js";
import type { LauncherConnection, LauncherDialer, MigrationDialer } from "./ports.js";
import { stopSignalTarget, trySignal } from "./processes.js";

export const launcherDialer: LauncherDialer = async (socketPath) => {
  const c = await LauncherClient.connect(socketPath, 2_000);
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
    resizeDisks: async (disks) => {
      const r = await c.call("ResizeDisks", { disks }, { timeoutMs: 60_000 });
      return r.resized.map((d) => d.path);
    },
    close: () => c.close(),
  };
  return conn;
};

/** The migration calls on a connection of their own (VMI sync's stays with the domain's watch). */
export const migrationDialer: MigrationDialer = async (socketPath) => {
  const c = await LauncherClient.connect(socketPath, 2_000);
  return {
    ping: async () => {
      await c.call("Ping", undefined, { timeoutMs: 5_000 });
    },
    domain: async () => (await c.call("GetDomain", undefined, { timeoutMs: 10_000 })).domain.status,
    prepareMigrationTarget: (p) => c.prepareMigrationTarget(p),
    migrateStart: (p) => c.migrateStart(p),
    migrateStatus: () => c.migrateStatus(),
    migrateAbort: () => c.migrateAbort(),
    close: () => c.close(),
  };
};

/** The launcher pod's readiness probe: its command socket answers Ping. */
export async function probeLauncher(socketPath: string): Promise<boolean> {
  try {
    const c = await LauncherClient.connect(socketPath, 1_000);
    try {
      await c.call("Ping", undefined, { timeoutMs: 2_000 });
      return true;
    } finally {
      c.close();
    }
  } catch {
    return false;
  }
}

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
    mkdirSync(commandSocketsDir(o.dataDir), { recursive: true });
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

/**
 * Graceful stop of a pod: SIGTERM to a launcher pod's init (unshare itself ignores it), or to a worker pod's own
 * process (before, a worker got nothing and was SIGKILLed only once its grace period ran out).
 */
export function terminateLauncherPod(pid: number): void {
  let argv0 = "";
  try {
    argv0 = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "";
  } catch {
    return; // gone
  }
  const target = stopSignalTarget(pid, argv0, childPids(pid));
  if (target !== undefined) trySignal(target, "SIGTERM");
}
