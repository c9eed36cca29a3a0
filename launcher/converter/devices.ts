// Other devices: serial console and VNC on unix sockets, guest agent channel, balloon, rng, inputs, pvpanic,
// watchdog, and the controllers they all need (KubeVirt's compute/{console,graphics,channels,balloon,rng,...}.go).
import type { Controller, Domain, Input } from "../domain/index.js";
import { type Configure, invalidField, unsupported } from "./types.js";

const DEV = "spec.domain.devices";

/** Serial port 0 on a unix socket (+ optional log file) and a console mirroring it, unless disabled. */
export const serialConsole: Configure = ({ vmi, ctx }, dom) => {
  const devs = vmi.spec.domain.devices;
  if (devs.autoattachSerialConsole === false)
    return { ...dom, devices: { ...dom.devices, serials: [], serialConsole: false } };
  const serial: Domain["devices"]["serials"][number] = { type: "unix", path: ctx.serialSocket, port: 0 };
  if (devs.logSerialConsole && ctx.serialLog !== undefined) serial.log = ctx.serialLog;
  return { ...dom, devices: { ...dom.devices, serials: [serial], serialConsole: true } };
};

const VIDEO = new Set(["vga", "virtio", "bochs", "cirrus"]);

/** VNC on a unix socket + a VGA card, unless autoattachGraphicsDevice is false. */
export const graphics: Configure = (input, dom) => {
  const devs = input.vmi.spec.domain.devices;
  const devices = { ...dom.devices };
  delete devices.graphics;
  delete devices.video;
  if (devs.autoattachGraphicsDevice === false) return { ...dom, devices };
  devices.graphics = { type: "vnc", socket: input.ctx.vncSocket };
  const type = devs.video?.type ?? "vga";
  if (!VIDEO.has(type)) {
    invalidField(input, `${DEV}.video.type`, `unknown video type "${type}"`);
    return { ...dom, devices };
  }
  devices.video = { model: type as "vga", heads: 1 };
  if (type === "vga") devices.video.vram = 16384;
  return { ...dom, devices };
};

/** The QEMU guest agent's virtio-serial channel (always present in KubeVirt domains). */
export const guestAgentChannel: Configure = ({ ctx }, dom) => {
  const ch: Domain["devices"]["channels"][number] = { type: "unix", targetName: "org.qemu.guest_agent.0" };
  if (ctx.guestAgentSocket !== undefined) ch.path = ctx.guestAgentSocket;
  return { ...dom, devices: { ...dom.devices, channels: [ch] } };
};

/** virtio balloon with 10 s stats; free page reporting unless memory is pinned (hugepages). */
export const balloon: Configure = ({ vmi }, dom) => {
  const devs = vmi.spec.domain.devices;
  if (devs.autoattachMemBalloon === false)
    return { ...dom, devices: { ...dom.devices, memballoon: { model: "none" } } };
  const model = devs.useVirtioTransitional ? "virtio-transitional" : "virtio-non-transitional";
  const hugepages = vmi.spec.domain.memory?.hugepages !== undefined;
  return {
    ...dom,
    devices: { ...dom.devices, memballoon: { model, freePageReporting: !hugepages, statsPeriod: 10 } },
  };
};

/** rng: {} → virtio-rng fed from /dev/urandom. */
export const rng: Configure = ({ vmi }, dom) => {
  const devs = vmi.spec.domain.devices;
  if (devs.rng === undefined) return { ...dom, devices: { ...dom.devices, rngs: [] } };
  const model = devs.useVirtioTransitional ? "virtio-transitional" : "virtio-non-transitional";
  return { ...dom, devices: { ...dom.devices, rngs: [{ model, backend: "/dev/urandom" }] } };
};

/** Tablets (virtio or usb); autoattachInputDevice adds a usb tablet when none is declared. */
export const inputs: Configure = (input, dom) => {
  const devs = input.vmi.spec.domain.devices;
  const out: Input[] = [];
  (devs.inputs ?? []).forEach((inp, i) => {
    const field = `${DEV}.inputs[${i}]`;
    if (inp.type !== "tablet") {
      invalidField(input, `${field}.type`, `only tablet inputs are supported, got "${inp.type}"`);
      return;
    }
    const bus = inp.bus ?? "usb";
    if (bus !== "usb" && bus !== "virtio") {
      invalidField(input, `${field}.bus`, `a tablet uses the usb or virtio bus, got "${bus}"`);
      return;
    }
    out.push({ type: "tablet", bus, alias: `ua-${inp.name}` });
  });
  if (devs.autoattachInputDevice && out.length === 0)
    out.push({ type: "tablet", bus: "usb", alias: "ua-default-tablet" });
  return { ...dom, devices: { ...dom.devices, inputs: out } };
};

