// Configurators for identity, memory, CPU, firmware/OS, features, clock and lifecycle (KubeVirt's compute/*.go).
import type { Clock, Cpu, Domain, HypervItem, OnOff, Timer } from "../domain/index.js";
import { parseQuantity } from "./quantity.js";
import { type Configure, type ConvertInput, invalidField, required, unsupported } from "./types.js";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const D = "spec.domain";

export function domainName(namespace: string | undefined, name: string): string {
  return `${namespace || "default"}_${name}`;
}

/** Name `{namespace}_{name}`, uuid (firmware.uuid, else the VMI uid), kubevirt metadata, domain type. */
export const metadata: Configure = ({ vmi, ctx }, dom) => {
  const meta = vmi.metadata ?? {};
  const uid = meta.uid ?? "";
  const fwUuid = vmi.spec.domain.firmware?.uuid;
  const uuid = fwUuid ?? (UUID_RE.test(uid) ? uid : undefined);
  const next: Domain = {
    ...dom,
    type: ctx.kvm ? "kvm" : "qemu",
    name: domainName(meta.namespace, meta.name ?? ""),
    metadata: { kubevirt: { uid, namespace: meta.namespace || "default", name: meta.name ?? "" } },
  };
  if (uuid !== undefined) next.uuid = uuid.toLowerCase();
  return next;
};

/** memory.guest ‖ resources.requests.memory ‖ resources.limits.memory, in bytes; hugepages. */
export const memory: Configure = (input, dom) => {
  const d = input.vmi.spec.domain;
  const candidates: [string, string | number | undefined][] = [
    [`${D}.memory.guest`, d.memory?.guest],
    [`${D}.resources.requests.memory`, d.resources?.requests?.memory],
    [`${D}.resources.limits.memory`, d.resources?.limits?.memory],
  ];
  const found = candidates.find(([, q]) => q !== undefined);
  if (!found) {
    required(input, `${D}.memory.guest`, "the guest memory is unknown (set memory.guest or resources.requests.memory)");
    return dom;
  }
  const bytes = parseQuantity(found[1] as string | number);
  if (bytes === undefined || bytes < 2 ** 20) {
    invalidField(input, found[0], `"${found[1]}" is not a memory size of at least 1Mi`);
    return dom;
  }
  const next: Domain = { ...dom, memory: Math.ceil(bytes) };
  if (d.memory?.maxGuest !== undefined) unsupported(input, `${D}.memory.maxGuest`, "memory hotplug is not supported");
  if (d.memory?.reservedOverhead?.memLock !== undefined) unsupported(input, `${D}.memory.reservedOverhead.memLock`);
  const hp = d.memory?.hugepages?.pageSize;
  if (hp !== undefined) {
    const size = parseQuantity(hp);
    if (size === undefined || size < 4096)
      invalidField(input, `${D}.memory.hugepages.pageSize`, `"${hp}" is not a page size`);
    else next.memoryBacking = { hugepages: { pageSizeKiB: size / 1024 } };
  }
  return next;
};

function cpuCount(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  const n = parseQuantity(q);
  return n === undefined ? undefined : Math.max(1, Math.ceil(n));
}

