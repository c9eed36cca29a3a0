// The launcher-only boot that bench:launcher (a) and bench:flow both measure: spawn of a launcher pod (its libvirtd
// not started yet, capability cache warm once the node dir has its golden cache) → the guest's ready marker on the
// launcher's console socket, booting the test guest's bootable qcow2 as a containerDisk overlay. No API, no handler.
import { readFileSync } from "node:fs";
import { Console, type Pod, startPod, vmiFor } from "../tests/e2e/launcher-lib.js";
import type { Guest } from "../tests/guest/index.js";

export function diskVmi(uid: string, name: string): Record<string, unknown> {
  return vmiFor(uid, name, {
    domain: {
      resources: { requests: { memory: "256Mi" } },
      devices: { disks: [{ name: "containerdisk", disk: { bus: "virtio" } }] },
    },
    volumes: [{ name: "containerdisk", containerDisk: { image: "bench/guest:latest" } }],
  });
}

export function daemonReadyMs(pod: Pod): number {
  for (const line of readFileSync(pod.paths.logFile, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    const j = JSON.parse(line) as { msg?: string; readyMs?: number };
    if (j.msg === "libvirtd ready" && typeof j.readyMs === "number") return j.readyMs;
  }
  throw new Error(`no "libvirtd ready" line in ${pod.paths.logFile}`);
}

export interface LauncherBoot {
  /** Still running: the caller kills it. */
  pod: Pod;
  /** Spawn → marker. */
  ms: number;
  /** The spawn, as performance.now() and as epoch ms (the launcher's log times). */
  t0: number;
  wall0: number;
  /** What the console received, with arrival times (performance.now()). */
  chunks: ReadonlyArray<{ at: number; data: string }>;
}

/** Spawn → marker. */
export async function launcherBoot(guest: Guest, nodeDir: string, name: string): Promise<LauncherBoot> {
  const t0 = performance.now();
  const wall0 = Date.now();
  const pod = await startPod(nodeDir);
  await pod.client.call("Sync", {
    vmi: diskVmi(pod.uid, name),
    prepared: { baseImages: { containerdisk: guest.qcow2 } },
  });
  const con = await Console.connect(pod.paths.consoleSocket); // replays what came before
  await con.waitFor(new RegExp(guest.marker), 300_000);
  const ms = (con.chunks.find((c) => c.data.includes("READY"))?.at ?? performance.now()) - t0;
  con.close();
  return { pod, ms, t0, wall0, chunks: con.chunks };
}
