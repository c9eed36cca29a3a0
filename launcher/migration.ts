// Live migration, the launcher's part (MIGRATION-CONTRACT §3-§4). Pure pieces: the job follower's timeout rule
// (KubeVirt's migrationMonitor: progress and completion budgets, the switch to post-copy) and the destination XML's carry-over of what
// libvirt generated on the source. I/O pieces: the target's listener (its libvirtd's socket, reachable over TCP on
// the pod IP only while it is a migration target) and the free-port choice inside the pod's network namespace.
import net from "node:net";
import { networkInterfaces } from "node:os";
import type { Logger } from "../lib/log.js";
import type { MigrationPorts } from "./protocol.js";

/** The pod's primary interface (handler/network names it; the launcher cannot import the node agent). */
export const POD_INTERFACE = "eth0";
/** KubeVirt's first direct-migration port (LibvirtDirectMigrationPort); the next ones follow. */
export const FIRST_MIGRATION_PORT = 49152;
/** How far up freePorts looks. */
export const MIGRATION_PORT_SPAN = 512;
/**
 * The ports a launcher pod keeps out of the kernel's choice of local ports (net.ipv4.ip_local_reserved_ports, set
 * by the pod network): a connection the pod makes never takes one its migration listeners or their rules use.
 */
export const MIGRATION_PORT_RANGE = `${FIRST_MIGRATION_PORT}-${FIRST_MIGRATION_PORT + MIGRATION_PORT_SPAN - 1}`;

export const GIB = 1024 ** 3;

/**
 * KubeVirt's migrationState.mode values (v1.MigrationPreCopy/PostCopy/Paused): Paused once the follower suspended the
 * guest so that the pre-copy job can finish (allowWorkloadDisruption without allowPostCopy).
 */
export type MigrationMode = "PreCopy" | "PostCopy" | "Paused";

/** What the follower remembers between samples. */
export interface FollowState {
  startedAtMs: number;
  /** The smallest remaining-data figure seen, and when it was first seen. */
  lowestRemaining?: number;
  progressAtMs: number;
  /** PostCopy or Paused once the follower assisted the job (unset: PreCopy). */
  mode?: MigrationMode;
}

export interface FollowLimits {
  /** Seconds without the remaining data shrinking. */
  progressTimeoutS: number;
  /** Seconds per GiB of guest memory + copied disks. */
  completionTimeoutPerGiB: number;
  /** Guest memory + copied disks, bytes. */
  dataBytes: number;
  /** The job was started with post-copy allowed (KubeVirt's allowPostCopy). */
  postCopy?: boolean;
  /**
   * KubeVirt's allowWorkloadDisruption: past the completion budget the job is helped to finish instead of aborted:
   * switched to post-copy when allowed, else the guest is paused (and the budget doubled, as KubeVirt's monitor).
   */
  workloadDisruption?: boolean;
}

/** Seconds the whole migration may take: per GiB (rounded up, at least 1), as KubeVirt's acceptableCompletionTime. */
export function completionBudgetS(l: FollowLimits): number {
  return l.completionTimeoutPerGiB * Math.max(1, Math.ceil(l.dataBytes / GIB));
}

/**
 * One sample of the running job → the follower's next state and, when a budget ran out, what to do (KubeVirt's
 * legacy convergence in the launcher's migrationMonitor): with workload disruption allowed, switch to post-copy
 * (when allowed; once, then the monitor never aborts: the guest already runs on the target) or pause the guest (once;
 * the budget doubles, then an overrun aborts and the source resumes it); otherwise abort, the message naming the
 * timeout. The switch waits for the memory stream to have begun (QEMU refuses it while libvirt still mirrors the
 * disks: memory iteration 0). Progress is the remaining data reaching a new low; a sample without it changes nothing.
 */
export function followStep(
  st: FollowState,
  sample: { dataRemaining?: number | undefined; memoryIteration?: number | undefined },
  nowMs: number,
  limits: FollowLimits,
): { state: FollowState; abort?: string; postCopy?: true; pause?: true } {
  const next: FollowState = { ...st };
  const rem = sample.dataRemaining;
  if (rem !== undefined && (st.lowestRemaining === undefined || rem < st.lowestRemaining)) {
    next.lowestRemaining = rem;
    next.progressAtMs = nowMs;
  }
  if (st.mode === "PostCopy") return { state: next };
  const paused = st.mode === "Paused";
  const budget = completionBudgetS(limits) * (paused ? 2 : 1);
  if (nowMs - st.startedAtMs > budget * 1000) {
    if (limits.workloadDisruption && !paused) {
      if (!limits.postCopy) return { state: { ...next, mode: "Paused" }, pause: true };
      if (sample.memoryIteration === 0) return { state: next };
      return { state: { ...next, mode: "PostCopy" }, postCopy: true };
    }
    const gib = Math.max(1, Math.ceil(limits.dataBytes / GIB));
    const why = `completionTimeoutPerGiB ${limits.completionTimeoutPerGiB} s × ${gib} GiB${paused ? ", doubled once the guest was paused" : ""}`;
    return { state: next, abort: `migration did not complete within the completion timeout of ${budget} s (${why})` };
  }
  if (nowMs - next.progressAtMs > limits.progressTimeoutS * 1000) {
    return {
      state: next,
      abort: `migration made no progress for ${limits.progressTimeoutS} s (progressTimeout)`,
    };
  }
  return { state: next };
}

