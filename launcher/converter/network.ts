// Interfaces: masquerade and bridge bindings on a tap the node prepared (KubeVirt's network/configurator.go).
import type { Interface } from "../domain/index.js";
import { parsePciAddress } from "./storage.js";
import { type Configure, invalidField, required, unsupported } from "./types.js";

const DEV = "spec.domain.devices";
/** The NIC models KubeVirt accepts (validating webhook's list). */
export const NIC_MODELS: ReadonlySet<string> = new Set([
  "virtio",
  "e1000",
  "e1000e",
  "igb",
  "ne2k_pci",
  "pcnet",
  "rtl8139",
]);
const UNSUPPORTED_BINDINGS = ["slirp", "sriov", "macvtap", "passt", "passtBinding", "binding"] as const;

/** "02:00:00:AB:cd:01" or "02-00-00-ab-cd-01" → "02:00:00:ab:cd:01"; undefined if malformed. */
export function normalizeMac(mac: string): string | undefined {
  const m =
    /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/.exec(
      mac,
    );
  if (!m) return undefined;
  return [m[1], m[3], m[4], m[5], m[6], m[7]].join(":").toLowerCase();
}

export const interfaces: Configure = (input, dom) => {
  const { vmi, ctx } = input;
  const devs = vmi.spec.domain.devices;
  const networks = vmi.spec.networks ?? [];
  const out: Interface[] = [];
  (devs.interfaces ?? []).forEach((iface, i) => {
    const field = `${DEV}.interfaces[${i}]`;
    if (iface.state === "absent") return; // being hot-unplugged: not part of the domain
    if (iface.state !== undefined && iface.state !== "up") {
      unsupported(input, `${field}.state`, `link state "${iface.state}" is not supported`);
    }
    const bad = UNSUPPORTED_BINDINGS.find((b) => iface[b] !== undefined);
    if (bad) {
      unsupported(input, `${field}.${bad}`, `the ${bad} binding is not supported (masquerade, bridge)`);
      return;
    }
    if (!iface.masquerade && !iface.bridge) {
      required(input, field, "an interface needs a binding (masquerade or bridge)");
      return;
    }
    if (iface.masquerade && iface.bridge) invalidField(input, field, "masquerade and bridge are exclusive");
    const net = networks.find((n) => n.name === iface.name);
    if (!net) {
      required(input, `${field}.name`, `no network named "${iface.name}" in spec.networks`);
      return;
    }
    if (iface.masquerade && !net.pod)
      invalidField(input, `${field}.masquerade`, "masquerade works on the pod network only");
    if (net.resourceClaim) unsupported(input, `spec.networks[${networks.indexOf(net)}].resourceClaim`);
    const tap = ctx.interfaces[iface.name];
    if (!tap) {
      required(input, `${field}.name`, `the node prepared no tap device for interface "${iface.name}"`);
      return;
    }
    const model = iface.model ?? "virtio";
    if (!NIC_MODELS.has(model)) {
      invalidField(input, `${field}.model`, `unknown model "${model}" (${[...NIC_MODELS].join(", ")})`);
      return;
    }
    const nic: Interface = {
      type: "ethernet",
      target: { dev: tap.tap, managed: false },
      model:
        model === "virtio" ? (devs.useVirtioTransitional ? "virtio-transitional" : "virtio-non-transitional") : model,
      alias: `ua-${iface.name}`,
      romEnabled: iface.bootOrder !== undefined,
    };
    if (tap.mtu !== undefined) nic.mtu = tap.mtu;
    if (iface.macAddress !== undefined) {
      const mac = normalizeMac(iface.macAddress);
      if (!mac) invalidField(input, `${field}.macAddress`, `"${iface.macAddress}" is not a MAC address`);
      else nic.mac = mac;
    }
    if (iface.pciAddress !== undefined) {
      const a = parsePciAddress(iface.pciAddress);
      if (!a) invalidField(input, `${field}.pciAddress`, `"${iface.pciAddress}" is not a PCI address`);
      else nic.address = a;
    }
    if (iface.bootOrder !== undefined) {
      if (iface.bootOrder < 1) invalidField(input, `${field}.bootOrder`, "must be at least 1");
      else nic.bootOrder = iface.bootOrder;
    }
    if (iface.acpiIndex !== undefined) nic.acpiIndex = iface.acpiIndex;
    out.push(nic);
  });
  networks.forEach((n, i) => {
    if (!(devs.interfaces ?? []).some((f) => f.name === n.name)) {
      invalidField(input, `spec.networks[${i}].name`, `network "${n.name}" has no interface`);
    }
  });
  if (devs.networkInterfaceMultiqueue) unsupported(input, `${DEV}.networkInterfaceMultiqueue`);
  return { ...dom, devices: { ...dom.devices, interfaces: out } };
};
