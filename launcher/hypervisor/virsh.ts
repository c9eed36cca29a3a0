// The baseline Hypervisor: one `virsh` process per call (execFile, argument arrays, never a shell). Kept for the
// benchmark's ms-per-call comparison and as a cross-check of the remote-protocol client; not used on the hot path.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { notFound } from "../../lib/errors.js";
import {
  type DomainEvent,
  type DomainStats,
  type DomainStatus,
  type Hypervisor,
  type JobStats,
  type LifeCycle,
  notSupported,
  type Unsubscribe,
} from "./types.js";

// `virsh domstate --reason` prints e.g. "shut off (destroyed)", "running (booted)", "paused (user)".
const virshStates: Record<string, LifeCycle> = {
  "no state": "NoState",
  running: "Running",
  idle: "Blocked",
  blocked: "Blocked",
  paused: "Paused",
  "in shutdown": "ShuttingDown",
  "shut off": "Shutoff",
  crashed: "Crashed",
  pmsuspended: "PMSuspended",
};
const virshReasons: Record<string, string> = {
  unknown: "Unknown",
  booted: "Booted",
  migrated: "Migrated",
  restored: "Restored",
  "from snapshot": "FromSnapshot",
  unpaused: "Unpaused",
  "migration canceled": "MigrationCanceled",
  user: "User",
  migrating: "Migration",
  saving: "Save",
  dumping: "Dump",
  "I/O error": "IOError",
  watchdog: "Watchdog",
  "shutting down": "ShuttingDown",
  "starting up": "StartingUp",
  shutdown: "Shutdown",
  destroyed: "Destroyed",
  crashed: "Crashed",
  saved: "Saved",
  failed: "Failed",
  daemon: "Daemon",
  panicked: "Panicked",
};

export function parseDomstate(out: string): DomainStatus {
  const m = /^(.+?)\s*(?:\((.+)\))?$/.exec(out.trim());
  const state = virshStates[m?.[1] ?? ""] ?? "NoState";
  return { state, reason: virshReasons[m?.[2] ?? "unknown"] ?? "Unknown" };
}

export class VirshHypervisor implements Hypervisor {
  private readonly uri: string;
  private watcher: ChildProcess | undefined;
  private readonly listeners = new Set<(e: DomainEvent) => void>();

  constructor(socketPath: string) {
    this.uri = `qemu:///system?socket=${socketPath}`;
  }

  run(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile("virsh", ["-q", "-c", this.uri, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
        if (err) {
          const msg = stderr.trim() || err.message;
          if (/failed to get domain|Domain not found/i.test(msg)) {
            reject(notFound({ group: "", resource: "domains" }, args[1] ?? ""));
          } else reject(new Error(msg));
        } else resolve(stdout);
      });
    });
  }

  async define(xml: string): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), "tsvirt-virsh-"));
    try {
      const f = path.join(dir, "domain.xml");
      await writeFile(f, xml);
      const out = await this.run("define", f);
      const m = /Domain '(.+)' defined/.exec(out);
      return m?.[1] ?? "";
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  async start(name: string): Promise<void> {
    await this.run("start", name);
  }
  async shutdown(name: string): Promise<void> {
    await this.run("shutdown", name);
  }
  async destroy(name: string): Promise<void> {
    await this.run("destroy", name);
  }
  async pause(name: string): Promise<void> {
    await this.run("suspend", name);
  }
  async resume(name: string): Promise<void> {
    await this.run("resume", name);
  }
  async reset(name: string): Promise<void> {
    await this.run("reset", name);
  }
  async reboot(name: string): Promise<void> {
    await this.run("reboot", name, "--mode", "acpi");
  }
  async undefine(name: string): Promise<void> {
    await this.run("undefine", name);
  }
  async state(name: string): Promise<DomainStatus | undefined> {
    try {
      return parseDomstate(await this.run("domstate", name, "--reason"));
    } catch (e) {
      if (e instanceof Error && "status" in e) return undefined;
      throw e;
    }
  }
  xml(name: string): Promise<string> {
    return this.run("dumpxml", name);
  }
  async stats(name: string): Promise<DomainStats> {
    const out = await this.run("dominfo", name);
    const field = (k: string): string => new RegExp(`^${k}:\\s*(.+)$`, "m").exec(out)?.[1]?.trim() ?? "0";
    return {
      state: parseDomstate(field("State")).state,
      maxMemoryKiB: Number.parseInt(field("Max memory"), 10),
      memoryKiB: Number.parseInt(field("Used memory"), 10),
      vcpus: Number.parseInt(field("CPU\\(s\\)"), 10),
      cpuTimeNs: Math.round(Number.parseFloat(field("CPU time")) * 1e9) || 0,
    };
  }
  events(listener: (e: DomainEvent) => void): Unsubscribe {
    this.listeners.add(listener);
    if (!this.watcher) {
      // A long-lived `virsh event --loop`: libvirt pushes, virsh prints one line per event.
      const w = spawn("virsh", ["-q", "-c", this.uri, "event", "--all", "--loop"], {
        stdio: ["ignore", "pipe", "ignore"],
      });
      this.watcher = w;
      let buf = "";
      w.stdout?.on("data", (d: Buffer) => {
        buf += d.toString();
        let i = buf.indexOf("\n");
        while (i >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const m = /event 'lifecycle' for domain '?([^':]+)'?: (\S+) (\S+)/.exec(line);
          if (m) {
            const domain = m[1] ?? "";
            const event = m[2] ?? "";
            this.state(domain).then(
              (status) => {
                if (!status) return;
                for (const l of this.listeners) l({ domain, event, detail: 0, status });
              },
              () => {},
            );
          }
          i = buf.indexOf("\n");
        }
      });
    }
    return () => this.listeners.delete(listener);
  }
  async blockCapacity(name: string, disk: string): Promise<number> {
    const out = await this.run("domblkinfo", name, disk);
    return Number(/^Capacity:\s*(\d+)/m.exec(out)?.[1] ?? Number.NaN);
  }

  async blockResize(name: string, disk: string, bytes: number): Promise<void> {
    await this.run("blockresize", name, disk, `${bytes}B`);
  }

  async attachDevice(name: string, xml: string): Promise<void> {
    const dir = await mkdtemp(path.join(tmpdir(), "tsvirt-virsh-"));
    try {
      const f = path.join(dir, "dev.xml");
      await writeFile(f, xml);
      await this.run("attach-device", name, f, "--live");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  async detachDevice(name: string, xml: string): Promise<void> {
    const dir = await mkdtemp(path.join(tmpdir(), "tsvirt-virsh-"));
    try {
      const f = path.join(dir, "dev.xml");
      await writeFile(f, xml);
      await this.run("detach-device", name, f, "--live");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  migrate(): Promise<void> {
    return Promise.reject(notSupported("Live migration"));
  }
  jobStats(): Promise<JobStats> {
    return Promise.reject(notSupported("Live migration"));
  }
  abortJob(): Promise<void> {
    return Promise.reject(notSupported("Live migration"));
  }
  setMaxDowntime(): Promise<void> {
    return Promise.reject(notSupported("Live migration"));
  }
  startPostCopy(): Promise<void> {
    return Promise.reject(notSupported("Live migration"));
  }
  snapshot(_name: string, _snapshotName: string): Promise<void> {
    return Promise.reject(notSupported("Snapshots"));
  }
  async close(): Promise<void> {
    this.watcher?.kill();
    this.watcher = undefined;
  }
}
