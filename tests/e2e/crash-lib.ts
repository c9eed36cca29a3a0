// The crash matrix (issue 6, item 6): `kill -9` of api, controller, handler or launcher at a state observed through
// the API (launcher pod bound, VMI Scheduled, VMI Running, stop accepted), then convergence. One `it` per cell,
// one shared `tsvirt up` per file. States are observed through HTTP watches on the API server (no polling of state
// before a kill, no sleeps); every later wait is bounded and polls what a user could observe.
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { VMI_PHASE_RANK } from "../../api/index.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { type Cluster, delay, guestAnswers, qemuFor, startCluster, until } from "../lib/up.js";

export type Component = "api" | "controller" | "handler" | "launcher";
export type KillState = "bound" | "scheduled" | "running" | "stop";
export const STATES: readonly KillState[] = ["bound", "scheduled", "running", "stop"];

interface Meta {
  name: string;
  namespace?: string;
  uid: string;
  resourceVersion: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
}
export interface KObj {
  metadata: Meta;
  // biome-ignore lint/suspicious/noExplicitAny: watched objects of several kinds, read field by field
  spec?: any;
  // biome-ignore lint/suspicious/noExplicitAny: as above
  status?: any;
}
export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED";
  obj: KObj;
  rv: number;
}

/**
 * A list+watch of one resource over HTTP that survives API server restarts: it resumes from the last
 * resourceVersion seen (or re-lists, pruning what vanished, when that is too old). Keeps the current objects and
 * every event, and wakes waiters on each event.
 */
export class ApiWatch {
  readonly objects = new Map<string, KObj>();
  readonly events: WatchEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly abort = new AbortController();
  private rv = "";
  private running: Promise<void> | undefined;

  constructor(
    private readonly base: string,
    private readonly path: string,
  ) {}

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private emit(type: WatchEvent["type"], obj: KObj): void {
    const rv = Number(obj.metadata.resourceVersion);
    if (type === "DELETED") this.objects.delete(obj.metadata.uid);
    else this.objects.set(obj.metadata.uid, obj);
    this.events.push({ type, obj, rv });
    for (const w of [...this.waiters]) w();
  }

