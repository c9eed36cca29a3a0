// One private, QEMU-only libvirtd per launcher pod (Debian has no virtqemud). It runs as root inside the pod's own
// mount namespace, with the pod's directories bound over /etc/libvirt, /run/libvirt, /var/lib/libvirt,
// /var/cache/libvirt and /var/log/libvirt (as root, neither session mode nor a relocated socket dir isolates daemons).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../../lib/log.js";
import { Proc, RemoteConnection } from "./rpc.js";

export const QEMU_DRIVER = "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so";

/** The system paths each instance gets its own copy of, and the short instance subdirectory bound over each. */
export const BOUND_DIRS: ReadonlyArray<readonly [system: string, sub: string]> = [
  ["/etc/libvirt", "etc"],
  ["/run/libvirt", "run"],
  ["/var/lib/libvirt", "lib"],
  ["/var/cache/libvirt", "cache"],
  ["/var/log/libvirt", "log"],
];

export interface InstanceLayout {
  dir: string;
  /** The daemon's socket, reachable from outside the pod's mount namespace too (the bind source). */
  socket: string;
  driverDir: string;
  capabilityCache: string;
}

export function instanceLayout(dir: string): InstanceLayout {
  return {
    dir,
    socket: path.join(dir, "run", "libvirt-sock"),
    driverDir: path.join(dir, "drv"),
    capabilityCache: path.join(dir, "cache", "qemu", "capabilities"),
  };
}

export interface DaemonConfig {
  /** Unique per instance: libvirt's same-host migration check compares host UUIDs. */
  hostUuid?: string;
  /**
   * Who QEMU runs as. "libvirt-qemu" (default) with dynamic_ownership = 0: QEMU is not root, libvirt relabels
   * nothing, and the launcher makes the files QEMU needs readable (base images) or owned (overlays, sockets dir)
   * by that user. "root" is the fallback where that user does not exist.
   */
  qemuUser?: string;
}

export function libvirtdConf(hostUuid: string): string {
  return [
    "# tsvirt: one private daemon per launcher pod",
    'unix_sock_group = "root"',
    'unix_sock_ro_perms = "0700"',
    'unix_sock_rw_perms = "0700"',
    'auth_unix_ro = "none"',
    'auth_unix_rw = "none"',
    `host_uuid = "${hostUuid}"`,
    'log_outputs = "3:stderr"',
    "",
  ].join("\n");
}

export function qemuConf(user: string): string {
  return [
    "# tsvirt: no virtlogd, no cgroups shared between daemons, no relabelling",
    'stdio_handler = "file"',
    "cgroup_controllers = [ ]",
    "dynamic_ownership = 0",
    'security_driver = "none"',
    `user = "${user}"`,
    `group = "${user === "root" ? "root" : "kvm"}"`,
    "",
  ].join("\n");
}

/** Write the instance's private configuration, QEMU-only driver dir, and copy the golden capability cache in. */
export async function prepareInstance(dir: string, cfg: DaemonConfig, goldenCache?: string): Promise<InstanceLayout> {
  const l = instanceLayout(dir);
  for (const [, sub] of BOUND_DIRS) await mkdir(path.join(dir, sub), { recursive: true });
  await mkdir(l.driverDir, { recursive: true });
  const link = path.join(l.driverDir, path.basename(QEMU_DRIVER));
  if (!existsSync(link)) await symlink(QEMU_DRIVER, link);
  await writeFile(path.join(dir, "etc", "libvirtd.conf"), libvirtdConf(cfg.hostUuid ?? randomUUID()));
  await writeFile(path.join(dir, "etc", "qemu.conf"), qemuConf(cfg.qemuUser ?? "libvirt-qemu"));
  if (goldenCache && existsSync(goldenCache)) {
    // A copy, not a shared read-only directory: libvirt rewrites a stale cache in place.
    await mkdir(l.capabilityCache, { recursive: true });
    for (const f of await readdir(goldenCache)) {
      if (f.endsWith(".xml")) await copyFile(path.join(goldenCache, f), path.join(l.capabilityCache, f));
    }
  }
  return l;
}

/** Save this instance's capability cache as the node's golden copy, atomically, if there is none yet. */
export async function saveGoldenCache(l: InstanceLayout, goldenCache: string): Promise<boolean> {
  if (existsSync(goldenCache) || !existsSync(l.capabilityCache)) return false;
  const files = (await readdir(l.capabilityCache)).filter((f) => f.endsWith(".xml"));
  if (files.length === 0) return false;
  const tmp = `${goldenCache}.tmp-${process.pid}-${Date.now()}`;
  await mkdir(tmp, { recursive: true });
  for (const f of files) await copyFile(path.join(l.capabilityCache, f), path.join(tmp, f));
  try {
    await rename(tmp, goldenCache);
    return true;
  } catch {
    await rm(tmp, { recursive: true, force: true }); // another launcher won the race
    return false;
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(" ")}: ${stderr.trim() || err.message}`)) : resolve(),
    );
  });
}

/**
 * Bind the instance's directories over the system's. Only inside a private mount namespace: the launcher pod's
 * first process (PID 1 of its own PID namespace, created with a new mount namespace by `unshare --mount-proc`).
 */
export async function bindInstanceDirs(l: InstanceLayout): Promise<void> {
  if (process.env.TSVIRT_LAUNCHER_POD !== "1" || process.ppid !== 1) {
    throw new Error(
      "refusing to bind libvirt directories outside a launcher pod (not under the pod init of a private namespace)",
    );
  }
  await run("mount", ["--make-rprivate", "/"]);
  for (const [sys, sub] of BOUND_DIRS) {
    await mkdir(sys, { recursive: true });
    await run("mount", ["--bind", path.join(l.dir, sub), sys]);
  }
}

export interface RunningDaemon {
  proc: ChildProcess;
  layout: InstanceLayout;
  /** Milliseconds from spawn until a connection answered a capabilities call. */
  readyMs: number;
}

/** Spawn libvirtd in the foreground (stdout/stderr to `logFd`) and wait until it really answers. */
export async function startDaemon(
  l: InstanceLayout,
  opts: { logFd?: number; timeoutMs?: number; log?: Logger } = {},
): Promise<RunningDaemon> {
  const t0 = performance.now();
  await rm(l.socket, { force: true });
  // libvirtd's default pid file is /run/libvirtd.pid, outside the bound dirs: give each instance its own.
  const proc = spawn("libvirtd", ["--pid-file", path.join(l.dir, "run", "libvirtd.pid")], {
    stdio: ["ignore", opts.logFd ?? "inherit", opts.logFd ?? "inherit"],
    env: { ...process.env, LIBVIRT_DRIVER_DIR: l.driverDir },
  });
  let exited: string | undefined;
  proc.once("exit", (code, sig) => {
    exited = `libvirtd exited (${sig ?? code}) before it was ready`;
  });
  proc.once("error", (e) => {
    exited = `libvirtd failed to start: ${e.message}`;
  });
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  // libvirtd exits 0 when its driver fails to initialise: readiness is a connection that answers, not a pid.
  for (;;) {
    if (exited) throw new Error(exited);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error("libvirtd did not become ready in time");
    }
    if (existsSync(l.socket)) {
      try {
        const conn = await RemoteConnection.open(l.socket);
        await conn.call(Proc.ConnectGetCapabilities);
        await conn.close();
        const readyMs = performance.now() - t0;
        opts.log?.info("libvirtd ready", { pid: proc.pid, readyMs: Math.round(readyMs) });
        return { proc, layout: l, readyMs };
      } catch (e) {
        opts.log?.debug("libvirtd not ready yet", { err: e });
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
