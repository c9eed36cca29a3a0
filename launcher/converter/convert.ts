// VMI + ConverterContext → typed Domain → deterministic XML. Pure: no I/O, no clock, no randomness.
import type { VirtualMachineInstance } from "../../api/index.js";
import { invalid, type StatusCause, type StatusError } from "../../lib/errors.js";
import { type Domain, domainToXml } from "../domain/index.js";
import { clock, cpu, features, lifecycle, memory, metadata, osAndFirmware, unsupportedCompute } from "./compute.js";
import type { ConverterContext } from "./context.js";
import {
  balloon,
  controllers,
  emulator,
  graphics,
  guestAgentChannel,
  inputs,
  panic,
  rng,
  serialConsole,
  unsupportedDevices,
  watchdog,
} from "./devices.js";
import { interfaces } from "./network.js";
import { disks } from "./storage.js";
import type { Configure, ConvertInput } from "./types.js";

/** The order matters only where one step reads another's result (disks read vcpu; controllers read devices). */
export const configurators: readonly Configure[] = [
  metadata,
  memory,
  cpu,
  osAndFirmware,
  features,
  clock,
  lifecycle,
  unsupportedCompute,
  emulator,
  disks,
  interfaces,
  serialConsole,
  graphics,
  guestAgentChannel,
  balloon,
  rng,
  inputs,
  panic,
  watchdog,
  unsupportedDevices,
  controllers,
];

export function baseDomain(ctx: ConverterContext): Domain {
  return {
    type: ctx.kvm ? "kvm" : "qemu",
    name: "",
    metadata: { kubevirt: { uid: "", namespace: "", name: "" } },
    memory: 0,
    vcpu: 1,
    cpu: { mode: "host-model", topology: { sockets: 1, cores: 1, threads: 1 }, features: [] },
    os: { arch: ctx.arch, machine: "q35", smbiosSysinfo: false },
    features: { acpi: true },
    clock: { offset: "utc", timers: [] },
    onPoweroff: "destroy",
    onReboot: "restart",
    onCrash: "destroy",
    devices: {
      disks: [],
      controllers: [],
      interfaces: [],
      serials: [],
      serialConsole: false,
      channels: [],
      inputs: [],
      memballoon: { model: "none" },
      rngs: [],
      panics: [],
    },
  };
}

/** Runs the configurators; returns the domain and every field it could not honour. */
export function convertWithProblems(
  vmi: VirtualMachineInstance,
  ctx: ConverterContext,
): { domain: Domain; problems: StatusCause[] } {
  const input: ConvertInput = { vmi, ctx, problems: [] };
  const domain = configurators.reduce((dom, configure) => configure(input, dom), baseDomain(ctx));
  return { domain, problems: input.problems };
}

/** The error for a VMI the converter cannot honour: 422 Invalid, one cause per field. */
export function conversionError(vmi: VirtualMachineInstance, problems: StatusCause[]): StatusError {
  const name = vmi.metadata?.name ?? "";
  const err = invalid({ group: "kubevirt.io", kind: "VirtualMachineInstance" }, name, problems);
  return err;
}

/** VMI → Domain; throws a StatusError (422, causes name each field) for anything unsupported or inconsistent. */
export function vmiToDomain(vmi: VirtualMachineInstance, ctx: ConverterContext): Domain {
  const { domain, problems } = convertWithProblems(vmi, ctx);
  if (problems.length > 0) throw conversionError(vmi, problems);
  return domain;
}

/** VMI → libvirt domain XML. */
export function vmiToDomainXml(vmi: VirtualMachineInstance, ctx: ConverterContext): string {
  return domainToXml(vmiToDomain(vmi, ctx));
}