  private async loop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      const initial = this.rv === "";
      const q = initial ? "sendInitialEvents=true&allowWatchBookmarks=true" : `resourceVersion=${this.rv}`;
      const seen = new Set<string>();
      try {
        const res = await fetch(`${this.base}${this.path}?watch=true&${q}`, { signal: this.abort.signal });
        if (!res.ok || !res.body) throw new Error(`watch ${this.path}: HTTP ${res.status}`);
        const dec = new TextDecoder();
        let buf = "";
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += dec.decode(chunk, { stream: true });
          for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line.trim() === "") continue;
            const ev = JSON.parse(line) as { type: string; object: KObj & { code?: number } };
            if (ev.type === "ERROR") {
              // 410 Expired: re-list from scratch.
              if (ev.object.code === 410) this.rv = "";
              throw new Error(`watch ${this.path}: ${JSON.stringify(ev.object)}`);
            }
            if (ev.type === "BOOKMARK") {
              this.rv = ev.object.metadata.resourceVersion;
              if (initial) {
                // The initial state is complete: whatever we knew and did not see again is gone.
                for (const [uid, o] of [...this.objects]) if (!seen.has(uid)) this.emit("DELETED", o);
              }
              continue;
            }
            seen.add(ev.object.metadata.uid);
            this.rv = ev.object.metadata.resourceVersion;
            this.emit(ev.type as WatchEvent["type"], ev.object);
          }
        }
      } catch {
        // The API server went away (or the watch expired): reconnect below.
      }
      if (this.abort.signal.aborted) return;
      // Reconnecting to a restarting API server: a bounded retry pace, not synchronization.
      await delay(100);
    }
  }

  /** Resolves with `pred`'s first non-undefined value, tested now and after every event (bounded). */
  when<T>(what: string, timeoutMs: number, pred: () => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = (): boolean => {
        let v: T | undefined;
        try {
          v = pred();
        } catch (e) {
          done();
          reject(e);
          return true;
        }
        if (v === undefined) return false;
        done();
        resolve(v);
        return true;
      };
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter = (): void => {
        check();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** Current objects (optionally filtered). */
  list(pred: (o: KObj) => boolean = () => true): KObj[] {
    return [...this.objects.values()].filter(pred);
  }
}

/** Per VMI uid, in resourceVersion order: its phase never goes backwards, its phase history only grows. */
export function phaseRegressions(events: readonly WatchEvent[]): string[] {
  const out: string[] = [];
  const last = new Map<string, { phase: string; hist: string[] }>();
  for (const e of [...events].sort((a, b) => a.rv - b.rv)) {
    if (e.type === "DELETED") continue;
    const uid = e.obj.metadata.uid;
    const phase: string = e.obj.status?.phase ?? "";
    const hist: string[] = (e.obj.status?.phaseTransitionTimestamps ?? []).map(
      (p: { phase: string; phaseTransitionTimestamp: string }) => `${p.phase}@${p.phaseTransitionTimestamp}`,
    );
    const prev = last.get(uid);
    if (prev) {
      const a = VMI_PHASE_RANK[prev.phase] ?? -1;
      const b = VMI_PHASE_RANK[phase] ?? -1;
      if (b < a || (a === 5 && phase !== prev.phase))
        out.push(`VMI ${uid}: phase ${prev.phase} -> ${phase} (rv ${e.rv})`);
      if (prev.hist.some((h, i) => hist[i] !== h))
        out.push(`VMI ${uid}: phaseTransitionTimestamps rewritten [${prev.hist}] -> [${hist}] (rv ${e.rv})`);
    }
    last.set(uid, { phase, hist });
  }
  return out;
}

const VM_RANK: Record<string, number> = { Stopped: 0, CrashLoopBackOff: 0, Starting: 1, Running: 2 };

const readyOf = (o: KObj): boolean =>
  (o.status?.conditions ?? []).some((x: { type: string; status: string }) => x.type === "Ready" && x.status === "True");

/**
 * VM status, in resourceVersion order with the VMI events of the same VM. Until something disrupts the VM (a VMI
 * of it fails, finishes or is deleted, or a stop is requested): printableStatus only moves forward
 * (Stopped < Starting < Running) and Ready, once True, stays True. Without a stop request, a VM that has started
 * never shows Stopped again (runStrategy Always: it is restarting, KubeVirt shows CrashLoopBackOff or Starting),
 * and never Stopping, Paused, Migrating or an error status.
 */
export function vmStatusRegressions(
  vmEvents: readonly WatchEvent[],
  vmiEvents: readonly WatchEvent[],
  /** The VM was disrupted after this resourceVersion (its launcher was killed): Ready may drop from then on. */
  disruptedAfter = Number.POSITIVE_INFINITY,
): string[] {
  const out: string[] = [];
  const all = [...vmEvents.map((e) => ({ e, vm: true })), ...vmiEvents.map((e) => ({ e, vm: false }))].sort(
    (a, b) => a.e.rv - b.e.rv,
  );
  let reached = 0;
  let started = false;
  let ready = false;
  let last = "";
  let stopping = false;
  let disrupted = false;
  for (const { e, vm } of all) {
    // From the kill until its VMI is seen ending, the VM is going down: Ready may drop at any point.
    if (!disrupted && e.rv > disruptedAfter) {
      disrupted = true;
      reached = 0;
      ready = false;
    }
    if (!vm) {
      const ph = e.obj.status?.phase;
      if (e.type === "DELETED" || e.obj.metadata.deletionTimestamp || ph === "Failed" || ph === "Succeeded") {
        reached = 0;
        ready = false;
        if (disrupted) disruptedAfter = Number.POSITIVE_INFINITY;
      }
      continue;
    }
    const goingDown = disrupted && disruptedAfter !== Number.POSITIVE_INFINITY;
    if (e.type === "DELETED" || e.obj.metadata.deletionTimestamp) {
      stopping = true;
      continue;
    }
    if (e.obj.spec?.runStrategy === "Halted" || (e.obj.status?.stateChangeRequests ?? []).length > 0) stopping = true;
    if (stopping) continue;
    if (readyOf(e.obj)) ready = !goingDown;
    else if (ready) {
      out.push(`VM Ready went False with its VMI still running (rv ${e.rv})`);
      ready = false;
    }
    const ps: string = e.obj.status?.printableStatus ?? "";
    if (ps === "" || ps === last) continue;
    last = ps;
    const r = VM_RANK[ps];
    if (r === undefined) {
      out.push(`VM printableStatus ${ps} with no stop requested (rv ${e.rv})`);
      continue;
    }
    if (ps === "Stopped" && started && e.obj.spec?.runStrategy === "Always") {
      out.push(`VM printableStatus Stopped while runStrategy Always restarts it (rv ${e.rv})`);
    } else if (r < reached) out.push(`VM printableStatus went back to ${ps} with no VMI failure (rv ${e.rv})`);
    if (r > 0) started = true;
    reached = Math.max(reached, r);
  }
  return out;
}

/** At no point two live launcher pods (not terminating, not finished) for one VMI. */
export function duplicatePods(podEvents: readonly WatchEvent[]): string[] {
  const out: string[] = [];
  const live = new Map<string, KObj>();
  for (const e of [...podEvents].sort((a, b) => a.rv - b.rv)) {
    const o = e.obj;
    const ph = o.status?.phase;
    if (e.type === "DELETED" || o.metadata.deletionTimestamp || ph === "Succeeded" || ph === "Failed")
      live.delete(o.metadata.uid);
    else live.set(o.metadata.uid, o);
    const byVmi = new Map<string, string[]>();
    for (const p of live.values()) {
      const v = p.metadata.labels?.["kubevirt.io/created-by"] ?? "";
      byVmi.set(v, [...(byVmi.get(v) ?? []), p.metadata.name]);
    }
    for (const [v, names] of byVmi)
      if (names.length > 1) out.push(`VMI ${v}: ${names.length} live launcher pods ${names} (rv ${e.rv})`);
  }
  return out;
}

interface Proc {
  pid: number;
  ppid: number;
  argv: string[];
}

/** Live (non-zombie) processes with their parent and command line. */
export async function processes(): Promise<Proc[]> {
  const out: Proc[] = [];
  for (const d of await readdir("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const rest = ((await readFile(`/proc/${d}/stat`, "utf8")).split(") ")[1] ?? "").split(" ");
      if (rest[0] === "Z" || rest[0] === "X") continue;
      const argv = (await readFile(`/proc/${d}/cmdline`, "utf8")).split("\0").filter(Boolean);
      if (argv.length > 0) out.push({ pid: Number(d), ppid: Number(rest[1]), argv });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The virt-launcher process (node … tsvirt.js launcher --uid UID) of a VMI, as the pod runner started it. */
export async function launcherPids(vmiUid: string): Promise<number[]> {
  return (await processes())
    .filter((p) => p.argv[2] === "launcher" && /tsvirt\.js$/.test(p.argv[1] ?? "") && p.argv.includes(vmiUid))
    .map((p) => p.pid);
}

/**
 * Every process of a VMI's launcher pods: the ones naming its uid in their command line (the pod's unshare and
 * init, the launcher, QEMU through its SMBIOS/uuid), and all their descendants (libvirtd, QEMU).
 */
export async function podProcesses(vmiUid: string): Promise<Proc[]> {
  const procs = await processes();
  const parent = new Map(procs.map((p) => [p.pid, p.ppid]));
  const roots = new Set(procs.filter((p) => p.argv.some((a) => a.includes(vmiUid))).map((p) => p.pid));
  return procs.filter((p) => {
    let cur: number | undefined = p.pid;
    for (let depth = 0; cur !== undefined && cur > 1 && depth < 64; depth++) {
      if (roots.has(cur)) return true;
      cur = parent.get(cur);
    }
    return false;
  });
}

/**
 * QEMU processes of a VMI: by its uid in QEMU's command line, or as a process of one of the VMI's launcher pods
 * (a pod is one PID namespace under an init naming the uid: an orphaned QEMU stays below it).
 */
export async function qemuOf(vmiUid: string): Promise<number[]> {
  const byPod = (await podProcesses(vmiUid)).filter((p) => /qemu-system/.test(p.argv[0] ?? "")).map((p) => p.pid);
  return [...new Set([...(await qemuFor(vmiUid)), ...byPod])].sort((a, b) => a - b);
}

export const describeProcs = (ps: Proc[]): string =>
  ps.map((p) => `${p.pid}:${p.argv.slice(0, 3).join(" ")}`).join(", ");

interface Cell {
  component: Component;
  state: KillState;
}

export interface MatrixOptions {
  /** Name of the file's suite. */
  title: string;
  components: readonly Component[];
  /** Short name for the data dir and node prefix. */
  name: string;
}

/** Defines the suite: one shared `tsvirt up`, one `it` per (component, state) cell. */
export function crashMatrix(o: MatrixOptions): void {
  requirePrereqs(...CLUSTER);
  describe(o.title, () => {
    let c: Cluster;
    let vms: ApiWatch;
    let vmis: ApiWatch;
    let pods: ApiWatch;
    const cleanups: (() => unknown)[] = [];
    before(async () => {
      const ctx = { after: (fn: () => unknown) => cleanups.push(fn) } as unknown as TestContext;
      c = await startCluster(ctx, { name: o.name });
      const base = `http://127.0.0.1:${c.port}`;
      vms = new ApiWatch(base, "/apis/kubevirt.io/v1/namespaces/default/virtualmachines");
      vmis = new ApiWatch(base, "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances");
      pods = new ApiWatch(base, "/api/v1/namespaces/default/pods");
      for (const w of [vms, vmis, pods]) w.start();
      cleanups.push(() => Promise.all([vms.stop(), vmis.stop(), pods.stop()]));
    });
    after(async () => {
      for (const fn of cleanups.reverse()) await fn();
    });

    for (const component of o.components) {
      for (const state of STATES) {
        it(`kill -9 ${component} at ${state === "stop" ? "stop accepted" : state}`, { timeout: 900_000 }, (t) =>
          runCell(t, c, { vms, vmis, pods }, { component, state }),
        );
      }
    }
  });
}

interface Watches {
  vms: ApiWatch;
  vmis: ApiWatch;
  pods: ApiWatch;
}

const isReady = (o: KObj | undefined): boolean =>
  (o?.status?.conditions ?? []).some(
    (x: { type: string; status: string }) => x.type === "Ready" && x.status === "True",
  );

async function runCell(t: TestContext, c: Cluster, w: Watches, cell: Cell): Promise<void> {
  const name = `cm-${cell.component.slice(0, 4)}-${cell.state}`;
  const node = c.nodes[0]!;
  const mark = { vm: w.vms.events.length, vmi: w.vmis.events.length, pod: w.pods.events.length };
  const vmOf = (): KObj | undefined => w.vms.list((o) => o.metadata.name === name)[0];
  const vmisOf = (): KObj[] => w.vmis.list((o) => o.metadata.name === name);
  const podsOf = (): KObj[] => w.pods.list((o) => o.metadata.labels?.["vm.kubevirt.io/name"] === name);
  const cellVmis = (): WatchEvent[] => w.vmis.events.slice(mark.vmi).filter((e) => e.obj.metadata.name === name);
  const uidsSeen = (): string[] => [...new Set(cellVmis().map((e) => e.obj.metadata.uid))];
  const manifest = c.vm(name, { runStrategy: "Always" }) as { spec: { template: { spec: Record<string, unknown> } } };
  manifest.spec.template.spec.terminationGracePeriodSeconds = 30;

  const component = cell.component === "handler" ? `handler-${node}` : cell.component;
  const oldPid = cell.component === "launcher" ? 0 : await c.pid(component);
  if (oldPid) assert.ok(await launcherOrAlive(oldPid), `${component} (pid ${oldPid}) runs before the cell`);

  let killedUid = "";
  let killRv = Number.POSITIVE_INFINITY;
  const kill = async (vmiUid: string): Promise<void> => {
    killedUid = vmiUid;
    const last = (x: ApiWatch): number => x.events[x.events.length - 1]?.rv ?? 0;
    killRv = Math.max(last(w.vms), last(w.vmis), last(w.pods));
    if (cell.component !== "launcher") {
      process.kill(oldPid, "SIGKILL");
      return;
    }
    // The launcher pod's process appears once the node agent starts it: kill it the moment it exists.
    const pid = await until(`the launcher of VMI ${vmiUid}`, 180_000, async () => (await launcherPids(vmiUid))[0], 20);
    process.kill(pid, "SIGKILL");
  };

  try {
    const podUidOfVmi = (o: KObj): string => o.metadata.labels?.["kubevirt.io/created-by"] ?? "";
    if (cell.state === "stop") {
      await c.apply(manifest);
      await convergedRunning(t, c, w, name);
      const vmi = vmisOf()[0]!;
      // Stop only a booted guest: its ACPI power button is handled (a graceful stop, as users do it).
      const con = c.console(name);
      await con.expect(new RegExp(c.guest.marker), 300_000);
      con.close();
      const accepted = w.vms.when(`VM ${name} stop accepted`, 120_000, () => {
        const vm = vmOf();
        const halted =
          vm?.spec?.runStrategy === "Halted" ||
          (vm?.status?.stateChangeRequests ?? []).some((r: { action: string }) => r.action === "Stop");
        const live = w.vmis.objects.get(vmi.metadata.uid);
        return halted && live ? live : undefined;
      });
      await c.virtctl("stop", name);
      const at = await accepted;
      await kill(at.metadata.uid);
      t.diagnostic(`killed ${cell.component} at stop accepted; VMI phase ${at.status?.phase}`);
    } else {
      const observed =
        cell.state === "bound"
          ? w.pods.when(`launcher pod of ${name} bound`, 300_000, () => {
              const p = podsOf().find((x) => x.spec?.nodeName);
              return p ? podUidOfVmi(p) : undefined;
            })
          : w.vmis.when(`VMI ${name} ${cell.state}`, 300_000, () => {
              const want = cell.state === "scheduled" ? "Scheduled" : "Running";
              return vmisOf().find((x) => x.status?.phase === want)?.metadata.uid;
            });
      await c.apply(manifest);
      const uid = await observed;
      await kill(uid);
      const now = w.vmis.objects.get(uid);
      t.diagnostic(`killed ${cell.component} at ${cell.state}; VMI phase then ${now?.status?.phase ?? "?"}`);
    }

    if (oldPid) await restarted(c, component, oldPid, node);

    if (cell.state === "stop") {
      await until(`VM ${name} Stopped with nothing left`, 300_000, async () => {
        const vm = vmOf();
        if (vm?.status?.printableStatus !== "Stopped" || vmisOf().length > 0 || podsOf().length > 0) return undefined;
        for (const u of uidsSeen()) if ((await podProcesses(u)).length > 0) return undefined;
        return true;
      });
      assert.equal((await c.kubectl("get", "vm", name, "-o", "jsonpath={.status.printableStatus}")).trim(), "Stopped");
      assert.equal((await c.kubectl("get", "vmi", "-l", `kubevirt.io/vm=${name}`, "-o", "name")).trim(), "");
      assert.equal((await c.kubectl("get", "pods", "-l", `vm.kubevirt.io/name=${name}`, "-o", "name")).trim(), "");
      // The guest shut down on the stop request: Succeeded, as in KubeVirt, whichever control-plane process died on
      // the way. A killed launcher is a crash of the pod (Failed), unless the guest was already off.
      const ended = lastPhase(cellVmis(), killedUid);
      t.diagnostic(`VMI ${killedUid} ended ${ended}`);
      if (cell.component === "launcher") assert.match(ended, /^(Succeeded|Failed)$/);
      else assert.equal(ended, "Succeeded", "a VMI stopped gracefully ends Succeeded");
    } else {
      // (a killed launcher's VMI must be replaced: until then the watch caches still show it Running)
      await convergedRunning(t, c, w, name, cell.component === "launcher" ? killedUid : undefined);
      // A launcher that died ends its pod: the VMI fails and the VM (runStrategy Always) gets a new one.
      const cur = vmisOf()[0]!.metadata.uid;
      if (cell.component === "launcher") assert.notEqual(cur, killedUid, "a new VMI replaces the failed one");
      else assert.equal(cur, killedUid, "the same VMI survives a control-plane restart");
      // Its guest really boots and answers (and so handles the ACPI button: the teardown's delete is graceful and
      // prompt, not the 30 s grace period a guest still booting runs out).
      await guestAnswers(c, name, "cm");
    }
    for (const u of uidsSeen()) {
      const qemus = await qemuOf(u);
      const live = cell.state !== "stop" && w.vmis.objects.has(u);
      assert.equal(qemus.length, live ? 1 : 0, `QEMU processes for VMI ${u}`);
      if (!live) assert.deepEqual(describeProcs(await podProcesses(u)), "", `nothing left of VMI ${u}`);
    }

    const vmEvents = w.vms.events.slice(mark.vm).filter((e) => e.obj.metadata.name === name);
    const podEvents = w.pods.events
      .slice(mark.pod)
      .filter((e) => e.obj.metadata.labels?.["vm.kubevirt.io/name"] === name);
    t.diagnostic(`VM statuses: ${statusTrail(vmEvents)}`);
    t.diagnostic(`VMI phases: ${phaseTrail(cellVmis())}`);
    assert.deepEqual(phaseRegressions(cellVmis()), [], "no VMI phase regression");
    const vmRegress = vmStatusRegressions(vmEvents, cellVmis(), cell.component === "launcher" ? killRv : undefined);
    assert.deepEqual(vmRegress, [], "no VM status regression (Ready included)");
    assert.deepEqual(duplicatePods(podEvents), [], "never two live launcher pods for one VMI");
  } finally {
    await deleteVm(c, w, name, uidsSeen);
  }
}

async function launcherOrAlive(pid: number): Promise<boolean> {
  return readFile(`/proc/${pid}/cmdline`, "utf8").then(
    (s) => s.includes("tsvirt"),
    () => false,
  );
}

const controllerStarts = new Map<string, number>();

/** The supervisor restarted the component: a new pid in its pid file, alive, and healthy. */
export async function restarted(c: Cluster, component: string, oldPid: number, node: string): Promise<void> {
  const pid = await until(`${component} restarted by the supervisor`, 120_000, async () => {
    const p = await c.pid(component);
    return p !== oldPid && (await launcherOrAlive(p)) ? p : undefined;
  });
  if (component === "controller") {
    // Its informers synced and its workers run: it logs that once per start, tagged with no pid, so count them.
    const started = async () =>
      (await readFile(join(c.dir, "logs", "controller.log"), "utf8")).split("virt-controller started").length - 1;
    const before = controllerStarts.get(c.dir) ?? 1;
    await until("controller started again", 120_000, async () => ((await started()) > before ? true : undefined));
    controllerStarts.set(c.dir, await started());
  }
  if (component === "api") {
    await until("API ready", 120_000, async () =>
      (await fetch(`http://127.0.0.1:${c.port}/readyz`)).ok ? true : undefined,
    );
  }
  if (component.startsWith("handler-")) {
    // The new agent re-registers its node with its new port; it answers /healthz there (loopback only).
    await until(`handler ${pid} healthy`, 120_000, async () => {
      const n = await c.getJson<{
        status: {
          addresses: { type: string; address: string }[];
          daemonEndpoints: { kubeletEndpoint: { Port: number } };
        };
      }>("node", node);
      const ip = n.status.addresses.find((a) => a.type === "InternalIP")?.address ?? "";
      if (!ip.startsWith("127.")) return true;
      const r = await fetch(`http://${ip}:${n.status.daemonEndpoints.kubeletEndpoint.Port}/healthz`);
      return r.ok ? true : undefined;
    });
  }
}

/**
 * Running and Ready, exactly one live VMI, one launcher pod, one launcher and one QEMU; old VMIs fully gone.
 * `replacedUid`: a VMI that must not be the live one (its launcher was killed).
 */
async function convergedRunning(
  t: TestContext,
  c: Cluster,
  w: Watches,
  name: string,
  replacedUid?: string,
): Promise<void> {
  const vmOf = (): KObj | undefined => w.vms.list((o) => o.metadata.name === name)[0];
  let why = "";
  await until(
    `VM ${name} Running and Ready, alone`,
    300_000,
    async () => {
      const vm = vmOf();
      const vmis = w.vmis.list((o) => o.metadata.name === name);
      const pods = w.pods.list((o) => o.metadata.labels?.["vm.kubevirt.io/name"] === name);
      const uid = vmis[0]?.metadata.uid ?? "";
      const q = uid ? await qemuOf(uid) : [];
      const l = uid ? await launcherPids(uid) : [];
      why = `VM ${vm?.status?.printableStatus} Ready=${isReady(vm)}, ${vmis.length} VMI(s) (${vmis[0]?.status?.phase}), ${pods.length} pod(s), QEMU ${q}, launcher ${l}`;
      if (vm?.status?.printableStatus !== "Running" || !isReady(vm)) return undefined;
      if (vmis.length !== 1 || pods.length !== 1 || vmis[0]?.status?.phase !== "Running") return undefined;
      if (replacedUid !== undefined && uid === replacedUid) return undefined;
      if (q.length !== 1 || l.length !== 1) return undefined;
      return true;
    },
    250,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; last seen: ${why}`);
  });
  // What a user sees, through kubectl.
  const vmi = await c.getJson<{ items: KObj[] }>("vmi", "-l", `kubevirt.io/vm=${name}`);
  assert.equal(vmi.items.length, 1, "exactly one VMI");
  assert.equal(vmi.items[0]!.status.phase, "Running");
  const pods = await c.getJson<{ items: KObj[] }>("pods", "-l", `vm.kubevirt.io/name=${name}`);
  assert.equal(pods.items.length, 1, "exactly one launcher pod");
  assert.equal(pods.items[0]!.status.phase, "Running");
  const uid = vmi.items[0]!.metadata.uid;
  assert.equal((await qemuOf(uid)).length, 1, "exactly one QEMU for the VMI");
  assert.equal((await launcherPids(uid)).length, 1, "exactly one launcher for the VMI");
  assert.equal(
    (await c.kubectl("get", "vm", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')).trim(),
    "True",
  );
  t.diagnostic(`VM ${name} Running and Ready with VMI ${uid}`);
}

async function deleteVm(c: Cluster, w: Watches, name: string, uids: () => string[]): Promise<void> {
  await c.kubectl("delete", "vm", name, "--ignore-not-found", "--wait=true", "--timeout=180s");
  await until(`nothing left of VM ${name}`, 180_000, async () => {
    if (w.vmis.list((o) => o.metadata.name === name).length > 0) return undefined;
    if (w.pods.list((o) => o.metadata.labels?.["vm.kubevirt.io/name"] === name).length > 0) return undefined;
    for (const u of uids()) if ((await podProcesses(u)).length > 0) return undefined;
    if ((await podDirProcesses(c.dir)).length > 0) return undefined;
    return true;
  });
  assert.equal((await c.kubectl("get", "vmi", "-l", `kubevirt.io/vm=${name}`, "-o", "name")).trim(), "");
  assert.equal((await c.kubectl("get", "pods", "-l", `vm.kubevirt.io/name=${name}`, "-o", "name")).trim(), "");
  for (const u of uids()) assert.equal(describeProcs(await podProcesses(u)), "", `no process left of VMI ${u}`);
  // Cells run one at a time: with the VM gone, no process of the cluster may still use a pod directory (a
  // launcher, libvirtd, QEMU or anything else that outlived its pod, whatever its uid).
  assert.equal(describeProcs(await podDirProcesses(c.dir)), "", "no process left in any pod directory");
}

/** Processes whose command line names a pod directory of this cluster (DIR/nodes/NODE/pods/...). */
async function podDirProcesses(dir: string): Promise<Proc[]> {
  const mine = (a: string): boolean => a.includes(`${dir}/nodes/`) && /\/nodes\/[^/]+\/pods\//.test(a);
  return (await processes()).filter((p) => p.argv.some(mine));
}

/** The last phase a VMI showed (its deletion event carries its final state). */
export function lastPhase(events: readonly WatchEvent[], uid: string): string {
  let phase = "";
  for (const e of events) if (e.obj.metadata.uid === uid && e.obj.status?.phase) phase = e.obj.status.phase;
  return phase;
}

function statusTrail(events: readonly WatchEvent[]): string {
  const out: string[] = [];
  for (const e of events) {
    const ps = e.obj.status?.printableStatus ?? "";
    const s = e.type === "DELETED" ? "(deleted)" : ps === "" ? "" : `${ps}${readyOf(e.obj) ? "/Ready" : ""}`;
    if (s !== "" && out[out.length - 1] !== s) out.push(s);
  }
  return out.join(" > ");
}

function phaseTrail(events: readonly WatchEvent[]): string {
  const out: string[] = [];
  for (const e of events) {
    const s = `${e.obj.metadata.uid.slice(0, 8)}:${e.type === "DELETED" ? "(deleted)" : (e.obj.status?.phase ?? "")}`;
    if (out[out.length - 1] !== s) out.push(s);
  }
  return out.join(" > ");
}

// The guest's shell helpers live with the cluster helpers; crash cells use them under these names.
export { askGuest as ask, START_COUNTER } from "../lib/up.js";