/** Topology with KubeVirt's defaults, the vCPU count, and the CPU model (TCG-safe under emulation). */
export const cpu: Configure = (input, dom) => {
  const { vmi, ctx } = input;
  const c = vmi.spec.domain.cpu ?? {};
  const res = vmi.spec.domain.resources;
  let { sockets, cores, threads } = c;
  if (sockets === undefined && cores === undefined && threads === undefined) {
    // vcpu.GetCPUTopology: no topology → sockets = CPU limit, else CPU request, else 1.
    sockets = cpuCount(res?.limits?.cpu) ?? cpuCount(res?.requests?.cpu) ?? 1;
  }
  const topology = { sockets: sockets ?? 1, cores: cores ?? 1, threads: threads ?? 1 };
  for (const [k, v] of Object.entries(topology)) {
    if (!Number.isInteger(v) || v < 1) invalidField(input, `${D}.cpu.${k}`, `must be a positive integer, got ${v}`);
  }
  const next: Cpu = { mode: "host-model", topology, features: [] };
  const model = c.model;
  if (!ctx.kvm) {
    // Under TCG there is no host CPU to model or pass through: a fixed, migratable model.
    if (model === undefined || model === "host-model" || model === "host-passthrough") {
      next.mode = "custom";
      next.model = "qemu64";
      next.check = "none";
    } else {
      next.mode = "custom";
      next.model = model;
    }
  } else if (model === "host-passthrough") next.mode = "host-passthrough";
  else if (model !== undefined && model !== "host-model") {
    next.mode = "custom";
    next.model = model;
  }
  const policies = new Set(["force", "require", "optional", "disable", "forbid"]);
  (c.features ?? []).forEach((f, i) => {
    const policy = f.policy ?? "require";
    if (!policies.has(policy)) invalidField(input, `${D}.cpu.features[${i}].policy`, `unknown policy "${policy}"`);
    else if (next.mode === "host-passthrough")
      unsupported(input, `${D}.cpu.features[${i}]`, "not with host-passthrough");
    else next.features.push({ policy: policy as Cpu["features"][number]["policy"], name: f.name });
  });
  if (c.maxSockets !== undefined) unsupported(input, `${D}.cpu.maxSockets`, "CPU hotplug is not supported");
  if (c.dedicatedCpuPlacement) unsupported(input, `${D}.cpu.dedicatedCpuPlacement`);
  if (c.isolateEmulatorThread) unsupported(input, `${D}.cpu.isolateEmulatorThread`);
  if (c.numa !== undefined) unsupported(input, `${D}.cpu.numa`);
  if (c.realtime !== undefined) unsupported(input, `${D}.cpu.realtime`);
  return { ...dom, cpu: next, vcpu: topology.sockets * topology.cores * topology.threads };
};

function parseMachine(input: ConvertInput): string {
  const t = input.vmi.spec.domain.machine?.type;
  if (t === undefined || t === "") return "q35";
  if (!/^(q35|pc-q35-[0-9.]+)$/.test(t)) {
    unsupported(input, `${D}.machine.type`, `machine type "${t}" is not supported (q35 or pc-q35-*)`);
  }
  return t;
}

/** The OEM-string key naming the VMI on the node: QEMU's argv carries it, so its process is found by VMI uid. */
export const VMI_UID_OEM_KEY = "kubevirt.io/vmi-uid";

/**
 * `kubevirt.io/vmi-uid=<uid>` as an SMBIOS type 11 OEM string, or undefined without a uid. The domain UUID stays the
 * firmware UUID (stable across VM restarts); this string changes with each VMI and the guest may ignore it.
 */
export function vmiUidOemString(uid: string | undefined): string | undefined {
  if (uid === undefined || uid === "") return undefined;
  return `${VMI_UID_OEM_KEY}=${uid}`;
}

