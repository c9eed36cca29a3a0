// npm run bench:migration — live migration through `tsvirt up --nodes 2` beside the same job by hand, same run,
// medians of BENCH_RUNS (default 3) alternating runs:
//  - live: `virtctl migrate` (request → VMIM Succeeded, the target pod's start included) vs `virsh migrate --live
//    --p2p` between two private libvirtds by hand (bench/migration-hand.ts), total ≤ 1.5×; downtime as QEMU reports it
//    (the VMI's Migrated event; `virsh domjobinfo --completed`) ≤ 1.2×. The same 256 MiB guest on both sides (the
//    tsvirt VM's own domain XML), dirtying memory at a fixed rate (DIRTY_MIB MiB of /dev/shm rewritten every second),
//    its containerDisk overlay copied incrementally, the same max downtime, bandwidth (unlimited), multifd (off) and
//    peer-to-peer settings.
//  - block migration of a 1 GiB local disk and cold migration: null until those paths exist in this tree.
// Last line: one JSON object.
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { type KObject, loadConfig, RestClient, resources } from "../client/index.js";
import { CLUSTER, requirePrereqs } from "../tests/lib/prereqs.js";
import { type Cluster, startCluster, until } from "../tests/lib/up.js";
import { list, load, median, ms, r2 } from "./figures.js";
import {
  type HandDaemon,
  handDaemon,
  handNet,
  launcherSocket,
  moveDomainXml,
  parseJobInfo,
  prepareSide,
  serialShell,
  sh,
} from "./migration-hand.js";
import type { GuestShell } from "./storage-guest.js";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const NS = "default";
const VM = "migbench";
const DIRTY_MIB = Number(process.env.BENCH_DIRTY_MIB ?? 16);
const TARGET = { total: 1.5, downtime: 1.2 };
/** BENCH_ONLY=hand runs only the by-hand side (checks the baseline's plumbing before tsvirt can migrate). */
const ONLY = process.env.BENCH_ONLY;

interface Vmim extends KObject {
  status?: { phase?: string };
}
interface Vmi extends KObject {
  status?: { nodeName?: string; migrationState?: { targetPod?: string; sourcePod?: string } };
}

/** The dirtier: DIRTY_MIB MiB of random bytes in /dev/shm, copied over a second file every second. */
function startDirtier(sh: GuestShell): void {
  sh.send(
    `head -c ${DIRTY_MIB}M /dev/urandom > /dev/shm/src; (while :; do cp /dev/shm/src /dev/shm/dst; sleep 1; done) &\n`,
  );
}

/** Waits until the guest's shell answers (a command echo with the tag split so the typed line never matches). */
async function shellReady(sh: GuestShell, tag: string): Promise<void> {
  await until(`${tag}: the guest's shell`, 300_000, async () => {
    sh.send(`echo ${tag}''=ok\n`);
    await new Promise((r) => setTimeout(r, 500));
    return sh.out.text.includes(`${tag}=ok`) ? true : undefined;
  });
}

/** One tsvirt migration of the VM: wall ms from `virtctl migrate` to VMIM Succeeded, and QEMU's downtime. */
async function tsvirtMigrate(c: Cluster, client: RestClient, i: number): Promise<{ ms: number; downtimeMs?: number }> {
  const before = new Set((await client.list<Vmim>(resources.vmims, NS)).items.map((m) => m.metadata.name as string));
  const t0 = performance.now();
  await c.virtctl("migrate", VM);
  const name = await until(
    `run ${i}: the VMIM`,
    30_000,
    async () =>
      (await client.list<Vmim>(resources.vmims, NS)).items.find((m) => !before.has(m.metadata.name as string))?.metadata
        .name,
    20,
  );
  const done = await until(
    `run ${i}: VMIM ${name} Succeeded`,
    600_000,
    async () => {
      const m = await client.get<Vmim>(resources.vmims, NS, name as string);
      if (m.status?.phase === "Failed") throw new Error(`VMIM ${name} Failed: ${JSON.stringify(m.status)}`);
      return m.status?.phase === "Succeeded" ? performance.now() : undefined;
    },
    20,
  );
  const elapsed = done - t0;
  // QEMU's downtime, as the source node agent reported it on the VMI's Migrated event
  const ev = await c
    .kubectl(
      "get",
      "events",
      "-n",
      NS,
      "--field-selector",
      `involvedObject.name=${VM},reason=Migrated`,
      "-o",
      "jsonpath={range .items[*]}{.message}{'\\n'}{end}",
    )
    .catch(() => "");
  const all = [...ev.matchAll(/downtime (\d+) ms/g)];
  const last = all[all.length - 1];
  return last ? { ms: elapsed, downtimeMs: Number(last[1]) } : { ms: elapsed };
}

