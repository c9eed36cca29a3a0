import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Domain } from "../domain/index.js";
import {
  balloon,
  controllers,
  graphics,
  guestAgentChannel,
  inputs,
  panic,
  rng,
  serialConsole,
  unsupportedDevices,
  watchdog,
} from "./devices.js";
import { apply, newContext, newVmi } from "./testutil.js";

describe("serialConsole", () => {
  const cases = [
    {
      name: "serial 0 on the unix socket + console",
      devices: {},
      serials: [{ type: "unix", path: "/pod/sockets/serial0", port: 0 }],
      console: true,
    },
    {
      name: "with log",
      devices: { logSerialConsole: true },
      serials: [{ type: "unix", path: "/pod/sockets/serial0", port: 0, log: "/pod/serial0.log" }],
      console: true,
    },
    { name: "disabled", devices: { autoattachSerialConsole: false }, serials: [], console: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { dom } = apply(serialConsole, newVmi({ domain: { devices: c.devices } }));
      assert.deepEqual(dom.devices.serials, c.serials);
      assert.equal(dom.devices.serialConsole, c.console);
    });
  }
});

describe("graphics", () => {
  const cases: { name: string; devices: object; graphics?: object; video?: object; fields?: string[] }[] = [
    {
      name: "VNC on a unix socket + vga",
      devices: {},
      graphics: { type: "vnc", socket: "/pod/sockets/vnc" },
      video: { model: "vga", heads: 1, vram: 16384 },
    },
    {
      name: "virtio video",
      devices: { video: { type: "virtio" } },
      graphics: { type: "vnc", socket: "/pod/sockets/vnc" },
      video: { model: "virtio", heads: 1 },
    },
    { name: "disabled", devices: { autoattachGraphicsDevice: false } },
    {
      name: "bad video type",
      devices: { video: { type: "ramfb" } },
      graphics: { type: "vnc", socket: "/pod/sockets/vnc" },
      fields: ["spec.domain.devices.video.type"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { dom, fields } = apply(graphics, newVmi({ domain: { devices: c.devices } }));
      assert.deepEqual(dom.devices.graphics, c.graphics);
      assert.deepEqual(dom.devices.video, c.video);
      assert.deepEqual(fields, c.fields ?? []);
    });
  }
});