/** q35 machine, BIOS/EFI, kernelBoot, SMBIOS sysinfo (KubeVirt's os.go and sysinfo.go). */
export const osAndFirmware: Configure = (input, dom) => {
  const { vmi, ctx } = input;
  const arch = vmi.spec.architecture;
  if (arch !== undefined && arch !== "" && arch !== "amd64") {
    unsupported(input, "spec.architecture", `architecture "${arch}" is not supported on this node (amd64)`);
  }
  const fw = vmi.spec.domain.firmware ?? {};
  const os: Domain["os"] = { arch: ctx.arch, machine: parseMachine(input), smbiosSysinfo: true };
  const features = { ...dom.features };
  const efi = fw.bootloader?.efi;
  if (fw.bootloader?.bios && efi) invalidField(input, `${D}.firmware.bootloader`, "bios and efi are exclusive");
  if (fw.bootloader?.bios?.useSerial) os.bios = { useserial: true };
  if (efi) {
    const secure = efi.secureBoot ?? true; // KubeVirt: secureBoot defaults to true
    if (efi.persistent) unsupported(input, `${D}.firmware.bootloader.efi.persistent`);
    if (ctx.efi) {
      os.loader = { path: ctx.efi.code, readonly: true, secure, type: "pflash" };
      os.nvram = { path: ctx.efi.nvram, template: ctx.efi.vars };
    } else {
      os.firmware = "efi";
      os.firmwareFeatures = [
        { name: "enrolled-keys", enabled: secure },
        { name: "secure-boot", enabled: secure },
      ];
    }
    if (secure) features.smm = true;
  }
  const kb = fw.kernelBoot;
  if (kb) {
    if (kb.container) {
      if (!ctx.kernelBoot) {
        required(input, `${D}.firmware.kernelBoot.container`, "the node has not extracted the kernelBoot container");
      } else {
        os.kernel = ctx.kernelBoot.kernel;
        if (kb.container.initrdPath !== undefined || ctx.kernelBoot.initrd !== undefined) {
          if (ctx.kernelBoot.initrd === undefined) {
            required(input, `${D}.firmware.kernelBoot.container.initrdPath`, "the initrd was not extracted");
          } else os.initrd = ctx.kernelBoot.initrd;
        }
      }
    } else if (kb.kernelArgs !== undefined) {
      invalidField(input, `${D}.firmware.kernelBoot.kernelArgs`, "kernelArgs needs kernelBoot.container");
    }
    if (kb.kernelArgs !== undefined) os.cmdline = kb.kernelArgs;
  }
  if (fw.acpi !== undefined) unsupported(input, `${D}.firmware.acpi`, "ACPI SLIC/MSDM tables are not supported");
  const uuid = dom.uuid;
  const system: NonNullable<Domain["sysinfo"]>["system"] = [];
  if (uuid !== undefined) system.push({ name: "uuid", value: uuid });
  if (fw.serial !== undefined) system.push({ name: "serial", value: fw.serial });
  system.push({ name: "manufacturer", value: "KubeVirt" }, { name: "family", value: "KubeVirt" });
  system.push({ name: "product", value: "None" });
  const ch = vmi.spec.domain.chassis ?? {};
  const chassis: NonNullable<Domain["sysinfo"]>["chassis"] = [];
  for (const k of ["manufacturer", "version", "serial", "asset", "sku"] as const) {
    const v = ch[k];
    if (v !== undefined) chassis.push({ name: k, value: v });
  }
  const sysinfo: NonNullable<Domain["sysinfo"]> = { system, chassis };
  const oem = vmiUidOemString(vmi.metadata?.uid);
  if (oem !== undefined) sysinfo.oemStrings = [oem];
  return { ...dom, os, features, sysinfo };
};

const onOff = (enabled: boolean | undefined): OnOff => (enabled === false ? "off" : "on");

/** ACPI, APIC, SMM, Hyper-V enlightenments, KVM hidden, pvspinlock, vmport off. */
export const features: Configure = (input, dom) => {
  const f = input.vmi.spec.domain.features ?? {};
  const next: Domain["features"] = { ...dom.features, acpi: f.acpi?.enabled !== false, vmport: "off" };
  if (f.apic?.enabled !== false) {
    next.apic = f.apic?.endOfInterrupt !== undefined ? { eoi: onOff(f.apic.endOfInterrupt) } : {};
  } else delete next.apic;
  if (f.smm !== undefined) next.smm = f.smm.enabled !== false || next.smm === true;
  if (f.pvspinlock !== undefined) next.pvspinlock = onOff(f.pvspinlock.enabled);
  if (f.kvm?.hidden !== undefined) next.kvmHidden = f.kvm.hidden;
  if (f.hypervPassthrough?.enabled) next.hyperv = { mode: "passthrough", items: [] };
  else if (f.hyperv) {
    const h = f.hyperv;
    const items: HypervItem[] = [];
    const simple = [
      ["relaxed", h.relaxed],
      ["vapic", h.vapic],
    ] as const;
    for (const [name, v] of simple) if (v) items.push({ name, state: onOff(v.enabled) });
    if (h.spinlocks) {
      const s: HypervItem = { name: "spinlocks", state: onOff(h.spinlocks.enabled) };
      if (h.spinlocks.enabled !== false) s.retries = h.spinlocks.spinlocks ?? 4096;
      items.push(s);
    }
    for (const [name, v] of [
      ["vpindex", h.vpindex],
      ["runtime", h.runtime],
      ["synic", h.synic],
    ] as const) {
      if (v) items.push({ name, state: onOff(v.enabled) });
    }
    if (h.synictimer) {
      const s: HypervItem = { name: "stimer", state: onOff(h.synictimer.enabled) };
      if (h.synictimer.direct) s.children = [{ name: "direct", state: onOff(h.synictimer.direct.enabled) }];
      items.push(s);
    }
    if (h.reset) items.push({ name: "reset", state: onOff(h.reset.enabled) });
    if (h.vendorid) {
      const s: HypervItem = { name: "vendor_id", state: onOff(h.vendorid.enabled) };
      if (h.vendorid.vendorid !== undefined) s.value = h.vendorid.vendorid;
      items.push(s);
    }
    for (const [name, v] of [
      ["frequencies", h.frequencies],
      ["reenlightenment", h.reenlightenment],
    ] as const) {
      if (v) items.push({ name, state: onOff(v.enabled) });
    }
    if (h.tlbflush) {
      const s: HypervItem = { name: "tlbflush", state: onOff(h.tlbflush.enabled) };
      const kids: { name: string; state: OnOff }[] = [];
      if (h.tlbflush.direct) kids.push({ name: "direct", state: onOff(h.tlbflush.direct.enabled) });
      if (h.tlbflush.extended) kids.push({ name: "extended", state: onOff(h.tlbflush.extended.enabled) });
      if (kids.length > 0) s.children = kids;
      items.push(s);
    }
    if (h.ipi) items.push({ name: "ipi", state: onOff(h.ipi.enabled) });
    if (h.evmcs) items.push({ name: "evmcs", state: onOff(h.evmcs.enabled) });
    next.hyperv = { items };
  }
  return { ...dom, features: next };
};