interface Hand {
  a: HandDaemon;
  b: HandDaemon;
  xmlA: string;
  xmlB: string;
  domain: string;
  dirA: string;
  dirB: string;
  ipB: string;
}

/** One by-hand migration A → B of the domain: wall ms around `virsh migrate`, QEMU's downtime from B's job info. */
async function handMigrate(h: Hand, i: number): Promise<{ ms: number; downtimeMs?: number }> {
  // fresh overlays on both sides, boot on A, the same dirtier as the tsvirt guest
  await sh("virsh", ["-c", h.a.uri, "destroy", h.domain]).catch(() => "");
  await sh("virsh", ["-c", h.a.uri, "undefine", h.domain]).catch(() => "");
  await sh("virsh", ["-c", h.b.uri, "destroy", h.domain]).catch(() => "");
  await sh("virsh", ["-c", h.b.uri, "undefine", h.domain]).catch(() => "");
  const work = join(h.dirA, "..");
  const xmlFileA = join(work, "a.xml");
  const xmlFileB = join(work, "b.xml");
  await writeFile(xmlFileA, h.xmlA);
  await writeFile(xmlFileB, h.xmlB);
  await sh("virsh", ["-c", h.a.uri, "define", xmlFileA]);
  await sh("virsh", ["-c", h.a.uri, "start", h.domain]);
  const serial = await until("the hand guest's serial socket", 60_000, async () =>
    serialShell(join(h.dirA, "qemu", "serial0")).catch(() => undefined),
  );
  try {
    await shellReady(serial, `HANDREADY${i}`);
    startDirtier(serial);
    await new Promise((r) => setTimeout(r, 3000)); // the dirtier running, as on the tsvirt side
    const t0 = performance.now();
    await sh(
      "virsh",
      [
        "-c",
        h.a.uri,
        "migrate",
        "--live",
        "--p2p",
        "--persistent",
        "--copy-storage-inc",
        "--migrate-disks",
        "vda",
        "--xml",
        xmlFileB,
        "--migrateuri",
        `tcp://${h.ipB}:49153`,
        "--disks-uri",
        `tcp://${h.ipB}:49154`,
        "--listen-address",
        h.ipB,
        h.domain,
        `qemu+tcp://${h.ipB}:16509/system`,
      ],
      600_000,
    );
    const elapsed = performance.now() - t0;
    // the source keeps its (migrated, shut off) definition and the completed job's statistics, as the launcher does
    const info = parseJobInfo(
      (await sh("virsh", ["-c", h.a.uri, "domjobinfo", "--completed", h.domain]).catch(() => "")) +
        (await sh("virsh", ["-c", h.b.uri, "domjobinfo", "--completed", h.domain]).catch(() => "")),
    );
    if (info.downtimeMs === undefined)
      console.log(`run ${i}: no downtime in virsh domjobinfo --completed on either side`);
    return info.downtimeMs === undefined ? { ms: elapsed } : { ms: elapsed, downtimeMs: info.downtimeMs };
  } finally {
    serial.close();
  }
}

