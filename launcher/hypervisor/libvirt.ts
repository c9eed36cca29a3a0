// The real Hypervisor: libvirt's remote protocol over the private daemon's unix socket (one connection, pushed events).
import { isNotFound, notFound } from "../../lib/errors.js";
import { readJobStats, writePerform3Params } from "./migrate.js";
import { type DomainRef, ERR_NO_DOMAIN, LibvirtError, Proc, RemoteConnection, readDomain, writeDomain } from "./rpc.js";
import {
  type DomainEvent,
  type DomainStats,
  type DomainStatus,
  decodeState,
  type Hypervisor,
  type JobStats,
  lifecycleEventName,
  type MigrateOptions,
  notSupported,
  type Unsubscribe,
} from "./types.js";
import { XdrWriter } from "./xdr.js";

const VIR_DOMAIN_EVENT_ID_LIFECYCLE = 0;
const VIR_DOMAIN_AFFECT_LIVE = 1;
const VIR_DOMAIN_BLOCK_RESIZE_BYTES = 1;

function translate(err: unknown, name: string): unknown {
  if (err instanceof LibvirtError && err.code === ERR_NO_DOMAIN) {
    return notFound({ group: "", resource: "domains" }, name);
  }
  return err;
}

export class LibvirtHypervisor implements Hypervisor {
  private readonly refs = new Map<string, DomainRef>();
  private readonly listeners = new Set<(e: DomainEvent) => void>();
  private chain: Promise<void> = Promise.resolve();

  private constructor(readonly conn: RemoteConnection) {}

  /** Open the connection and register for lifecycle events of every domain. */
  static async connect(socketPath: string): Promise<LibvirtHypervisor> {
    const conn = await RemoteConnection.open(socketPath);
    const hv = new LibvirtHypervisor(conn);
    conn.onEvent((proc, body) => {
      if (proc !== Proc.DomainEventCallbackLifecycle) return;
      body.int(); // callbackID
      const dom = readDomain(body);
      const event = body.int();
      const detail = body.int();
      hv.refs.set(dom.name, dom);
      // Read the state after the event, in order, so listeners see libvirt's (state, reason) pair.
      hv.chain = hv.chain.then(async () => {
        let status: DomainStatus;
        try {
          status = (await hv.state(dom.name)) ?? { state: "NoState", reason: "Unknown" };
        } catch {
          return;
        }
        const e: DomainEvent = { domain: dom.name, event: lifecycleEventName(event), detail, status };
        for (const l of hv.listeners) l(e);
      });
    });
    await conn.call(
      Proc.ConnectDomainEventCallbackRegisterAny,
      new XdrWriter().int(VIR_DOMAIN_EVENT_ID_LIFECYCLE).bool(false),
    );
    return hv;
  }

  private async ref(name: string): Promise<DomainRef> {
    const cached = this.refs.get(name);
    if (cached) return cached;
    try {
      const r = await this.conn.call(Proc.DomainLookupByName, new XdrWriter().string(name));
      const d = readDomain(r);
      this.refs.set(name, d);
      return d;
    } catch (e) {
      throw translate(e, name);
    }
  }

  private async domCall(proc: number, name: string, extra?: (w: XdrWriter) => void): Promise<void> {
    const d = await this.ref(name);
    const w = writeDomain(new XdrWriter(), d);
    extra?.(w);
    try {
      await this.conn.call(proc, w);
    } catch (e) {
      throw translate(e, name);
    }
  }

  async define(xml: string): Promise<string> {
    const r = await this.conn.call(Proc.DomainDefineXml, new XdrWriter().string(xml));
    const d = readDomain(r);
    this.refs.set(d.name, d);
    return d.name;
  }

  start(name: string): Promise<void> {
    return this.domCall(Proc.DomainCreate, name);
  }

  shutdown(name: string): Promise<void> {
    return this.domCall(Proc.DomainShutdown, name);
  }

  destroy(name: string): Promise<void> {
    return this.domCall(Proc.DomainDestroy, name);
  }

  pause(name: string): Promise<void> {
    return this.domCall(Proc.DomainSuspend, name);
  }

  resume(name: string): Promise<void> {
    return this.domCall(Proc.DomainResume, name);
  }

  reset(name: string): Promise<void> {
    return this.domCall(Proc.DomainReset, name, (w) => w.uint(0));
  }

  reboot(name: string): Promise<void> {
    // VIR_DOMAIN_REBOOT_ACPI_POWER_BTN = 1: a soft reboot through the guest, as KubeVirt's SoftReboot does.
    return this.domCall(Proc.DomainReboot, name, (w) => w.uint(1));
  }