/** The `<mac address='…'/>` of each `<interface>` in document order (undefined where there is none). */
function interfaceMacs(xml: string): Array<string | undefined> {
  return [...xml.matchAll(/<interface\b[\s\S]*?<\/interface>/g)].map(
    (m) => /<mac\s+address=['"]([0-9a-fA-F:]{17})['"]/.exec(m[0])?.[1],
  );
}

/**
 * The destination XML the target rendered, completed with what libvirt generated on the source and the guest
 * sees (its ABI must not change): each interface's MAC when the VMI names none, and the domain's uuid when the
 * VMI's uid is not one. Everything else (paths) stays the target's.
 */
export function destinationXml(targetXml: string, sourceXml: string): string {
  const macs = interfaceMacs(sourceXml);
  let i = 0;
  let out = targetXml.replace(/<interface\b[\s\S]*?<\/interface>/g, (block) => {
    const mac = macs[i++];
    if (!mac || /<mac\s/.test(block)) return block;
    return block.replace(/^<interface\b[^>]*>/, (open) => `${open}<mac address='${mac}'/>`);
  });
  if (!/<uuid>/.test(out)) {
    const uuid = /<uuid>([^<]+)<\/uuid>/.exec(sourceXml)?.[1];
    if (uuid) out = out.replace(/(<name>[^<]*<\/name>)/, `$1<uuid>${uuid}</uuid>`);
  }
  return out;
}

/** The pod's IPv4 address on its primary interface. */
export function podAddress(iface = POD_INTERFACE): string | undefined {
  return networkInterfaces()[iface]?.find((a) => a.family === "IPv4" && !a.internal)?.address;
}

function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ host: address, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** `n` free TCP ports on `address`, from FIRST_MIGRATION_PORT up (KubeVirt's 49152/49153), skipping taken ones. */
export async function freePorts(address: string, n: number, from = FIRST_MIGRATION_PORT): Promise<number[]> {
  const out: number[] = [];
  for (let p = from; out.length < n && p < from + MIGRATION_PORT_SPAN; p++) {
    if (await portFree(address, p)) out.push(p);
  }
  if (out.length < n) throw new Error(`no ${n} free ports from ${from} on ${address}`);
  return out;
}

/**
 * The target's listener: libvirt's connection for the source daemon (peer to peer), a TCP port on the pod IP
 * forwarded to the private libvirtd's unix socket. The daemon itself never listens on TCP (it would have to be
 * started that way, and a launcher learns that it is a migration target only after its daemon is up); only a pod
 * prepared as a target accepts, and only from the source pod's IP when it is known.
 */
export class MigrationListener {
  private server: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();
  address: string | undefined;
  ports: MigrationPorts | undefined;

  constructor(
    private readonly libvirtSocket: string,
    private readonly log: Logger,
  ) {}

  /** Idempotent: a second call answers the same address and ports (a new source address replaces the old). */
  async listen(
    address: string,
    sourceAddress: string | undefined,
  ): Promise<{ address: string; ports: MigrationPorts }> {
    this.allowed = sourceAddress;
    if (this.server && this.address === address && this.ports) return { address, ports: this.ports };
    const [libvirt, qemu, nbd] = (await freePorts(address, 3)) as [number, number, number];
    const server = net.createServer((c) => this.accept(c));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: address, port: libvirt, exclusive: true }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
    this.address = address;
    this.ports = { libvirt, qemu, nbd };
    this.log.info("listening for the incoming migration", { address, ...this.ports, source: sourceAddress });
    return { address, ports: this.ports };
  }

  private allowed: string | undefined;

  private accept(c: net.Socket): void {
    const peer = (c.remoteAddress ?? "").replace(/^::ffff:/, "");
    if (this.allowed && peer !== this.allowed) {
      this.log.warn("refused a migration connection from an unexpected peer", { peer, expected: this.allowed });
      c.destroy();
      return;
    }
    const u = net.createConnection(this.libvirtSocket);
    this.conns.add(c).add(u);
    const done = (): void => {
      c.destroy();
      u.destroy();
      this.conns.delete(c);
      this.conns.delete(u);
    };
    c.on("error", done).on("close", done);
    u.on("error", done).on("close", done);
    c.setNoDelay(true);
    c.pipe(u);
    u.pipe(c);
  }

  /**
   * No new connection: the domain arrived, and a port left open would hand its libvirtd to whatever pod gets the
   * source's IP next. The source's connection stays until it ends (libvirt finishes the job over it).
   */
  stopAccepting(): void {
    if (!this.server) return;
    this.server.close();
    this.server = undefined;
    this.log.info("the incoming migration arrived: no longer listening", { address: this.address, ...this.ports });
  }

  close(): void {
    this.server?.close();
    this.server = undefined;
    for (const c of this.conns) c.destroy();
    this.conns.clear();
  }
}

/**
 * Whether a migration in post-copy failed after the switch-over, from the source domain's state: libvirt marks it
 * PostcopyFailed (Paused, or Running on a target whose pages stopped coming), and a domain that stopped otherwise
 * than by migrating lost its guest too. Neither side holds the whole guest then (its memory is split between the
 * nodes): KubeVirt fails the migration and the VMI ("VMI is irrecoverable due to failed post-copy migration"); it is
 * never resumed or retried. Returns why, or undefined while the post-copy job may still complete.
 */
export function postCopyFailure(
  mode: MigrationMode | undefined,
  domain: { state: string; reason: string } | undefined,
): string | undefined {
  if (mode !== "PostCopy" || !domain) return undefined;
  if (domain.reason === "PostcopyFailed")
    return `post-copy migration failed after the switch-over (domain ${domain.state}/PostcopyFailed): the guest is irrecoverable`;
  if ((domain.state === "Shutoff" || domain.state === "Crashed") && domain.reason !== "Migrated")
    return `post-copy migration failed after the switch-over (domain ${domain.state}/${domain.reason}): the guest is irrecoverable`;
  return undefined;
}