async function main(): Promise<void> {
  requirePrereqs(...CLUSTER);
  const cleanups: (() => unknown)[] = [];
  const t = { after: (fn: () => unknown) => void cleanups.push(fn) } as unknown as TestContext;
  const work = await mkdtemp(join(tmpdir(), "tsv-bench-mig-"));
  await chmod(work, 0o755); // QEMU (libvirt-qemu) must reach the by-hand overlays and sockets below it
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  try {
    const c = await startCluster(t, { nodes: 2, name: "mgbench" });
    const client = new RestClient({ ...loadConfig({ kubeconfig: c.kubeconfig }), userAgent: "migration-bench" });
    cleanups.push(() => client.close());

    // the tsvirt VM: 256 MiB, the dirtier running
    await c.apply(c.vm(VM, { runStrategy: "Always", memory: "256Mi" }));
    await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
    const con = c.console(VM);
    await con.expect(new RegExp(c.guest.marker), 300_000);
    con.send("\n");
    await shellReady(con, "TSVREADY");
    startDirtier(con);

    // the by-hand pair: the VM's own domain XML, moved to the bench's directories
    const vmi = await client.get<Vmi>(resources.vmis, NS, VM);
    const pods = (
      await client.list<KObject>(resources.pods, NS, { labelSelector: `kubevirt.io/created-by=${vmi.metadata.uid}` })
    ).items;
    const pod = pods[0];
    if (!pod?.metadata.uid) throw new Error(`no launcher pod for ${VM}`);
    const sock = await launcherSocket(c.dir, pod.metadata.uid);
    const podDir = join(sock, "..", "..", "..");
    const domXml = await sh("virsh", [
      "-c",
      `qemu+unix:///system?socket=${sock}`,
      "dumpxml",
      "--migratable",
      `${NS}_${VM}`,
    ]);
    const domain = /<name>([^<]+)<\/name>/.exec(domXml)?.[1];
    if (!domain) throw new Error("the VM's domain XML has no name");
    const net = await handNet();
    cleanups.push(() => net.remove());
    const dirA = join(work, "a", "pod");
    const dirB = join(work, "b", "pod");
    const xmlA = moveDomainXml(domXml, podDir, dirA);
    const xmlB = moveDomainXml(domXml, podDir, dirB);
    await prepareSide(podDir, dirA, domXml);
    await prepareSide(podDir, dirB, domXml);
    const a = await handDaemon(join(work, "a", "lv"), net.a.ns);
    cleanups.push(() => a.stop());
    const b = await handDaemon(join(work, "b", "lv"), net.b.ns, net.b.ip);
    cleanups.push(() => b.stop());
    const hand: Hand = { a, b, xmlA, xmlB, domain, dirA, dirB, ipB: net.b.ip };
    console.log(
      `by hand: ${domain} between libvirtd in ${net.a.ns} and ${net.b.ns} (${net.b.ip}), p2p, incremental disk copy`,
    );

    const tv: number[] = [];
    const td: number[] = [];
    const hv: number[] = [];
    const hd: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const order = (i % 2 === 0 ? ["tsvirt", "hand"] : ["hand", "tsvirt"]).filter((x) => !ONLY || x === ONLY);
      const line: string[] = [];
      for (const side of order) {
        if (side === "tsvirt") {
          const r = await tsvirtMigrate(c, client, i);
          tv.push(r.ms);
          if (r.downtimeMs !== undefined) td.push(r.downtimeMs);
          const node = (await client.get<Vmi>(resources.vmis, NS, VM)).status?.nodeName;
          line.push(`tsvirt ${ms(r.ms)} (downtime ${r.downtimeMs ?? "?"} ms, now on ${node})`);
        } else {
          const r = await handMigrate(hand, i);
          hv.push(r.ms);
          if (r.downtimeMs !== undefined) hd.push(r.downtimeMs);
          line.push(`virsh migrate ${ms(r.ms)} (downtime ${r.downtimeMs ?? "?"} ms)`);
        }
      }
      console.log(`live run ${i + 1}/${RUNS}: ${line.join(", ")}; load ${load()}`);
    }
    con.close();

    const out = {
      total_ms: tv.length ? Math.round(median(tv)) : null,
      raw_total_ms: hv.length ? Math.round(median(hv)) : null,
      ratio: tv.length && hv.length ? r2(median(tv) / median(hv)) : null,
      downtime_ms: td.length ? Math.round(median(td)) : null,
      raw_downtime_ms: hd.length ? Math.round(median(hd)) : null,
      downtime_ratio: td.length && hd.length ? r2(median(td) / median(hd)) : null,
      block_ratio: null,
      cold_ms: null,
      cold_baseline_ms: null,
    };
    console.log("");
    console.log(`migration figures (medians of ${RUNS} alternating runs, this run's baselines):`);
    console.log(
      `  live, virtctl migrate → Succeeded: ${out.total_ms ?? "n/a"} ms (runs ${list(tv)}); virsh migrate --live --p2p by hand ${out.raw_total_ms ?? "n/a"} ms (runs ${list(hv)}); ratio ${out.ratio} (target ≤ ${TARGET.total})`,
    );
    console.log(
      `  downtime (QEMU's): ${out.downtime_ms ?? "n/a"} ms (runs ${list(td)}); by hand ${out.raw_downtime_ms ?? "n/a"} ms (runs ${list(hd)}); ratio ${out.downtime_ratio ?? "n/a"} (target ≤ ${TARGET.downtime})`,
    );
    console.log("  block migration of a 1 GiB local disk: n/a (not in this tree yet)");
    console.log("  cold migration of a 1 GiB disk: n/a (not in this tree yet)");
    console.log(JSON.stringify({ bench: "migration", ...out }));
  } finally {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  }
}

await main();
process.exit(0);
