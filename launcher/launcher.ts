// The launcher process (inside its pod): private libvirtd, remote-protocol connection, serial console proxy,
// command socket. Crash-only: it keeps no state that a restart of the whole pod would not rebuild.
import type { ChildProcess } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { chown, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { createLogger, type Logger } from "../lib/log.js";
import { qemuUser } from "../lib/qemu-user.js";
import { ConsoleProxy } from "./console.js";
import { prepareAndConvert } from "./converter/index.js";
import {
  bindInstanceDirs,
  LibvirtHypervisor,
  prepareInstance,
  saveGoldenCache,
  startDaemon,
} from "./hypervisor/index.js";
import { MigrationListener, podAddress } from "./migration.js";
import { DEFAULT_NODE_DIR, podPaths, validUid } from "./pod.js";
import { LauncherCore, serveCommands } from "./server.js";

export interface LauncherOptions {
  uid: string;
  podDir: string;
  /** The command socket to listen on (commandSocketPath of the node dir and uid, told on the command line). */
  commandSocket: string;
  nodeDir?: string;
  accel?: string;
}

/** KVM when /dev/kvm is usable and not the paravirtual kvm-pvm (which cannot run q35 guests reliably). */
export function useKvm(accel: string | undefined): boolean {
  if (accel === "kvm") return true;
  if (accel === "tcg") return false;
  try {
    accessSync("/dev/kvm", constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  return !existsSync("/sys/module/kvm_pvm");
}

function stopProcess(p: ChildProcess, timeoutMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      p.kill("SIGKILL");
    }, timeoutMs);
    p.once("exit", () => {
      clearTimeout(t);
      resolve();
    });
    p.kill("SIGTERM");
  });
}

export async function runLauncher(
  o: LauncherOptions,
  log: Logger = createLogger({ component: "virt-launcher" }),
): Promise<void> {
  if (!validUid(o.uid)) throw new Error(`invalid VMI uid "${o.uid}"`);
  log = log.child({ uid: o.uid });
  const paths = podPaths(path.resolve(o.podDir));
  const nodeDir = o.nodeDir ?? DEFAULT_NODE_DIR;
  const golden = path.join(nodeDir, "libvirt-capabilities");
  const t0 = performance.now();
  log.info("launcher starting"); // the first step of bench:flow's timeline inside the pod
  const owner = await qemuUser();
  const kvm = useKvm(o.accel);
  await mkdir(paths.socketsDir, { recursive: true });
  await mkdir(path.dirname(o.commandSocket), { recursive: true });
  await mkdir(paths.qemuDir, { recursive: true });
  await chown(paths.qemuDir, owner.uid, owner.gid);
  await mkdir(nodeDir, { recursive: true });

  const layout = await prepareInstance(paths.libvirtDir, { qemuUser: owner.name }, golden);
  await bindInstanceDirs(layout);
  const daemon = await startDaemon(layout, { log });
  if (await saveGoldenCache(layout, golden)) log.info("saved the node's golden QEMU capability cache", { dir: golden });

  let exiting = false;
  const exit = (code: number): never => process.exit(code);
  daemon.proc.on("exit", (code, sig) => {
    if (exiting) return;
    log.error("libvirtd died: the pod ends", { code, signal: sig });
    exit(1);
  });

  const hv = await LibvirtHypervisor.connect(layout.socket);
  hv.conn.onClose(() => {
    if (exiting) return;
    log.error("lost the libvirt connection: the pod ends");
    exit(1);
  });

  const console = new ConsoleProxy({
    serialSocket: paths.serialSocket,
    listenPath: paths.consoleSocket,
    logFile: paths.serialLog,
    log,
  });
  await console.listen();

  const listener = new MigrationListener(layout.socket, log);
  let migratedAway = false;
  const core: LauncherCore = new LauncherCore({
    uid: o.uid,
    hv,
    build: (vmi, prepared) => prepareAndConvert(vmi, prepared, { podDir: paths.podDir, kvm, owner }),
    onStarted: () => {
      console.attach().catch((e: unknown) => log.warn("serial console attach failed", { err: e }));
    },
    migration: {
      listen: async (source) => {
        const address = podAddress();
        if (!address) throw new Error("the pod has no IPv4 address on its primary interface to migrate over");
        return listener.listen(address, source);
      },
      arrived: () => listener.stopAccepting(),
      onMigratedAway: () => {
        migratedAway = true;
        void endAfterMigration();
      },
    },
    log,
  });
  const server = await serveCommands(core, o.commandSocket, log);
  log.info("launcher ready", {
    readyMs: Math.round(performance.now() - t0),
    daemonReadyMs: Math.round(daemon.readyMs),
  });

  // The domain lives on the target now: the pod ends (Succeeded) once the node agent has read "completed" from
  // MigrateStatus, or 10 s after at the latest (the termination log says Shutoff/Migrated either way).
  const endAfterMigration = async (): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (!core.completionReported && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 200)); // let the answer leave the socket
    log.info("domain migrated away: the launcher ends", { reported: core.completionReported });
    await terminate("migrated");
  };

  const terminate = async (sig: string): Promise<void> => {
    if (exiting) return;
    exiting = true;
    log.info("terminating: shutting the guest down", { signal: sig });
    listener.close();
    try {
      const st = migratedAway ? { state: "Shutoff" as const, reason: "Migrated" } : await core.terminate();
      log.info("guest stopped", { state: st?.state, reason: st?.reason });
      if (st) await writeFile(paths.terminationLog, `${JSON.stringify(st)}\n`);
    } catch (e) {
      log.warn("graceful shutdown failed", { err: e });
    }
    core.close();
    server.close();
    await console.close();
    await hv.close().catch(() => {});
    await stopProcess(daemon.proc, 5000);
    exit(0);
  };
  process.on("SIGTERM", () => void terminate("SIGTERM"));
  process.on("SIGINT", () => void terminate("SIGINT"));
}