/** pvpanic (ISA) always on x86, so a guest panic ends the domain (on_crash=destroy) → the VMI fails. */
export const panic: Configure = (input, dom) => {
  const panics: Domain["devices"]["panics"] = [{ model: "isa" }];
  (input.vmi.spec.domain.devices.panicDevices ?? []).forEach((p, i) => {
    const model = p.model ?? "isa";
    if (model === "isa") return;
    if (model === "hyperv") panics.push({ model: "hyperv" });
    else invalidField(input, `${DEV}.panicDevices[${i}].model`, `unknown panic device model "${model}"`);
  });
  return { ...dom, devices: { ...dom.devices, panics } };
};

const WATCHDOG_ACTIONS = new Set(["poweroff", "reset", "shutdown"]);

export const watchdog: Configure = (input, dom) => {
  const w = input.vmi.spec.domain.devices.watchdog;
  const devices = { ...dom.devices };
  delete devices.watchdog;
  if (!w) return { ...dom, devices };
  if (w.diag288) {
    unsupported(input, `${DEV}.watchdog.diag288`, "diag288 is an s390x watchdog");
    return { ...dom, devices };
  }
  const action = w.i6300esb?.action ?? "reset";
  if (!WATCHDOG_ACTIONS.has(action))
    invalidField(input, `${DEV}.watchdog.i6300esb.action`, `unknown action "${action}"`);
  else devices.watchdog = { model: "i6300esb", action: action as "reset" };
  return { ...dom, devices };
};

/** Device kinds tsvirt cannot provide yet: an error naming each field, never silently dropped. */
export const unsupportedDevices: Configure = (input, dom) => {
  const devs = input.vmi.spec.domain.devices;
  const list: [string, unknown][] = [
    ["gpus", devs.gpus?.length ? devs.gpus : undefined],
    ["hostDevices", devs.hostDevices?.length ? devs.hostDevices : undefined],
    ["filesystems", devs.filesystems?.length ? devs.filesystems : undefined],
    ["sound", devs.sound],
    ["tpm", devs.tpm && devs.tpm.enabled !== false ? devs.tpm : undefined],
    ["clientPassthrough", devs.clientPassthrough],
    ["downwardMetrics", devs.downwardMetrics],
    ["autoattachVSOCK", devs.autoattachVSOCK ? true : undefined],
    ["blockMultiQueue", devs.blockMultiQueue ? true : undefined],
  ];
  for (const [k, v] of list) if (v !== undefined) unsupported(input, `${DEV}.${k}`);
  return dom;
};

/** pcie-root, root ports for every PCI device plus free ones for hotplug, usb, virtio-serial, virtio-scsi. */
export const controllers: Configure = ({ vmi, ctx }, dom) => {
  const devs = dom.devices;
  const vmiDevs = vmi.spec.domain.devices;
  const virtioModel = vmiDevs.useVirtioTransitional ? "virtio-transitional" : "virtio-non-transitional";
  const needsUsb = devs.inputs.some((i) => i.bus === "usb") || devs.disks.some((d) => d.target.bus === "usb");
  const needsScsi = devs.disks.some((d) => d.target.bus === "scsi");
  const needsSerial = devs.channels.length > 0;
  const out: Controller[] = [{ type: "pci", index: 0, model: "pcie-root" }];
  // Devices libvirt places on a root port each (explicit PCI addresses choose their own slot).
  const pciDevices =
    devs.disks.filter((d) => d.target.bus === "virtio" && d.address === undefined).length +
    devs.interfaces.filter((i) => i.address === undefined).length +
    (needsUsb ? 1 : 0) +
    (needsScsi ? 1 : 0) +
    (needsSerial ? 1 : 0) +
    (devs.memballoon.model !== "none" ? 1 : 0) +
    devs.rngs.length +
    devs.inputs.filter((i) => i.bus === "virtio").length +
    (devs.video && devs.video.model !== "vga" ? 1 : 0);
  const spare = vmiDevs.disableHotplug ? 0 : (ctx.hotplugPorts ?? 3);
  for (let i = 1; i <= pciDevices + spare; i++) out.push({ type: "pci", index: i, model: "pcie-root-port" });
  out.push({ type: "usb", index: 0, model: needsUsb ? "qemu-xhci" : "none" });
  if (needsSerial) out.push({ type: "virtio-serial", index: 0, model: virtioModel });
  if (needsScsi) out.push({ type: "scsi", index: 0, model: virtioModel });
  return { ...dom, devices: { ...devs, controllers: out } };
};

/** <emulator> when the context names the QEMU binary. */
export const emulator: Configure = ({ ctx }, dom) => {
  const devices = { ...dom.devices };
  if (ctx.emulator !== undefined) devices.emulator = ctx.emulator;
  return { ...dom, devices };
};
