// A small VMI → domain XML writer used until the converter (launcher/converter/) lands: q35, kernel boot or disk
// boot, virtio disks over the prepared files, a unix-socket serial console, pvpanic with on_crash=destroy.
// Pure: every host fact comes in through DomainContext.

export interface DomainDisk {
  /** The VMI's disk/volume name. */
  name: string;
  path: string;
  format: "qcow2" | "raw";
  readonly?: boolean;
  block?: boolean;
}

export interface DomainContext {
  kvm: boolean;
  /** Where QEMU binds the serial console socket (the launcher connects to it). */
  serialSocket: string;
  disks: DomainDisk[];
  kernel?: { kernel: string; initrd?: string | undefined };
  taps?: Record<string, string>;
}

// biome-ignore lint/suspicious/noExplicitAny: a VMI arrives as untyped JSON from the node agent
type Json = any;

const units: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};

/** Parse a Kubernetes quantity ("128Mi", "1G", "1073741824") to bytes. */
export function quantityBytes(q: string | number | undefined): number | undefined {
  if (q === undefined) return undefined;
  if (typeof q === "number") return q;
  const m = /^([0-9.]+)([kMGT]i?|)$/.exec(q.trim());
  if (!m) return undefined;
  const mult = units[m[2] ?? ""];
  return mult === undefined ? undefined : Math.round(Number.parseFloat(m[1] ?? "0") * mult);
}

export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function domainName(vmi: Json): string {
  return `${vmi?.metadata?.namespace ?? "default"}_${vmi?.metadata?.name ?? ""}`;
}

export function acpiEnabled(vmi: Json): boolean {
  return vmi?.spec?.domain?.features?.acpi?.enabled !== false;
}

export function minimalDomainXml(vmi: Json, ctx: DomainContext): string {
  const dom = vmi?.spec?.domain ?? {};
  const mem =
    quantityBytes(dom.memory?.guest) ??
    quantityBytes(dom.resources?.requests?.memory) ??
    quantityBytes(dom.resources?.limits?.memory) ??
    128 * 1024 ** 2;
  const cpu = dom.cpu ?? {};
  const sockets = cpu.sockets ?? 1;
  const cores = cpu.cores ?? 1;
  const threads = cpu.threads ?? 1;
  const lines: string[] = [];
  lines.push(`<domain type="${ctx.kvm ? "kvm" : "qemu"}">`);
  lines.push(`  <name>${esc(domainName(vmi))}</name>`);
  lines.push(
    `  <metadata><kubevirt xmlns="http://kubevirt.io"><uid>${esc(String(vmi?.metadata?.uid ?? ""))}</uid></kubevirt></metadata>`,
  );
  lines.push(`  <memory unit="b">${mem}</memory>`);
  lines.push(`  <vcpu placement="static">${sockets * cores * threads}</vcpu>`);
  lines.push("  <os>");
  lines.push('    <type arch="x86_64" machine="q35">hvm</type>');
  if (ctx.kernel) {
    lines.push(`    <kernel>${esc(ctx.kernel.kernel)}</kernel>`);
    if (ctx.kernel.initrd) lines.push(`    <initrd>${esc(ctx.kernel.initrd)}</initrd>`);
    const args = dom.firmware?.kernelBoot?.kernelArgs;
    if (typeof args === "string") lines.push(`    <cmdline>${esc(args)}</cmdline>`);
  }
  lines.push("  </os>");
  lines.push(`  <features>${acpiEnabled(vmi) ? "<acpi/>" : ""}<apic/></features>`);
  const topology = `<topology sockets="${sockets}" cores="${cores}" threads="${threads}"/>`;
  lines.push(
    ctx.kvm
      ? `  <cpu mode="host-model">${topology}</cpu>`
      : `  <cpu mode="custom" match="exact"><model fallback="allow">qemu64</model>${topology}</cpu>`,
  );
  lines.push('  <clock offset="utc"/>');
  lines.push("  <on_poweroff>destroy</on_poweroff>");
  lines.push("  <on_reboot>restart</on_reboot>");
  lines.push("  <on_crash>destroy</on_crash>");
  lines.push("  <devices>");
  lines.push('    <controller type="pci" index="0" model="pcie-root"/>');
  ctx.disks.forEach((d, i) => {
    const dev = `vd${String.fromCharCode(97 + i)}`;
    lines.push(`    <disk type="${d.block ? "block" : "file"}" device="disk">`);
    lines.push(`      <driver name="qemu" type="${d.format}" cache="none" error_policy="stop" discard="unmap"/>`);
    lines.push(`      <source ${d.block ? "dev" : "file"}="${esc(d.path)}"/>`);
    lines.push(`      <target dev="${dev}" bus="virtio"/>`);
    if (d.readonly) lines.push("      <readonly/>");
    lines.push(`      <alias name="ua-${esc(d.name)}"/>`);
    if (!ctx.kernel && i === 0) lines.push('      <boot order="1"/>');
    lines.push("    </disk>");
  });
  for (const [name, tap] of Object.entries(ctx.taps ?? {})) {
    lines.push('    <interface type="ethernet">');
    lines.push(`      <target dev="${esc(tap)}" managed="no"/>`);
    lines.push('      <model type="virtio-non-transitional"/>');
    lines.push(`      <alias name="ua-${esc(name)}"/>`);
    lines.push('      <rom enabled="no"/>');
    lines.push("    </interface>");
  }
  lines.push('    <serial type="unix">');
  lines.push(`      <source mode="bind" path="${esc(ctx.serialSocket)}"/>`);
  lines.push('      <target port="0"/>');
  lines.push("    </serial>");
  lines.push('    <console type="unix">');
  lines.push(`      <source mode="bind" path="${esc(ctx.serialSocket)}"/>`);
  lines.push('      <target type="serial" port="0"/>');
  lines.push("    </console>");
  lines.push('    <memballoon model="none"/>');
  lines.push('    <panic model="isa"/>');
  lines.push("  </devices>");
  lines.push("</domain>");
  return `${lines.filter((l) => l !== "").join("\n")}\n`;
}