  async undefine(name: string): Promise<void> {
    await this.domCall(Proc.DomainUndefineFlags, name, (w) => w.uint(0));
    this.refs.delete(name);
  }

  async state(name: string): Promise<DomainStatus | undefined> {
    let d: DomainRef;
    try {
      d = await this.ref(name);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    try {
      const r = await this.conn.call(Proc.DomainGetState, writeDomain(new XdrWriter(), d).uint(0));
      const state = r.int();
      const reason = r.int();
      return decodeState(state, reason);
    } catch (e) {
      if (e instanceof LibvirtError && e.code === ERR_NO_DOMAIN) {
        this.refs.delete(name);
        return undefined;
      }
      throw e;
    }
  }

  async xml(name: string): Promise<string> {
    const d = await this.ref(name);
    try {
      const r = await this.conn.call(Proc.DomainGetXmlDesc, writeDomain(new XdrWriter(), d).uint(0));
      return r.string();
    } catch (e) {
      throw translate(e, name);
    }
  }

  async stats(name: string): Promise<DomainStats> {
    const d = await this.ref(name);
    try {
      const r = await this.conn.call(Proc.DomainGetInfo, writeDomain(new XdrWriter(), d));
      const state = r.uint(); // unsigned char, XDR-encoded as 4 bytes
      const maxMem = r.uhyper();
      const mem = r.uhyper();
      const vcpus = r.uint(); // unsigned short, 4 bytes
      const cpuTime = r.uhyper();
      return {
        state: decodeState(state, 0).state,
        maxMemoryKiB: Number(maxMem),
        memoryKiB: Number(mem),
        vcpus,
        cpuTimeNs: Number(cpuTime),
      };
    } catch (e) {
      throw translate(e, name);
    }
  }

  events(listener: (e: DomainEvent) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async blockCapacity(name: string, disk: string): Promise<number> {
    const d = await this.ref(name);
    try {
      const r = await this.conn.call(Proc.DomainGetBlockInfo, writeDomain(new XdrWriter(), d).string(disk).uint(0));
      r.uhyper(); // allocation
      return Number(r.uhyper()); // capacity (then physical)
    } catch (e) {
      throw translate(e, name);
    }
  }

  blockResize(name: string, disk: string, bytes: number): Promise<void> {
    return this.domCall(Proc.DomainBlockResize, name, (w) =>
      w.string(disk).hyper(BigInt(bytes)).uint(VIR_DOMAIN_BLOCK_RESIZE_BYTES),
    );
  }

  attachDevice(name: string, xml: string): Promise<void> {
    return this.domCall(Proc.DomainAttachDeviceFlags, name, (w) => w.string(xml).uint(VIR_DOMAIN_AFFECT_LIVE));
  }

  detachDevice(name: string, xml: string): Promise<void> {
    return this.domCall(Proc.DomainDetachDeviceFlags, name, (w) => w.string(xml).uint(VIR_DOMAIN_AFFECT_LIVE));
  }

  /** virDomainMigrateToURI3 with PEER2PEER: one Perform3Params call that returns when the migration has ended. */
  async migrate(name: string, opts: MigrateOptions): Promise<void> {
    const d = await this.ref(name);
    try {
      await this.conn.call(Proc.DomainMigratePerform3Params, writePerform3Params(new XdrWriter(), d, opts));
    } catch (e) {
      throw translate(e, name);
    }
  }

  async jobStats(name: string, completed = false): Promise<JobStats> {
    const d = await this.ref(name);
    try {
      // VIR_DOMAIN_JOB_STATS_COMPLETED = 1: the last finished job instead of the running one.
      const r = await this.conn.call(Proc.DomainGetJobStats, writeDomain(new XdrWriter(), d).uint(completed ? 1 : 0));
      return readJobStats(r);
    } catch (e) {
      throw translate(e, name);
    }
  }

  abortJob(name: string): Promise<void> {
    return this.domCall(Proc.DomainAbortJob, name);
  }

  setMaxDowntime(name: string, ms: number): Promise<void> {
    return this.domCall(Proc.DomainMigrateSetMaxDowntime, name, (w) => w.uhyper(BigInt(ms)).uint(0));
  }

  /** remote_domain_migrate_start_post_copy_args: dom, flags (0). */
  startPostCopy(name: string): Promise<void> {
    return this.domCall(Proc.DomainMigrateStartPostCopy, name, (w) => w.uint(0));
  }

  snapshot(_name: string, _snapshotName: string): Promise<void> {
    return Promise.reject(notSupported("Snapshots"));
  }

  close(): Promise<void> {
    return this.conn.close();
  }
}