describe("small devices", () => {
  it("guest agent channel, optionally on a given socket", () => {
    assert.deepEqual(apply(guestAgentChannel, newVmi()).dom.devices.channels, [
      { type: "unix", targetName: "org.qemu.guest_agent.0" },
    ]);
    assert.equal(
      apply(guestAgentChannel, newVmi(), newContext({ guestAgentSocket: "/q" })).dom.devices.channels[0]?.path,
      "/q",
    );
  });
  const balloonCases = [
    {
      name: "balloon with 10 s stats and free page reporting",
      domain: { devices: {} },
      want: { model: "virtio-non-transitional", freePageReporting: true, statsPeriod: 10 },
    },
    {
      name: "no free page reporting with hugepages",
      domain: { devices: {}, memory: { hugepages: { pageSize: "2Mi" } } },
      want: { model: "virtio-non-transitional", freePageReporting: false, statsPeriod: 10 },
    },
    { name: "balloon off", domain: { devices: { autoattachMemBalloon: false } }, want: { model: "none" } },
    {
      name: "transitional",
      domain: { devices: { useVirtioTransitional: true } },
      want: { model: "virtio-transitional", freePageReporting: true, statsPeriod: 10 },
    },
  ];
  for (const c of balloonCases)
    it(c.name, () => assert.deepEqual(apply(balloon, newVmi({ domain: c.domain })).dom.devices.memballoon, c.want));
  it("rng", () => {
    assert.deepEqual(apply(rng, newVmi({ domain: { devices: { rng: {} } } })).dom.devices.rngs, [
      { model: "virtio-non-transitional", backend: "/dev/urandom" },
    ]);
    assert.deepEqual(apply(rng, newVmi()).dom.devices.rngs, []);
  });
  const inputCases: { name: string; devices: object; want: object[]; fields?: string[] }[] = [
    {
      name: "virtio tablet",
      devices: { inputs: [{ name: "t", type: "tablet", bus: "virtio" }] },
      want: [{ type: "tablet", bus: "virtio", alias: "ua-t" }],
    },
    {
      name: "usb by default",
      devices: { inputs: [{ name: "t", type: "tablet" }] },
      want: [{ type: "tablet", bus: "usb", alias: "ua-t" }],
    },
    {
      name: "keyboard refused",
      devices: { inputs: [{ name: "k", type: "keyboard" }] },
      want: [],
      fields: ["spec.domain.devices.inputs[0].type"],
    },
    {
      name: "autoattachInputDevice",
      devices: { autoattachInputDevice: true },
      want: [{ type: "tablet", bus: "usb", alias: "ua-default-tablet" }],
    },
  ];
  for (const c of inputCases) {
    it(`inputs: ${c.name}`, () => {
      const { dom, fields } = apply(inputs, newVmi({ domain: { devices: c.devices } }));
      assert.deepEqual(dom.devices.inputs, c.want);
      assert.deepEqual(fields, c.fields ?? []);
    });
  }
  it("pvpanic always; hyperv panic on request", () => {
    assert.deepEqual(apply(panic, newVmi()).dom.devices.panics, [{ model: "isa" }]);
    assert.deepEqual(
      apply(panic, newVmi({ domain: { devices: { panicDevices: [{ model: "hyperv" }] } } })).dom.devices.panics,
      [{ model: "isa" }, { model: "hyperv" }],
    );
  });
  it("watchdog", () => {
    assert.deepEqual(
      apply(watchdog, newVmi({ domain: { devices: { watchdog: { name: "w", i6300esb: { action: "poweroff" } } } } }))
        .dom.devices.watchdog,
      { model: "i6300esb", action: "poweroff" },
    );
    assert.deepEqual(
      apply(watchdog, newVmi({ domain: { devices: { watchdog: { name: "w", diag288: {} } } } })).fields,
      ["spec.domain.devices.watchdog.diag288"],
    );
  });
  it("unsupported devices are named", () => {
    const vmi = newVmi({
      domain: {
        devices: { tpm: {}, sound: { name: "s" }, filesystems: [{ name: "f", virtiofs: {} }], autoattachVSOCK: true },
      },
    });
    assert.deepEqual(apply(unsupportedDevices, vmi).fields.sort(), [
      "spec.domain.devices.autoattachVSOCK",
      "spec.domain.devices.filesystems",
      "spec.domain.devices.sound",
      "spec.domain.devices.tpm",
    ]);
  });
});

describe("controllers", () => {
  const withDevices =
    (p: Partial<Domain["devices"]>) =>
    (d: Domain): Domain => ({ ...d, devices: { ...d.devices, ...p } });
  const cases: {
    name: string;
    devices: object;
    pre: Partial<Domain["devices"]>;
    rootPorts: number;
    usb: string;
    extra: string[];
  }[] = [
    { name: "empty: pcie-root, 3 spare ports, usb none", devices: {}, pre: {}, rootPorts: 3, usb: "none", extra: [] },
    {
      name: "no hotplug ports when disabled",
      devices: { disableHotplug: true },
      pre: {},
      rootPorts: 0,
      usb: "none",
      extra: [],
    },
    {
      name: "channel → virtio-serial; scsi disk → virtio-scsi; usb tablet → qemu-xhci",
      devices: {},
      pre: {
        channels: [{ type: "unix", targetName: "org.qemu.guest_agent.0" }],
        inputs: [{ type: "tablet", bus: "usb" }],
        disks: [
          {
            device: "disk",
            source: { type: "file", file: "/x" },
            target: { bus: "scsi", dev: "sda" },
            driver: { type: "raw" },
            readonly: false,
            shareable: false,
            alias: "ua-x",
          },
        ],
      },
      rootPorts: 6,
      usb: "qemu-xhci",
      extra: ["virtio-serial", "scsi"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { dom } = apply(controllers, newVmi({ domain: { devices: c.devices } }), newContext(), withDevices(c.pre));
      const cs = dom.devices.controllers;
      assert.deepEqual(cs[0], { type: "pci", index: 0, model: "pcie-root" });
      assert.equal(cs.filter((x) => x.model === "pcie-root-port").length, c.rootPorts);
      assert.equal(cs.find((x) => x.type === "usb")?.model, c.usb);
      assert.deepEqual(
        cs.filter((x) => x.type === "virtio-serial" || x.type === "scsi").map((x) => x.type),
        c.extra,
      );
    });
  }
});
