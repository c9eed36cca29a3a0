// npm run bench:launcher — virt-launcher figures, each beside its baseline from the same run.
// (a) spawn of a launcher pod (daemon not started yet, capability cache warm) → the guest's ready marker, booting
//     the test guest's bootable qcow2 as a containerDisk overlay; (b) the same domain's QEMU started directly with
//     the argv libvirt generated for it; alternating, ≥5 runs each, medians; (c) libvirtd ready, cold and warm
//     capability cache; (d) PSS of every process of a launcher pod except QEMU, two VMs running; (e) ms per call,
//     one-shot virsh vs the remote-protocol client. Last line: one JSON object.
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { LibvirtHypervisor, VirshHypervisor } from "../launcher/index.js";
import { type Pod, podProcesses, startPod, waitFor } from "../tests/e2e/launcher-lib.js";
import { ensureGuest, type Guest } from "../tests/guest/index.js";
import { daemonReadyMs, launcherBoot } from "./launcher-boot.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CALLS = Number(process.env.BENCH_CALLS ?? 30);
const root = "/tmp/tsv-bench";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r2 = (x: number): number => Math.round(x * 100) / 100;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { maxBuffer: 8 << 20 }, (e, out, err) =>
      e ? reject(new Error(err || e.message)) : resolve(out),
    ),
  );
}

/** The argv libvirt generated for the running domain, from its per-domain QEMU log. */
async function libvirtArgv(pod: Pod, domain: string): Promise<string[]> {
  const log = await readFile(path.join(pod.paths.libvirtDir, "log", "qemu", `${domain}.log`), "utf8");
  const start = log.lastIndexOf("/usr/bin/qemu-system-x86_64");
  if (start < 0) throw new Error("no QEMU command line in the domain log");
  const lines = log.slice(start).split("\n");
  const argv: string[] = [];
  for (const l of lines) {
    const t = l.replace(/\\$/, "").trim();
    if (!t) break;
    // libvirt quotes JSON arguments with single quotes
    for (const m of t.matchAll(/'([^']*)'|(\S+)/g)) argv.push(m[1] ?? m[2] ?? "");
    if (!l.endsWith("\\")) break;
  }
  return argv;
}

/**
 * (b): the same argv, QEMU started directly. Rewritten only where libvirt hands QEMU things it prepared itself:
 * no -S (libvirt starts paused, then `cont`), monitor and serial on plain paths instead of passed fds, no master
 * key secret (a file libvirt deletes), a fresh overlay.
 */
async function directBoot(guest: Guest, argv: string[], dir: string): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const overlay = path.join(dir, "overlay.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", guest.qcow2, overlay]);
  const serial = path.join(dir, "serial.sock");
  const out: string[] = [];
  let skip = false;
  for (const [i, a] of argv.entries()) {
    if (skip) {
      skip = false;
      continue;
    }
    if (a === "-S") continue;
    if (a === "-object" && argv[i + 1]?.includes('"secret"')) {
      skip = true;
      continue;
    }
    let v = a;
    // sockets libvirt opened itself and passed as fds → plain paths QEMU binds
    const sockId = /^socket,id=([A-Za-z0-9_-]+),fd=\d+,/.exec(v)?.[1];
    if (sockId)
      v = `socket,id=${sockId},path=${sockId === "charserial0" ? serial : path.join(dir, `${sockId}.sock`)},server=on,wait=off`;
    if (v.startsWith("vnc=unix:")) v = v.replace(/^vnc=unix:[^,]*/, `vnc=unix:${path.join(dir, "vnc")}`);
    v = v.replace(/"filename":"[^"]*overlay\.qcow2"/, `"filename":"${overlay}"`);
    out.push(v);
  }
  const t0 = performance.now();
  const q = spawn(out[0] ?? "qemu-system-x86_64", out.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  q.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  try {
    const sock = await waitFor(
      "QEMU's serial socket",
      () =>
        existsSync(serial)
          ? new Promise<net.Socket | undefined>((resolve) => {
              const s = net.createConnection(serial);
              s.once("connect", () => resolve(s));
              s.once("error", () => resolve(undefined));
            })
          : q.exitCode !== null
            ? Promise.reject(new Error(`QEMU exited: ${err}`))
            : undefined,
      60_000,
    );
    let text = "";
    const ms = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no marker from direct QEMU")), 300_000);
      sock.on("data", (d: Buffer) => {
        text += d.toString("latin1");
        if (text.includes(guest.marker)) {
          clearTimeout(t);
          resolve(performance.now() - t0);
        }
      });
    });
    sock.destroy();
    return ms;
  } finally {
    q.kill("SIGKILL");
  }
}

function smapsRollup(pid: number): { pss: number; rss: number } {
  const txt = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(txt)?.[1] ?? 0);
  return { pss: kb("Pss"), rss: kb("Rss") };
}