const TICK = new Set(["delay", "catchup", "merge", "discard"]);

/** utc / variable offset / timezone, and the timers KubeVirt exposes. */
export const clock: Configure = (input, dom) => {
  const c = input.vmi.spec.domain.clock;
  const next: Clock = { offset: "utc", timers: [] };
  if (!c) return { ...dom, clock: next };
  if (c.utc && c.timezone !== undefined) invalidField(input, `${D}.clock`, "utc and timezone are exclusive");
  if (c.timezone !== undefined) {
    next.offset = "timezone";
    next.timezone = c.timezone;
  } else if (c.utc?.offsetSeconds !== undefined && c.utc.offsetSeconds !== 0) {
    next.offset = "variable";
    next.adjustment = c.utc.offsetSeconds;
  }
  const t = c.timer ?? {};
  const tick = (field: string, p: string | undefined): Timer["tickpolicy"] => {
    if (p === undefined) return undefined;
    if (!TICK.has(p)) invalidField(input, field, `unknown tickPolicy "${p}"`);
    return p as Timer["tickpolicy"];
  };
  const add = (timer: Timer): void => {
    next.timers.push(Object.fromEntries(Object.entries(timer).filter(([, v]) => v !== undefined)) as unknown as Timer);
  };
  if (t.rtc) {
    add({
      name: "rtc",
      present: t.rtc.present ?? true,
      tickpolicy: tick(`${D}.clock.timer.rtc.tickPolicy`, t.rtc.tickPolicy),
      track: t.rtc.track as Timer["track"],
    });
  }
  if (t.pit)
    add({
      name: "pit",
      present: t.pit.present ?? true,
      tickpolicy: tick(`${D}.clock.timer.pit.tickPolicy`, t.pit.tickPolicy),
    });
  if (t.kvm) {
    if (t.kvm.present !== false && !input.ctx.kvm) unsupported(input, `${D}.clock.timer.kvm`, "kvmclock needs KVM");
    else add({ name: "kvmclock", present: t.kvm.present ?? true });
  }
  if (t.hpet) {
    add({
      name: "hpet",
      present: t.hpet.present ?? true,
      tickpolicy: tick(`${D}.clock.timer.hpet.tickPolicy`, t.hpet.tickPolicy),
    });
  }
  if (t.hyperv) add({ name: "hypervclock", present: t.hyperv.present ?? true });
  return { ...dom, clock: next };
};

/** on_poweroff / on_reboot / on_crash: a panic (pvpanic) destroys the domain, so the VMI fails. */
export const lifecycle: Configure = (input, dom) => {
  const p = input.vmi.spec.domain.rebootPolicy;
  if (p !== undefined && p !== "Reboot" && p !== "Terminate") {
    invalidField(input, `${D}.rebootPolicy`, `unknown rebootPolicy "${p}"`);
  }
  return { ...dom, onPoweroff: "destroy", onReboot: p === "Terminate" ? "destroy" : "restart", onCrash: "destroy" };
};

/** Fields of spec.domain that change the VM but tsvirt cannot honour yet: an error naming each, never dropped. */
export const unsupportedCompute: Configure = (input, dom) => {
  const d = input.vmi.spec.domain;
  if (d.launchSecurity !== undefined) unsupported(input, `${D}.launchSecurity`);
  if (d.ioThreads?.supplementalPoolThreadCount !== undefined) unsupported(input, `${D}.ioThreads`);
  return dom;
};
