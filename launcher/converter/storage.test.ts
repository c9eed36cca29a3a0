import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConverterContext } from "./context.js";
import { diskLetters, disks, parsePciAddress } from "./storage.js";
import { apply, newContext, newVmi } from "./testutil.js";

const file = (path: string, format: "raw" | "qcow2" = "raw") => ({ type: "file" as const, path, format });

describe("diskLetters / parsePciAddress", () => {
  for (const [i, s] of [
    [0, "a"],
    [1, "b"],
    [25, "z"],
    [26, "aa"],
    [27, "ab"],
    [701, "zz"],
    [702, "aaa"],
  ] as const) {
    it(`${i} → ${s}`, () => assert.equal(diskLetters(i), s));
  }
  it("parses 0000:81:01.0", () =>
    assert.deepEqual(parsePciAddress("0000:81:01.0"), { type: "pci", domain: 0, bus: 0x81, slot: 1, function: 0 }));
  it("rejects junk", () => assert.equal(parsePciAddress("81:01.0"), undefined));
});

describe("disks", () => {
  const cases: {
    name: string;
    disks: object[];
    volumes: object[];
    vols: ConverterContext["volumes"];
    want?: { dev: string; bus: string; device: string; type?: string; extra?: (d: Record<string, unknown>) => void }[];
    fields?: string[];
  }[] = [
    {
      name: "containerDisk: qcow2 overlay over the base image",
      disks: [{ name: "cd", disk: { bus: "virtio" } }],
      volumes: [{ name: "cd", containerDisk: { image: "x" } }],
      vols: { cd: { type: "overlay", path: "/p/o.qcow2", backing: file("/img/disk.qcow2", "qcow2") } },
      want: [
        {
          dev: "vda",
          bus: "virtio",
          device: "disk",
          type: "qcow2",
          extra: (d) => {
            assert.deepEqual(d.source, { type: "file", file: "/p/o.qcow2" });
            assert.deepEqual(d.backingStore, { source: { type: "file", file: "/img/disk.qcow2" }, format: "qcow2" });
            assert.equal(d.model, "virtio-non-transitional");
          },
        },
      ],
    },
    {
      name: "virtio → vdX, sata/scsi → sdX, in order",
      disks: [
        { name: "a", disk: { bus: "sata" } },
        { name: "b", disk: {} },
        { name: "c", disk: { bus: "scsi" } },
        { name: "d", disk: { bus: "virtio" } },
      ],
      volumes: ["a", "b", "c", "d"].map((n) => ({ name: n, persistentVolumeClaim: { claimName: n } })),
      vols: { a: file("/a"), b: file("/b"), c: file("/c"), d: file("/d") },
      want: [
        { dev: "sda", bus: "sata", device: "disk" },
        { dev: "vda", bus: "virtio", device: "disk" },
        {
          dev: "sdb",
          bus: "scsi",
          device: "disk",
          extra: (d) => assert.deepEqual(d.address, { type: "drive", controller: 0, bus: 0, target: 0, unit: 0 }),
        },
        { dev: "vdb", bus: "virtio", device: "disk" },
      ],
    },
    {
      name: "block PVC",
      disks: [{ name: "b", disk: { bus: "virtio" } }],
      volumes: [{ name: "b", dataVolume: { name: "dv" } }],
      vols: { b: { type: "block", path: "/dev/b" } },
      want: [
        {
          dev: "vda",
          bus: "virtio",
          device: "disk",
          type: "raw",
          extra: (d) => assert.deepEqual(d.source, { type: "block", dev: "/dev/b" }),
        },
      ],
    },
    {
      name: "cdrom: sata, read-only, tray closed, no discard",
      disks: [{ name: "ci", cdrom: {} }],
      volumes: [{ name: "ci", cloudInitNoCloud: { userData: "x" } }],
      vols: { ci: file("/ci.iso") },
      want: [
        {
          dev: "sda",
          bus: "sata",
          device: "cdrom",
          extra: (d) => {
            assert.equal(d.readonly, true);
            assert.deepEqual(d.target, { bus: "sata", dev: "sda", tray: "closed" });
            assert.equal((d.driver as { discard?: string }).discard, undefined);
          },
        },
      ],
    },
    {
      name: "boot order, serial, cache, io, error policy, shareable",
      disks: [
        { name: "a", bootOrder: 2, serial: "S1", cache: "none", io: "native", errorPolicy: "report" },
        { name: "b", shareable: true },
      ],
      volumes: [
        { name: "a", hostDisk: { path: "/h/a.img", type: "Disk" } },
        { name: "b", hostDisk: { path: "/h/b.img", type: "Disk", shared: true } },
      ],
      vols: {},
      want: [
        {
          dev: "vda",
          bus: "virtio",
          device: "disk",
          extra: (d) => {
            assert.deepEqual([d.bootOrder, d.serial], [2, "S1"]);
            assert.deepEqual(d.driver, {
              type: "raw",
              cache: "none",
              io: "native",
              errorPolicy: "report",
              discard: "unmap",
            });
            assert.deepEqual(d.source, { type: "file", file: "/h/a.img" });
          },
        },
        {
          dev: "vdb",
          bus: "virtio",
          device: "disk",
          extra: (d) => assert.deepEqual([d.shareable, (d.driver as { cache: string }).cache], [true, "none"]),
        },
      ],
    },
    {
      name: "lun on scsi with reservations",
      disks: [{ name: "l", lun: { reservation: true } }],
      volumes: [{ name: "l", persistentVolumeClaim: { claimName: "l" } }],
      vols: { l: { type: "block", path: "/dev/l" } },
      want: [{ dev: "sda", bus: "scsi", device: "lun", extra: (d) => assert.equal(d.reservations, true) }],
    },
    {
      name: "missing volume",
      disks: [{ name: "x" }],
      volumes: [],
      vols: {},
      fields: ["spec.domain.devices.disks[0].name"],
    },
    {
      name: "volume the node did not prepare",
      disks: [{ name: "p" }],
      volumes: [{ name: "p", persistentVolumeClaim: { claimName: "p" } }],
      vols: {},
      fields: ["spec.volumes[0].persistentVolumeClaim"],
    },
    {
      name: "unsupported volume source",
      disks: [{ name: "m" }],
      volumes: [{ name: "m", downwardMetrics: {} }],
      vols: {},
      fields: ["spec.volumes[0].downwardMetrics"],
    },
    {
      name: "bad cache and io",
      disks: [{ name: "a", cache: "fast", io: "turbo" }],
      volumes: [{ name: "a", emptyDisk: { capacity: "1Gi" } }],
      vols: { a: file("/e.qcow2", "qcow2") },
      fields: ["spec.domain.devices.disks[0].cache", "spec.domain.devices.disks[0].io"],
    },
    {
      name: "read-only sata disk is refused",
      disks: [{ name: "a", disk: { bus: "sata", readonly: true } }],
      volumes: [{ name: "a", configMap: { name: "c" } }],
      vols: { a: file("/c.iso") },
      fields: ["spec.domain.devices.disks[0].disk.readonly"],
    },
    {
      name: "unused volume is an error (no filesystems)",
      disks: [],
      volumes: [{ name: "a", persistentVolumeClaim: { claimName: "a" } }],
      vols: {},
      fields: ["spec.volumes[0]"],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const vmi = newVmi({ domain: { devices: { disks: c.disks as never } }, volumes: c.volumes as never });
      const { dom, fields } = apply(disks, vmi, newContext({ volumes: c.vols }));
      assert.deepEqual(fields, c.fields ?? []);
      if (!c.want) return;
      assert.equal(dom.devices.disks.length, c.want.length);
      c.want.forEach((w, i) => {
        const d = dom.devices.disks[i];
        assert.ok(d);
        assert.deepEqual([d.target.dev, d.target.bus, d.device], [w.dev, w.bus, w.device]);
        if (w.type) assert.equal(d.driver.type, w.type);
        w.extra?.(d as unknown as Record<string, unknown>);
      });
    });
  }
  it("ioThreadsPolicy shared: one thread; dedicatedIOThread: its own", () => {
    const vmi = newVmi({
      domain: {
        ioThreadsPolicy: "shared",
        devices: { disks: [{ name: "a" }, { name: "b", dedicatedIOThread: true }, { name: "c" }] },
      },
      volumes: ["a", "b", "c"].map((n) => ({ name: n, persistentVolumeClaim: { claimName: n } })),
    });
    const { dom } = apply(disks, vmi, newContext({ volumes: { a: file("/a"), b: file("/b"), c: file("/c") } }));
    assert.deepEqual(
      dom.devices.disks.map((d) => d.driver.iothread),
      [1, 2, 1],
    );
    assert.equal(dom.iothreads, 2);
  });
});
