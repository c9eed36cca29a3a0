// Domain → libvirt XML, deterministic: element and attribute order are fixed here, so golden files are stable.
import type {
  Channel,
  Clock,
  Controller,
  Cpu,
  Disk,
  DiskSource,
  Domain,
  DriveAddress,
  Features,
  Input,
  Interface,
  Os,
  PciAddress,
  Serial,
  SysInfo,
} from "./spec.js";

type Attr = readonly [string, string | number | boolean | undefined];
export interface XmlNode {
  name: string;
  attrs: readonly Attr[];
  children: readonly (XmlNode | undefined | false)[];
  text?: string;
}

export function el(
  name: string,
  attrs: readonly Attr[] = [],
  children: XmlNode["children"] = [],
  text?: string,
): XmlNode {
  return text === undefined ? { name, attrs, children } : { name, attrs, children, text };
}

export function escapeXml(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

function attrValue(v: string | number | boolean): string {
  if (typeof v === "boolean") return v ? "yes" : "no";
  return String(v);
}

export function renderXml(node: XmlNode, indent = ""): string {
  const attrs = node.attrs
    .filter((a): a is readonly [string, string | number | boolean] => a[1] !== undefined)
    .map(([k, v]) => ` ${k}="${escapeXml(attrValue(v))}"`)
    .join("");
  const kids = node.children.filter((c): c is XmlNode => !!c);
  if (kids.length === 0 && node.text === undefined) return `${indent}<${node.name}${attrs}/>\n`;
  if (kids.length === 0) return `${indent}<${node.name}${attrs}>${escapeXml(node.text ?? "")}</${node.name}>\n`;
  return `${indent}<${node.name}${attrs}>\n${kids.map((k) => renderXml(k, `${indent}  `)).join("")}${indent}</${node.name}>\n`;
}

const hex = (n: number, width: number): string => `0x${n.toString(16).padStart(width, "0")}`;

function address(a: PciAddress | DriveAddress | undefined): XmlNode | undefined {
  if (!a) return undefined;
  if (a.type === "pci") {
    return el("address", [
      ["type", "pci"],
      ["domain", hex(a.domain, 4)],
      ["bus", hex(a.bus, 2)],
      ["slot", hex(a.slot, 2)],
      ["function", hex(a.function, 1)],
    ]);
  }
  return el("address", [
    ["type", "drive"],
    ["controller", a.controller],
    ["bus", a.bus],
    ["target", a.target],
    ["unit", a.unit],
  ]);
}

function source(s: DiskSource): XmlNode {
  return s.type === "file" ? el("source", [["file", s.file]]) : el("source", [["dev", s.dev]]);
}

function disk(d: Disk): XmlNode {
  return el(
    "disk",
    [
      ["type", d.source.type],
      ["device", d.device],
      ["model", d.model],
    ],
    [
      el("driver", [
        ["name", "qemu"],
        ["type", d.driver.type],
        ["cache", d.driver.cache],
        ["io", d.driver.io],
        ["error_policy", d.driver.errorPolicy],
        ["discard", d.driver.discard],
        ["iothread", d.driver.iothread],
      ]),
      d.device === "lun" && d.reservations
        ? el("source", d.source.type === "file" ? [["file", d.source.file]] : [["dev", d.source.dev]], [
            el("reservations", [["managed", "yes"]]),
          ])
        : source(d.source),
      d.backingStore &&
        el(
          "backingStore",
          [["type", d.backingStore.source.type]],
          [el("format", [["type", d.backingStore.format]]), source(d.backingStore.source)],
        ),
      el("target", [
        ["dev", d.target.dev],
        ["bus", d.target.bus],
        ["tray", d.target.tray],
      ]),
      d.readonly && el("readonly"),
      d.shareable && el("shareable"),
      d.serial !== undefined && el("serial", [], [], d.serial),
      d.bootOrder !== undefined && el("boot", [["order", d.bootOrder]]),
      d.blockio &&
        el("blockio", [
          ["logical_block_size", d.blockio.logical],
          ["physical_block_size", d.blockio.physical],
          ["discard_granularity", d.blockio.discardGranularity],
        ]),
      el("alias", [["name", d.alias]]),
      address(d.address),
    ],
  );
}

function iface(i: Interface): XmlNode {
  return el(
    "interface",
    [["type", i.type]],
    [
      i.mac !== undefined && el("mac", [["address", i.mac]]),
      el("target", [
        ["dev", i.target.dev],
        ["managed", "no"],
      ]),
      el("model", [["type", i.model]]),
      i.mtu !== undefined && el("mtu", [["size", i.mtu]]),
      i.bootOrder !== undefined && el("boot", [["order", i.bootOrder]]),
      el("rom", [["enabled", i.romEnabled ? "yes" : "no"]]),
      i.acpiIndex !== undefined && el("acpi", [["index", i.acpiIndex]]),
      el("alias", [["name", i.alias]]),
      address(i.address),
    ],
  );
}

function controller(c: Controller): XmlNode {
  return el("controller", [
    ["type", c.type],
    ["index", c.index],
    ["model", c.model],
  ]);
}

function serial(s: Serial): XmlNode {
  return el(
    "serial",
    [["type", "unix"]],
    [
      el("source", [
        ["mode", "bind"],
        ["path", s.path],
      ]),
      el("target", [["port", s.port]]),
      s.log !== undefined &&
        el("log", [
          ["file", s.log],
          ["append", "on"],
        ]),
    ],
  );
}

function channel(c: Channel): XmlNode {
  return el(
    "channel",
    [["type", c.type]],
    [
      c.path !== undefined &&
        el("source", [
          ["mode", "bind"],
          ["path", c.path],
        ]),
      el("target", [
        ["type", "virtio"],
        ["name", c.targetName],
      ]),
    ],
  );
}

function input(i: Input): XmlNode {
  return el(
    "input",
    [
      ["type", i.type],
      ["bus", i.bus],
    ],
    [i.alias !== undefined && el("alias", [["name", i.alias]])],
  );
}

function cpu(c: Cpu): XmlNode {
  return el(
    "cpu",
    [
      ["mode", c.mode],
      ["check", c.check],
    ],
    [
      c.model !== undefined && el("model", [["fallback", "allow"]], [], c.model),
      el("topology", [
        ["sockets", c.topology.sockets],
        ["cores", c.topology.cores],
        ["threads", c.topology.threads],
      ]),
      ...c.features.map((f) =>
        el("feature", [
          ["policy", f.policy],
          ["name", f.name],
        ]),
      ),
    ],
  );
}

function os(o: Os): XmlNode {
  return el(
    "os",
    [["firmware", o.firmware]],
    [
      el(
        "type",
        [
          ["arch", o.arch],
          ["machine", o.machine],
        ],
        [],
        "hvm",
      ),
      o.firmwareFeatures &&
        el(
          "firmware",
          [],
          o.firmwareFeatures.map((f) =>
            el("feature", [
              ["enabled", f.enabled],
              ["name", f.name],
            ]),
          ),
        ),
      o.loader &&
        el(
          "loader",
          [
            ["readonly", o.loader.readonly],
            ["secure", o.loader.secure],
            ["type", o.loader.type],
          ],
          [],
          o.loader.path,
        ),
      o.nvram && el("nvram", [["template", o.nvram.template]], [], o.nvram.path),
      o.kernel !== undefined && el("kernel", [], [], o.kernel),
      o.initrd !== undefined && el("initrd", [], [], o.initrd),
      o.cmdline !== undefined && el("cmdline", [], [], o.cmdline),
      o.bios && el("bios", [["useserial", o.bios.useserial]]),
      o.smbiosSysinfo && el("smbios", [["mode", "sysinfo"]]),
    ],
  );
}

function sysinfo(s: SysInfo): XmlNode {
  const entries = (list: readonly { name: string; value: string }[]): XmlNode[] =>
    list.map((e) => el("entry", [["name", e.name]], [], e.value));
  return el(
    "sysinfo",
    [["type", "smbios"]],
    [
      el("system", [], entries(s.system)),
      s.chassis.length > 0 && el("chassis", [], entries(s.chassis)),
      s.oemStrings !== undefined &&
        s.oemStrings.length > 0 &&
        el(
          "oemStrings",
          [],
          s.oemStrings.map((v) => el("entry", [], [], v)),
        ),
    ],
  );
}

function features(f: Features): XmlNode {
  return el(
    "features",
    [],
    [
      f.acpi && el("acpi"),
      f.apic && el("apic", [["eoi", f.apic.eoi]]),
      f.hyperv &&
        el(
          "hyperv",
          [["mode", f.hyperv.mode]],
          f.hyperv.items.map((h) =>
            el(
              h.name,
              [
                ["state", h.state],
                ["retries", h.retries],
                ["value", h.value],
              ],
              (h.children ?? []).map((c) => el(c.name, [["state", c.state]])),
            ),
          ),
        ),
      f.kvmHidden !== undefined && el("kvm", [], [el("hidden", [["state", f.kvmHidden ? "on" : "off"]])]),
      f.pvspinlock && el("pvspinlock", [["state", f.pvspinlock]]),
      f.smm && el("smm", [["state", "on"]]),
      f.vmport && el("vmport", [["state", f.vmport]]),
    ],
  );
}

function clock(c: Clock): XmlNode {
  return el(
    "clock",
    [
      ["offset", c.offset],
      ["adjustment", c.adjustment],
      ["basis", c.offset === "variable" ? "utc" : undefined],
      ["timezone", c.timezone],
    ],
    c.timers.map((t) =>
      el("timer", [
        ["name", t.name],
        ["present", t.present],
        ["tickpolicy", t.tickpolicy],
        ["track", t.track],
      ]),
    ),
  );
}

export function domainToNode(d: Domain): XmlNode {
  const dev = d.devices;
  return el(
    "domain",
    [["type", d.type]],
    [
      el("name", [], [], d.name),
      d.uuid !== undefined && el("uuid", [], [], d.uuid),
      el(
        "metadata",
        [],
        [
          el(
            "kubevirt",
            [["xmlns", "http://kubevirt.io"]],
            [
              el("uid", [], [], d.metadata.kubevirt.uid),
              el("namespace", [], [], d.metadata.kubevirt.namespace),
              el("name", [], [], d.metadata.kubevirt.name),
            ],
          ),
        ],
      ),
      d.maxMemory &&
        el(
          "maxMemory",
          [
            ["slots", d.maxMemory.slots],
            ["unit", "b"],
          ],
          [],
          String(d.maxMemory.bytes),
        ),
      el("memory", [["unit", "b"]], [], String(d.memory)),
      d.memoryBacking &&
        el(
          "memoryBacking",
          [],
          [
            d.memoryBacking.hugepages &&
              el(
                "hugepages",
                [],
                [
                  d.memoryBacking.hugepages.pageSizeKiB !== undefined &&
                    el("page", [
                      ["size", d.memoryBacking.hugepages.pageSizeKiB],
                      ["unit", "KiB"],
                    ]),
                ],
              ),
            d.memoryBacking.source && el("source", [["type", d.memoryBacking.source]]),
          ],
        ),
      el("vcpu", [["placement", "static"]], [], String(d.vcpu)),
      d.iothreads !== undefined && el("iothreads", [], [], String(d.iothreads)),
      d.sysinfo && sysinfo(d.sysinfo),
      os(d.os),
      features(d.features),
      cpu(d.cpu),
      clock(d.clock),
      el("on_poweroff", [], [], d.onPoweroff),
      el("on_reboot", [], [], d.onReboot),
      el("on_crash", [], [], d.onCrash),
      el(
        "devices",
        [],
        [
          dev.emulator !== undefined && el("emulator", [], [], dev.emulator),
          ...dev.disks.map(disk),
          ...dev.controllers.map(controller),
          ...dev.interfaces.map(iface),
          ...dev.serials.map(serial),
          dev.serialConsole &&
            el(
              "console",
              [["type", "pty"]],
              [
                el("target", [
                  ["type", "serial"],
                  ["port", 0],
                ]),
              ],
            ),
          ...dev.channels.map(channel),
          ...dev.inputs.map(input),
          dev.graphics &&
            el(
              "graphics",
              [["type", "vnc"]],
              [
                el("listen", [
                  ["type", "socket"],
                  ["socket", dev.graphics.socket],
                ]),
              ],
            ),
          dev.video &&
            el(
              "video",
              [],
              [
                el("model", [
                  ["type", dev.video.model],
                  ["heads", dev.video.model === "none" ? undefined : dev.video.heads],
                  ["vram", dev.video.vram],
                ]),
              ],
            ),
          dev.watchdog &&
            el("watchdog", [
              ["model", dev.watchdog.model],
              ["action", dev.watchdog.action],
            ]),
          el(
            "memballoon",
            [
              ["model", dev.memballoon.model],
              [
                "freePageReporting",
                dev.memballoon.freePageReporting === undefined
                  ? undefined
                  : dev.memballoon.freePageReporting
                    ? "on"
                    : "off",
              ],
            ],
            [dev.memballoon.statsPeriod !== undefined && el("stats", [["period", dev.memballoon.statsPeriod]])],
          ),
          ...dev.rngs.map((r) =>
            el("rng", [["model", r.model]], [el("backend", [["model", "random"]], [], r.backend)]),
          ),
          ...dev.panics.map((p) => el("panic", [["model", p.model]])),
        ],
      ),
    ],
  );
}

/** The domain as libvirt XML (deterministic; ends with a newline). */
export function domainToXml(d: Domain): string {
  return renderXml(domainToNode(d));
}
