// The node agent's ports bound to the real parts: the launcher's socket client and pod command (launcher/). The
// image port is images/'s nodeImagePuller.
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { commandSocketsDir, LauncherClient, podCommand, podPaths, terminatePod } from "../launcher/index.js";
import type { LauncherConnection, LauncherDialer, MigrationDialer } from "./ports.js";

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

/** Pure: a pod process's command line (NUL-separated, as /proc/PID/cmdline) is a launcher pod's `unshare`. */
export function isUnsharePod(cmdline: string): boolean {
  return /(^|\/)unshare$/.test(cmdline.split("\0")[0] ?? "");
}

/**
 * Graceful stop of a pod, kubelet's SIGTERM: a launcher pod runs under `unshare`, which ignores it, so its init gets
 * it (and hands it to the launcher); a worker pod (importer, clone source, upload server) is its own process and
 * gets it itself. (Sending a worker's SIGTERM to its first child reached nothing, or a helper it runs: the pod ran
 * out its 30 s grace period and was killed.)
 */
export function terminatePodProcess(pid: number): void {
  let cmdline = "";
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return; // gone already
  }
  if (isUnsharePod(cmdline)) {
    terminatePod(pid);
    return;
  }
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    // exited meanwhile
  }
}
