// npm run bench:migration — migration through `tsvirt up --nodes 2` beside the same job by hand, same run, medians
// of BENCH_RUNS (default 3) alternating runs:
//  - live: `virtctl migrate` (request → VMIM Succeeded, the target pod's start included) vs `virsh migrate --live
//    --p2p` between two private libvirtds by hand (bench/migration-hand.ts), total ≤ 1.5×; downtime as QEMU reports it
//    (the VMI's Migrated event; `virsh domjobinfo --completed`) ≤ 1.2×. The same 256 MiB guest on both sides (the
//    tsvirt VM's own domain XML), dirtying memory at a fixed rate (DIRTY_MIB MiB of /dev/shm rewritten every second),
//    its containerDisk overlay copied incrementally, the same max downtime (the one tsvirt's migration ran with:
//    KubeVirt's default 900 ms, set on the by-hand job too), bandwidth (unlimited), multifd (off) and peer-to-peer
//    settings.
//  - block: a running VM with a 1 GiB node-local disk holding FILL_MIB MiB of random data the guest wrote (an
//    emptyDisk; BENCH_BLOCK_DISK=dv: a local DataVolume, once live migration of local DVs exists) migrated by
//    `virtctl migrate` vs the same domain by hand (`virsh migrate --live --p2p --copy-storage-inc` of the same disks:
//    for a disk without a backing file that is --copy-storage-all; the target's disk pre-created empty at full
//    size, as the target launcher does), ≤ 1.5×.
//  - cold: a stopped VM's 1 GiB local DataVolume (FILL_MIB MiB of random data) moved to the other node by a VMIM
//    (request → Succeeded) vs a by-hand stream of the same volume file between the two node namespaces (socat from
//    node A's namespace to a socat in node B's, then fsync and sha256 of what arrived, compared with the source's).
// BENCH_PHASES (default "live,block,cold") picks the phases; BENCH_MAX_DOWNTIME_MS sets the KubeVirt object's
// migrations.maxDowntimeMs (the by-hand job follows whatever tsvirt's ran with). Last line: one JSON object.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { TestContext } from "node:test";
import { defaultConfiguration, KUBEVIRT_NAME } from "../api/kubevirt/v1/kubevirt.js";
import { KUBEVIRT_NAMESPACE } from "../api/kubevirt/v1/well-known.js";
import { type KObject, loadConfig, RestClient, resources } from "../client/index.js";
import { gatewayOf, nodeNetns, parseCidr } from "../handler/network/index.js";
import { CLUSTER, requirePrereqs } from "../tests/lib/prereqs.js";
import { IMMEDIATE, volumeFile } from "../tests/lib/storage.js";
import { type Cluster, startCluster, until } from "../tests/lib/up.js";
import { list, load, median, ms, r2 } from "./figures.js";
import {
  copiedDisks,
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
const BLOCK_VM = "migblock";
const COLD_VM = "migcold";
const DIRTY_MIB = Number(process.env.BENCH_DIRTY_MIB ?? 16);
/** Random data on the block and cold disks (written in 16 MiB pieces). */
const FILL_MIB = Number(process.env.BENCH_FILL_MIB ?? 256);
/** The block phase's disk: "empty" (an emptyDisk, default) or "dv" (a local DataVolume: issue 12 item 4). */
const BLOCK_DISK = process.env.BENCH_BLOCK_DISK === "dv" ? "dv" : "empty";
const MAX_DOWNTIME_MS = process.env.BENCH_MAX_DOWNTIME_MS ? Number(process.env.BENCH_MAX_DOWNTIME_MS) : undefined;
const PHASES = new Set((process.env.BENCH_PHASES ?? "live,block,cold").split(","));
const TARGET = { total: 1.5, downtime: 1.2, block: 1.5 };
/** BENCH_ONLY=hand runs only the by-hand side (checks the baseline's plumbing before tsvirt can migrate). */
const ONLY = process.env.BENCH_ONLY;
const MiB = 2 ** 20;

interface Vmim extends KObject {
  status?: { phase?: string };
}
interface Vmi extends KObject {
  status?: {
    nodeName?: string;
    migrationState?: { targetPod?: string; sourcePod?: string; migrationConfiguration?: { maxDowntimeMs?: number } };
  };
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

/** The guest writes FILL_MIB MiB of random data (one 16 MiB random piece, repeated) to `dev`, synced. */
async function fillDisk(sh: GuestShell, dev: string): Promise<void> {
  const pieces = Math.ceil(FILL_MIB / 16);
  sh.send(
    `head -c 16M /dev/urandom > /dev/shm/fill; i=0; while [ $i -lt ${pieces} ]; do dd if=/dev/shm/fill of=${dev} bs=1M seek=$((i*16)) conv=fsync 2>/dev/null; i=$((i+1)); done; rm /dev/shm/fill; sync; echo FILLED''=ok\n`,
  );
  await until(`the guest filling ${dev}`, 600_000, async () => (sh.out.text.includes("FILLED=ok") ? true : undefined));
}

/** One tsvirt migration of `vm`: wall ms from the request (`virtctl migrate`, or the VMIM `create`) to Succeeded. */
async function tsvirtMigrate(
  c: Cluster,
  client: RestClient,
  vm: string,
  i: number,
  request: () => Promise<unknown> = () => c.virtctl("migrate", vm),
): Promise<{ ms: number; downtimeMs?: number }> {
  const before = new Set((await client.list<Vmim>(resources.vmims, NS)).items.map((m) => m.metadata.name as string));
  const t0 = performance.now();
  await request();
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
      `involvedObject.name=${vm},reason=Migrated`,
      "-o",
      "jsonpath={range .items[*]}{.message}{'\\n'}{end}",
    )
    .catch(() => "");
  const all = [...ev.matchAll(/downtime (\d+) ms/g)];
  const last = all[all.length - 1];
  return last ? { ms: elapsed, downtimeMs: Number(last[1]) } : { ms: elapsed };
}

/** The two by-hand libvirtds (A: source, B: destination listening on TCP). */
interface HandPair {
  a: HandDaemon;
  b: HandDaemon;
  ipB: string;
  work: string;
  /** The max downtime of tsvirt's last migration (its effective migrationConfiguration), KubeVirt's default before. */
  maxDowntimeMs: number;
}

/**
 * One live/block tsvirt migration of `vm`; afterwards the max downtime it ran with is kept for the by-hand runs (the
 * same setting on both sides) and the node it runs on now is answered.
 */
async function tsvirtLive(
  c: Cluster,
  client: RestClient,
  p: HandPair,
  vm: string,
  i: number,
): Promise<{ ms: number; downtimeMs?: number; node?: string | undefined }> {
  const r = await tsvirtMigrate(c, client, vm, i);
  const st = (await client.get<Vmi>(resources.vmis, NS, vm)).status;
  const max = st?.migrationState?.migrationConfiguration?.maxDowntimeMs;
  if (max) p.maxDowntimeMs = max;
  return { ...r, node: st?.nodeName };
}

/** A directory of the tsvirt VM's files (its pod dir, a local volume's dir) and where each by-hand side has it. */
interface Root {
  from: string;
  a: string;
  b: string;
}

/** One tsvirt VM's domain as the by-hand pair runs it: its XML moved to A's and B's directories. */
interface HandVm {
  podXml: string;
  roots: Root[];
  xmlA: string;
  xmlB: string;
  domain: string;
  /** A's pod dir (the serial socket is below it). */
  dirA: string;
  /** What the migration copies, as the node agent picks it (node-local writable disks). */
  disks: { target: string; file: string }[];
}

/**
 * Prepares B's side of the VM from A's copy (the tsvirt pod's files are gone once it migrated): overlays fresh over
 * the same backing file, the copied disks empty at full size, as a migration target's launcher creates them.
 */
async function prepareB(h: HandVm): Promise<void> {
  for (const r of h.roots) {
    const fresh = h.disks.filter((d) => d.file.startsWith(`${r.from}/`)).map((d) => r.a + d.file.slice(r.from.length));
    await prepareSide(r.a, r.b, h.xmlA, fresh);
  }
}

/**
 * The tsvirt VM's domain (dumpxml --migratable from its launcher's daemon), prepared on both by-hand sides: the
 * pod dir's files, and `volumeDirs`' (local volumes the domain uses) copied to A and created fresh on B.
 */
async function handVm(
  c: Cluster,
  client: RestClient,
  p: HandPair,
  vm: string,
  volumeDirs: string[] = [],
): Promise<HandVm> {
  const vmi = await client.get<Vmi>(resources.vmis, NS, vm);
  const pods = (
    await client.list<KObject & { status?: { phase?: string } }>(resources.pods, NS, {
      labelSelector: `kubevirt.io/created-by=${vmi.metadata.uid}`,
    })
  ).items;
  const pod = pods.find((x) => x.status?.phase === "Running") ?? pods[0];
  if (!pod?.metadata.uid) throw new Error(`no launcher pod for ${vm}`);
  const sock = await launcherSocket(c.dir, pod.metadata.uid);
  const podDir = join(sock, "..", "..", "..");
  const podXml = await sh("virsh", [
    "-c",
    `qemu+unix:///system?socket=${sock}`,
    "dumpxml",
    "--migratable",
    `${NS}_${vm}`,
  ]);
  const domain = /<name>([^<]+)<\/name>/.exec(podXml)?.[1];
  if (!domain) throw new Error(`${vm}'s domain XML has no name`);
  const roots: Root[] = [podDir, ...volumeDirs].map((from, i) => ({
    from,
    a: join(p.work, vm, "a", String(i)),
    b: join(p.work, vm, "b", String(i)),
  }));
  const move = (side: "a" | "b"): string => roots.reduce((x, r) => moveDomainXml(x, r.from, r[side]), podXml);
  const h: HandVm = {
    podXml,
    roots,
    xmlA: move("a"),
    xmlB: move("b"),
    domain,
    dirA: roots[0]?.a ?? "",
    disks: roots.flatMap((r) => copiedDisks(podXml, r.from)),
  };
  for (const r of roots) await prepareSide(r.from, r.a, podXml);
  await prepareB(h);
  return h;
}

/** Removes the domain from both by-hand daemons. */
async function handClean(p: HandPair, domain: string): Promise<void> {
  for (const d of [p.a, p.b]) {
    await sh("virsh", ["-c", d.uri, "destroy", domain]).catch(() => "");
    await sh("virsh", ["-c", d.uri, "undefine", domain]).catch(() => "");
  }
}

/**
 * One by-hand migration A → B of the domain: wall ms around `virsh migrate`, QEMU's downtime from the completed job.
 * `fresh`: B's copied disks are re-created empty first (the block phase: nothing of the disk on B beforehand).
 */
async function handMigrate(
  p: HandPair,
  h: HandVm,
  i: number,
  opts: { dirty: boolean; fresh: boolean; maxDowntimeMs: number },
): Promise<{ ms: number; downtimeMs?: number }> {
  // boot on A (its overlays as the previous run left them: the guest's data stays), the same dirtier as tsvirt's
  await handClean(p, h.domain);
  if (opts.fresh) await prepareB(h);
  const xmlFileA = join(h.dirA, "..", "..", "a.xml");
  const xmlFileB = join(h.dirA, "..", "..", "b.xml");
  await writeFile(xmlFileA, h.xmlA);
  await writeFile(xmlFileB, h.xmlB);
  await sh("virsh", ["-c", p.a.uri, "define", xmlFileA]);
  await sh("virsh", ["-c", p.a.uri, "start", h.domain]);
  const serial = await until("the hand guest's serial socket", 60_000, async () =>
    serialShell(join(h.dirA, "qemu", "serial0")).catch(() => undefined),
  );
  try {
    await shellReady(serial, `HANDREADY${i}`);
    if (opts.dirty) startDirtier(serial);
    // the max downtime tsvirt's migration ran with (KubeVirt's migrations.maxDowntimeMs, which the source launcher
    // sets on the job): QEMU's own default (300 ms) would be a different setting
    const setDowntime = () =>
      sh("virsh", ["-c", p.a.uri, "migrate-setmaxdowntime", h.domain, String(opts.maxDowntimeMs)]).then(
        () => true,
        () => false,
      );
    // before the job if libvirt takes it then, else as soon as the job runs (the launcher sets it on its first sample)
    let downtimeSet = await setDowntime();
    await new Promise((r) => setTimeout(r, 3000)); // settled (the dirtier running), as on the tsvirt side
    const t0 = performance.now();
    let migrating = true;
    const setter = (async () => {
      for (let k = 0; !downtimeSet && migrating && k < 100; k++) {
        await new Promise((r) => setTimeout(r, 100));
        downtimeSet = await setDowntime();
      }
    })();
    await sh(
      "virsh",
      [
        "-c",
        p.a.uri,
        "migrate",
        "--live",
        "--p2p",
        "--persistent",
        "--copy-storage-inc",
        "--migrate-disks",
        h.disks.map((d) => d.target).join(","),
        "--xml",
        xmlFileB,
        "--migrateuri",
        `tcp://${p.ipB}:49153`,
        "--disks-uri",
        `tcp://${p.ipB}:49154`,
        "--listen-address",
        p.ipB,
        h.domain,
        `qemu+tcp://${p.ipB}:16509/system`,
      ],
      600_000,
    ).finally(() => {
      migrating = false;
    });
    const elapsed = performance.now() - t0;
    await setter;
    if (!downtimeSet) console.log(`run ${i}: the by-hand job's max downtime could not be set`);
    // the source keeps its (migrated, shut off) definition and the completed job's statistics, as the launcher does
    const info = parseJobInfo(
      (await sh("virsh", ["-c", p.a.uri, "domjobinfo", "--completed", h.domain]).catch(() => "")) +
        (await sh("virsh", ["-c", p.b.uri, "domjobinfo", "--completed", h.domain]).catch(() => "")),
    );
    if (info.downtimeMs === undefined)
      console.log(`run ${i}: no downtime in virsh domjobinfo --completed on either side`);
    return info.downtimeMs === undefined ? { ms: elapsed } : { ms: elapsed, downtimeMs: info.downtimeMs };
  } finally {
    // the migrated guest keeps running on B until the next by-hand run (as the tsvirt guest runs during by-hand runs)
    serial.close();
  }
}

/** Stops and deletes a VM (its guest would compete for the CPUs with the next phase). */
async function removeVm(c: Cluster, vm: string): Promise<void> {
  await c.kubectl("delete", "vm", vm, "--wait=false").catch(() => "");
  await c.kubectl("wait", "--for=delete", `vmi/${vm}`, "--timeout=180s").catch(() => "");
}

interface Series {
  tsvirt: number[];
  hand: number[];
}

/** Alternating runs of the two sides (tsvirt first on even runs). */
async function alternate(
  what: string,
  tsvirt: (i: number) => Promise<string>,
  hand: (i: number) => Promise<string>,
): Promise<void> {
  for (let i = 0; i < RUNS; i++) {
    const order = (i % 2 === 0 ? ["tsvirt", "hand"] : ["hand", "tsvirt"]).filter((x) => !ONLY || x === ONLY);
    const line: string[] = [];
    for (const side of order) line.push(side === "tsvirt" ? await tsvirt(i) : await hand(i));
    console.log(`${what} run ${i + 1}/${RUNS}: ${line.join(", ")}; load ${load()}`);
  }
}

const at = (xs: number[]): number | null => (xs.length ? Math.round(median(xs)) : null);
const ratio = (s: Series): number | null =>
  s.tsvirt.length && s.hand.length ? r2(median(s.tsvirt) / median(s.hand)) : null;

/** The live phase: the 256 MiB guest dirtying memory, migrated back and forth; total and downtime series. */
async function livePhase(c: Cluster, client: RestClient, p: HandPair): Promise<{ total: Series; downtime: Series }> {
  await c.apply(c.vm(VM, { runStrategy: "Always", memory: "256Mi" }));
  await c.waitFor(`vmi/${VM}`, "{.status.phase}", "Running", 300_000);
  const con = c.console(VM);
  await con.expect(new RegExp(c.guest.marker), 300_000);
  con.send("\n");
  await shellReady(con, "TSVREADY");
  startDirtier(con);
  const h = await handVm(c, client, p, VM);
  console.log(`live: ${h.domain} by hand between libvirtd A and B (${p.ipB}), p2p, incremental disk copy`);
  const total: Series = { tsvirt: [], hand: [] };
  const downtime: Series = { tsvirt: [], hand: [] };
  await alternate(
    "live",
    async (i) => {
      const r = await tsvirtLive(c, client, p, VM, i);
      total.tsvirt.push(r.ms);
      if (r.downtimeMs !== undefined) downtime.tsvirt.push(r.downtimeMs);
      return `tsvirt ${ms(r.ms)} (downtime ${r.downtimeMs ?? "?"} ms, now on ${r.node})`;
    },
    async (i) => {
      const r = await handMigrate(p, h, i, { dirty: true, fresh: false, maxDowntimeMs: p.maxDowntimeMs });
      total.hand.push(r.ms);
      if (r.downtimeMs !== undefined) downtime.hand.push(r.downtimeMs);
      return `virsh migrate ${ms(r.ms)} (downtime ${r.downtimeMs ?? "?"} ms, max ${p.maxDowntimeMs} ms)`;
    },
  );
  con.close();
  await handClean(p, h.domain);
  await removeVm(c, VM);
  return { total, downtime };
}

/** The block phase's VM: 256 MiB, a 1 GiB node-local disk `data` (an emptyDisk, or a local DV on node A). */
function blockVm(c: Cluster): Record<string, unknown> {
  const vm = c.vm(BLOCK_VM, { runStrategy: "Always", memory: "256Mi" }) as {
    spec: {
      dataVolumeTemplates?: unknown[];
      template: { spec: { domain: { devices: { disks: unknown[] } }; volumes: unknown[] } };
    };
  };
  vm.spec.template.spec.domain.devices.disks.push({ name: "data", disk: { bus: "virtio" } });
  if (BLOCK_DISK === "dv") {
    vm.spec.dataVolumeTemplates = [
      {
        metadata: {
          name: `${BLOCK_VM}-data`,
          annotations: { "volume.kubernetes.io/selected-node": c.nodes[0] ?? "" },
        },
        spec: { source: { blank: {} }, storage: { resources: { requests: { storage: "1Gi" } } } },
      },
    ];
    vm.spec.template.spec.volumes.push({ name: "data", dataVolume: { name: `${BLOCK_VM}-data` } });
  } else {
    vm.spec.template.spec.volumes.push({ name: "data", emptyDisk: { capacity: "1Gi" } });
  }
  return vm;
}

/** The block phase: the guest fills its 1 GiB disk, then block migrations back and forth vs by hand. */
async function blockPhase(c: Cluster, client: RestClient, p: HandPair): Promise<Series> {
  await c.apply(blockVm(c));
  await c.waitFor(`vmi/${BLOCK_VM}`, "{.status.phase}", "Running", 300_000);
  const con = c.console(BLOCK_VM);
  await con.expect(new RegExp(c.guest.marker), 300_000);
  con.send("\n");
  await shellReady(con, "BLKREADY");
  await fillDisk(con, "/dev/vdb");
  con.close();
  const volumeDirs =
    BLOCK_DISK === "dv"
      ? [dirname((await volumeFile(c, (await dataClaim(c, BLOCK_VM)) || `${BLOCK_VM}-data`)).image)]
      : [];
  const h = await handVm(c, client, p, BLOCK_VM, volumeDirs);
  console.log(
    `block: ${h.domain} (${BLOCK_DISK === "dv" ? "local DataVolume" : "emptyDisk"} of 1 GiB, ${FILL_MIB} MiB random), by hand copying ${h.disks.map((d) => d.target).join(",")}`,
  );
  const s: Series = { tsvirt: [], hand: [] };
  await alternate(
    "block",
    async (i) => {
      const r = await tsvirtLive(c, client, p, BLOCK_VM, i);
      s.tsvirt.push(r.ms);
      return `tsvirt ${ms(r.ms)} (now on ${r.node})`;
    },
    async (i) => {
      const r = await handMigrate(p, h, i, { dirty: false, fresh: true, maxDowntimeMs: p.maxDowntimeMs });
      s.hand.push(r.ms);
      return `virsh migrate --copy-storage ${ms(r.ms)}`;
    },
  );
  await handClean(p, h.domain);
  await removeVm(c, BLOCK_VM);
  return s;
}

/** The claim of a VM's `data` volume (its DataVolume's name). */
function dataClaim(c: Cluster, vm: string): Promise<string> {
  return c.kubectl("get", "vm", vm, "-o", `jsonpath={.spec.template.spec.volumes[?(@.name=="data")].dataVolume.name}`);
}

/** FILL_MIB MiB of random data written into a stopped VM's volume file (every other 16 MiB piece), synced. */
async function fillFile(path: string): Promise<void> {
  const fh = await open(path, "r+");
  try {
    for (let k = 0; k < Math.ceil(FILL_MIB / 16); k++) await fh.write(randomBytes(16 * MiB), 0, 16 * MiB, k * 32 * MiB);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function sha256(path: string): Promise<string> {
  return (await sh("sha256sum", [path])).split(" ")[0] ?? "";
}

/** socat's transfer size (its default, 8 KiB, would make the baseline a slow stream). */
const SOCAT_BLOCK = String(MiB);

/** Runs a command to its end; rejects naming it and its stderr. */
function runTo(file: string, args: string[]): Promise<void> {
  return sh(file, args, 600_000).then(() => undefined);
}

/**
 * The cold baseline: the volume file streamed from node A's namespace to a socat in node B's (listening on B's
 * fabric address), written, fsynced, its sha256 compared with the source's (hashed while it is sent). Wall ms from
 * the sender's start to the verified copy.
 */
async function handStream(c: Cluster, from: string, to: string, file: string, out: string): Promise<number> {
  // the node's address on the fabric is its pod gateway (handler/network/fabric.ts)
  const gw = gatewayOf(parseCidr(await c.kubectl("get", "node", to, "-o", "jsonpath={.spec.podCIDR}")));
  const port = "49300";
  await rm(out, { force: true });
  const recv = spawn(
    "ip",
    [
      "netns",
      "exec",
      nodeNetns(to),
      "socat",
      "-u",
      "-b",
      SOCAT_BLOCK,
      `TCP-LISTEN:${port},bind=${gw},reuseaddr`,
      `CREATE:${out}`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let err = "";
  recv.stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const received = new Promise<void>((resolve, reject) =>
    recv.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`socat receiver: ${code} ${err}`)))),
  );
  await until(`the receiver in ${nodeNetns(to)}`, 10_000, async () =>
    (await sh("ip", ["netns", "exec", nodeNetns(to), "ss", "-Hltn", "sport", "=", `:${port}`])).trim()
      ? true
      : undefined,
  );
  const t0 = performance.now();
  const [want] = await Promise.all([
    sha256(file),
    runTo("ip", [
      "netns",
      "exec",
      nodeNetns(from),
      "socat",
      "-u",
      "-b",
      SOCAT_BLOCK,
      `OPEN:${file}`,
      `TCP:${gw}:${port}`,
    ]),
    received,
  ]);
  await runTo("ip", ["netns", "exec", nodeNetns(to), "sync", out]);
  const got = await sha256(out);
  const elapsed = performance.now() - t0;
  await rm(out, { force: true });
  if (got !== want) throw new Error(`the by-hand stream's copy differs: sha256 ${got}, source ${want}`);
  return elapsed;
}

/** The cold phase: a stopped VM's filled 1 GiB local DV moved between the nodes vs the same file streamed by hand. */
async function coldPhase(c: Cluster, client: RestClient, work: string): Promise<Series> {
  const [n1 = "", n2 = ""] = c.nodes;
  const vm = c.vm(COLD_VM, { runStrategy: "Halted", memory: "256Mi" }) as {
    spec: {
      dataVolumeTemplates?: unknown[];
      template: { spec: { domain: { devices: { disks: unknown[] } }; volumes: unknown[] } };
    };
  };
  vm.spec.dataVolumeTemplates = [
    {
      metadata: {
        name: `${COLD_VM}-data`,
        annotations: { "volume.kubernetes.io/selected-node": n1, [IMMEDIATE]: "true" },
      },
      spec: { source: { blank: {} }, storage: { resources: { requests: { storage: "1Gi" } } } },
    },
  ];
  vm.spec.template.spec.domain.devices.disks.push({ name: "data", disk: { bus: "virtio" } });
  vm.spec.template.spec.volumes.push({ name: "data", dataVolume: { name: `${COLD_VM}-data` } });
  await c.apply(vm);
  await c.waitFor(`dv/${COLD_VM}-data`, "{.status.phase}", "Succeeded", 300_000);
  const claim = (): Promise<string> => dataClaim(c, COLD_VM);
  const first = await volumeFile(c, await claim());
  await fillFile(first.image);
  console.log(`cold: ${COLD_VM}'s 1 GiB local DataVolume (${FILL_MIB} MiB random) on ${first.node}`);
  const s: Series = { tsvirt: [], hand: [] };
  let n = 0;
  await alternate(
    "cold",
    async (i) => {
      const from = (await volumeFile(c, await claim())).node;
      const to = from === n1 ? n2 : n1;
      const name = `${COLD_VM}-${++n}`;
      const r = await tsvirtMigrate(c, client, COLD_VM, i, () =>
        c.apply({
          apiVersion: "kubevirt.io/v1",
          kind: "VirtualMachineInstanceMigration",
          metadata: { name, namespace: NS },
          spec: { vmiName: COLD_VM, addedNodeSelector: { "kubernetes.io/hostname": to } },
        }),
      );
      s.tsvirt.push(r.ms);
      const now = await volumeFile(c, await claim());
      return `tsvirt ${ms(r.ms)} (${from} → ${now.node})`;
    },
    async () => {
      const v = await volumeFile(c, await claim());
      const to = v.node === n1 ? n2 : n1;
      const t = await handStream(c, v.node, to, v.image, join(work, "cold-stream.img"));
      s.hand.push(t);
      return `socat stream ${v.node} → ${to} + fsync + sha256 ${ms(t)}`;
    },
  );
  return s;
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

    // the by-hand pair: two private libvirtds in their own network namespaces
    const net = await handNet();
    cleanups.push(() => net.remove());
    const a = await handDaemon(join(work, "a", "lv"), net.a.ns);
    cleanups.push(() => a.stop());
    const b = await handDaemon(join(work, "b", "lv"), net.b.ns, net.b.ip);
    cleanups.push(() => b.stop());
    // BENCH_MAX_DOWNTIME_MS: the KubeVirt object's migrations.maxDowntimeMs (both sides follow it); else KubeVirt's
    const maxDowntimeMs = MAX_DOWNTIME_MS ?? defaultConfiguration().migrations?.maxDowntimeMs ?? 900;
    if (MAX_DOWNTIME_MS !== undefined) {
      await c.kubectl("create", "namespace", KUBEVIRT_NAMESPACE).catch(() => "");
      await c.apply({
        apiVersion: "kubevirt.io/v1",
        kind: "KubeVirt",
        metadata: { name: KUBEVIRT_NAME, namespace: KUBEVIRT_NAMESPACE },
        spec: { configuration: { migrations: { maxDowntimeMs: MAX_DOWNTIME_MS } } },
      });
    }
    const pair: HandPair = { a, b, ipB: net.b.ip, work, maxDowntimeMs };

    // A phase that fails prints why and leaves its figures null; the others still run.
    const phase = async <T>(name: string, none: T, fn: () => Promise<T>): Promise<T> => {
      if (!PHASES.has(name)) return none;
      try {
        return await fn();
      } catch (e) {
        console.log(`${name} phase failed: ${e instanceof Error ? e.message : String(e)}`);
        return none;
      }
    };
    const empty = (): Series => ({ tsvirt: [], hand: [] });
    const live = await phase("live", { total: empty(), downtime: empty() }, () => livePhase(c, client, pair));
    const block = await phase("block", empty(), () => blockPhase(c, client, pair));
    const cold = await phase("cold", empty(), () => coldPhase(c, client, work));

    const out = {
      total_ms: at(live.total.tsvirt),
      raw_total_ms: at(live.total.hand),
      ratio: ratio(live.total),
      downtime_ms: at(live.downtime.tsvirt),
      raw_downtime_ms: at(live.downtime.hand),
      downtime_ratio: ratio(live.downtime),
      block_ratio: ratio(block),
      cold_ms: at(cold.tsvirt),
      cold_baseline_ms: at(cold.hand),
      block_ms: at(block.tsvirt),
      raw_block_ms: at(block.hand),
      cold_ratio: ratio(cold),
    };
    const blockLabel = BLOCK_DISK === "dv" ? "local DataVolume" : "emptyDisk the guest filled";
    console.log("");
    console.log(`migration figures (medians of ${RUNS} alternating runs, this run's baselines):`);
    console.log(
      `  live, virtctl migrate → Succeeded: ${out.total_ms ?? "n/a"} ms (runs ${list(live.total.tsvirt)}); virsh migrate --live --p2p by hand ${out.raw_total_ms ?? "n/a"} ms (runs ${list(live.total.hand)}); ratio ${out.ratio ?? "n/a"} (target ≤ ${TARGET.total})`,
    );
    console.log(
      `  downtime (QEMU's): ${out.downtime_ms ?? "n/a"} ms (runs ${list(live.downtime.tsvirt)}); by hand ${out.raw_downtime_ms ?? "n/a"} ms (runs ${list(live.downtime.hand)}); ratio ${out.downtime_ratio ?? "n/a"} (target ≤ ${TARGET.downtime})`,
    );
    console.log(
      `  block migration of a 1 GiB local disk (${blockLabel}, ${FILL_MIB} MiB random): ${out.block_ms ?? "n/a"} ms (runs ${list(block.tsvirt)}); virsh migrate --copy-storage by hand ${out.raw_block_ms ?? "n/a"} ms (runs ${list(block.hand)}); ratio ${out.block_ratio ?? "n/a"} (target ≤ ${TARGET.block})`,
    );
    console.log(
      `  cold migration of a 1 GiB local DataVolume (${FILL_MIB} MiB random), VMIM → Succeeded: ${out.cold_ms ?? "n/a"} ms (runs ${list(cold.tsvirt)}); by-hand stream between the node namespaces + fsync + sha256 ${out.cold_baseline_ms ?? "n/a"} ms (runs ${list(cold.hand)}); ratio ${out.cold_ratio ?? "n/a"}`,
    );
    console.log(JSON.stringify({ bench: "migration", ...out }));
  } finally {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
  }
}

await main();
process.exit(0);