async function main(): Promise<void> {
  const guest = await ensureGuest();
  await rm(root, { recursive: true, force: true });
  const warmNode = path.join(root, "node-warm");
  const pods: Pod[] = [];
  const cleanup = (): void => {
    for (const p of pods) p.kill();
  };
  process.on("exit", cleanup);
  try {
    // (c) cold: a node without a golden cache (this pod also creates the node's golden cache)
    const cold: number[] = [];
    const warm: number[] = [];
    const first = await startPod(warmNode);
    pods.push(first);
    cold.push(daemonReadyMs(first));
    first.kill();

    // (a)/(b) alternating
    const a: number[] = [];
    const b: number[] = [];
    let argv: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const { pod, ms } = await launcherBoot(guest, warmNode, `bench${i}`);
      pods.push(pod);
      a.push(ms);
      warm.push(daemonReadyMs(pod));
      if (i === 0) argv = await libvirtArgv(pod, `default_bench${i}`);
      pod.client.close();
      pod.kill();
      b.push(await directBoot(guest, argv, path.join(root, "direct")));
      console.log(
        `run ${i + 1}/${RUNS}: launcher ${Math.round(a[i] ?? 0)} ms, direct QEMU ${Math.round(b[i] ?? 0)} ms`,
      );
    }
    for (let i = 0; i < 2; i++) {
      const coldPod = await startPod(path.join(root, `node-cold-${i}`));
      pods.push(coldPod);
      cold.push(daemonReadyMs(coldPod));
      coldPod.kill();
    }

    // (d) two VMs running: PSS of each pod's processes except QEMU; (e) ms per call on one of them
    const two = await Promise.all([launcherBoot(guest, warmNode, "pss0"), launcherBoot(guest, warmNode, "pss1")]);
    for (const t of two) pods.push(t.pod);
    let pssLauncher = 0;
    let pssDaemons = 0;
    let rssTotal = 0;
    const breakdown: string[] = [];
    for (const { pod } of two) {
      for (const [name, pids] of Object.entries(podProcesses(pod.pid))) {
        if (name.startsWith("qemu")) continue;
        for (const pid of pids) {
          const m = smapsRollup(pid);
          if (name === "libvirtd") pssDaemons += m.pss;
          else pssLauncher += m.pss;
          rssTotal += m.rss;
          breakdown.push(`${name}:${Math.round(m.pss / 1024)}`);
        }
      }
      const u = smapsRollup(pod.pid); // unshare, the pod's outermost process
      pssLauncher += u.pss;
      rssTotal += u.rss;
      breakdown.push(`unshare:${Math.round(u.pss / 1024)}`);
    }
    const mib = (kb: number): number => kb / 1024 / 2; // per VM

    const socket = path.join(two[0]?.pod.paths.libvirtDir ?? "", "run", "libvirt-sock");
    const domain = "default_pss0";
    const virsh = new VirshHypervisor(socket);
    const rpc = await LibvirtHypervisor.connect(socket);
    const tv: number[] = [];
    const tr: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      let t = performance.now();
      await virsh.state(domain);
      tv.push(performance.now() - t);
      t = performance.now();
      await rpc.state(domain);
      tr.push(performance.now() - t);
    }
    await rpc.close();

    const ra = median(a);
    const rb = median(b);
    console.log("");
    console.log(`direct QEMU argv (from libvirt): ${argv.join(" ")}`);
    console.log(
      `launcher argv: unshare --pid --fork --kill-child=SIGKILL --mount-proc -- bash -c <pod init> … node dist/cmd/tsvirt.js launcher --uid … --pod-dir …`,
    );
    console.log(
      `(a) spawn → ready marker, launcher pod:  median ${Math.round(ra)} ms  runs ${a.map(Math.round).join(", ")}`,
    );
    console.log(
      `(b) QEMU directly, libvirt's argv:       median ${Math.round(rb)} ms  runs ${b.map(Math.round).join(", ")}`,
    );
    console.log(`    ratio a/b ${r2(ra / rb)} (target ≤ 1.25)`);
    console.log(
      `(c) libvirtd ready: cold ${Math.round(median(cold))} ms, warm ${Math.round(median(warm))} ms (ratio warm/cold ${r2(median(warm) / median(cold))})`,
    );
    console.log(
      `(d) per VM, two VMs running: PSS launcher ${r1(mib(pssLauncher))} MiB + daemon ${r1(mib(pssDaemons))} MiB = ${r1(mib(pssLauncher + pssDaemons))} MiB (KubeVirt budget 190 MiB, target ≤ 60 MiB; ratio ${r2(mib(pssLauncher + pssDaemons) / 190)}); RSS ${r1(mib(rssTotal))} MiB`,
    );
    console.log(`    processes (PSS MiB): ${breakdown.join(" ")}`);
    console.log(
      `(e) ms per call (domain state): virsh ${r2(median(tv))}, remote protocol ${r2(median(tr))} (ratio ${r1(median(tv) / median(tr))}×)`,
    );
    console.log(
      JSON.stringify({
        bench: "launcher",
        ready_ms_launcher: Math.round(ra),
        ready_ms_qemu: Math.round(rb),
        ratio: r2(ra / rb),
        daemon_ready_ms_cold: Math.round(median(cold)),
        daemon_ready_ms_warm: Math.round(median(warm)),
        pss_mib_launcher: r1(mib(pssLauncher)),
        pss_mib_daemons: r1(mib(pssDaemons)),
        rss_mib_total: r1(mib(rssTotal)),
        ms_per_call_virsh: r2(median(tv)),
        ms_per_call_rpc: r2(median(tr)),
      }),
    );
  } finally {
    cleanup();
  }
}

await main();
process.exit(0);
