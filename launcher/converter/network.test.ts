import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { interfaces, normalizeMac } from "./network.js";
import { apply, newContext, newVmi } from "./testutil.js";

describe("normalizeMac", () => {
  for (const [i, o] of [
    ["DE:AD:00:00:BE:AF", "de:ad:00:00:be:af"],
    ["02-00-00-00-00-01", "02:00:00:00:00:01"],
    ["02:00:00-00:00:01", undefined],
    ["nope", undefined],
  ] as const) {
    it(`${i} → ${o}`, () => assert.equal(normalizeMac(i), o));
  }
});

describe("interfaces", () => {
  const taps = { default: { tap: "tap0" }, sec: { tap: "tap1" } };
  const cases: {
    name: string;
    ifaces: object[];
    networks: object[];
    check?: (i: Record<string, unknown>[]) => void;
    fields?: string[];
  }[] = [
    {
      name: "masquerade on the pod network → ethernet on the prepared tap, virtio-non-transitional",
      ifaces: [{ name: "default", masquerade: {} }],
      networks: [{ name: "default", pod: {} }],
      check: (i) =>
        assert.deepEqual(i[0], {
          type: "ethernet",
          target: { dev: "tap0", managed: false },
          model: "virtio-non-transitional",
          alias: "ua-default",
          romEnabled: false,
        }),
    },
    {
      name: "bridge with model, MAC, PCI address, boot order",
      ifaces: [
        {
          name: "sec",
          bridge: {},
          model: "e1000e",
          macAddress: "02:AA:BB:CC:DD:EE",
          pciAddress: "0000:00:1c.0",
          bootOrder: 3,
        },
      ],
      networks: [{ name: "sec", multus: { networkName: "n" } }],
      check: (i) => {
        const n = i[0] ?? {};
        assert.deepEqual([n.model, n.mac, n.bootOrder, n.romEnabled], ["e1000e", "02:aa:bb:cc:dd:ee", 3, true]);
        assert.deepEqual(n.address, { type: "pci", domain: 0, bus: 0, slot: 0x1c, function: 0 });
      },
    },
    {
      name: "absent interfaces are left out",
      ifaces: [{ name: "default", masquerade: {}, state: "absent" }],
      networks: [{ name: "default", pod: {} }],
      check: (i) => assert.equal(i.length, 0),
    },
    {
      name: "sriov unsupported",
      ifaces: [{ name: "default", sriov: {} }],
      networks: [{ name: "default", pod: {} }],
      fields: ["spec.domain.devices.interfaces[0].sriov"],
    },
    {
      name: "unknown model",
      ifaces: [{ name: "default", masquerade: {}, model: "vmxnet3" }],
      networks: [{ name: "default", pod: {} }],
      fields: ["spec.domain.devices.interfaces[0].model"],
    },
    {
      name: "bad MAC",
      ifaces: [{ name: "default", masquerade: {}, macAddress: "zz" }],
      networks: [{ name: "default", pod: {} }],
      fields: ["spec.domain.devices.interfaces[0].macAddress"],
    },
    {
      name: "no network",
      ifaces: [{ name: "default", masquerade: {} }],
      networks: [],
      fields: ["spec.domain.devices.interfaces[0].name"],
    },
    {
      name: "no tap prepared",
      ifaces: [{ name: "other", bridge: {} }],
      networks: [{ name: "other", pod: {} }],
      fields: ["spec.domain.devices.interfaces[0].name"],
    },
    {
      name: "masquerade needs the pod network",
      ifaces: [{ name: "sec", masquerade: {} }],
      networks: [{ name: "sec", multus: { networkName: "n" } }],
      fields: ["spec.domain.devices.interfaces[0].masquerade"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const vmi = newVmi({ domain: { devices: { interfaces: c.ifaces as never } }, networks: c.networks as never });
      const { dom, fields } = apply(interfaces, vmi, newContext({ interfaces: taps }));
      assert.deepEqual(fields, c.fields ?? []);
      c.check?.(dom.devices.interfaces as unknown as Record<string, unknown>[]);
    });
  }
});
