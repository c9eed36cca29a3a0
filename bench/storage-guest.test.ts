import assert from "node:assert/strict";
import { test } from "node:test";
import { blockdevFiles, handQemuArgs, parseOpts } from "./storage-guest.js";

const DISK = "/data/nodes/n01/volumes/pvc-1/disk.img";
const storage = { driver: "file", filename: DISK, "node-name": "libvirt-1-storage", "auto-read-only": true };
const format = { "node-name": "libvirt-1-format", "read-only": false, driver: "raw", file: "libvirt-1-storage" };
const device = { driver: "virtio-blk-pci", bus: "pci.3", addr: "0x0", drive: "libvirt-1-format", id: "ua-data" };
const libvirt = [
  "/usr/bin/qemu-system-x86_64",
  ...["-machine", "pc-q35-10.0,usb=off,memory-backend=pc.ram", "-accel", "tcg", "-cpu", "qemu64"],
  ...["-m", "size=262144k", "-smp", "1,sockets=1,cores=1,threads=1"],
  ...["-blockdev", JSON.stringify({ driver: "file", filename: "/boot.qcow2", "node-name": "libvirt-2-storage" })],
  ...["-blockdev", JSON.stringify(storage), "-blockdev", JSON.stringify(format)],
  ...["-device", JSON.stringify({ ...device, drive: "libvirt-2-format", id: "ua-boot", bootindex: 1 })],
  ...["-device", JSON.stringify({ ...device, "write-cache": "on" })],
];
const after = (argv: string[], opt: string): string[] => argv.flatMap((a, i) => (argv[i - 1] === opt ? [a] : []));

test("the hand QEMU gets libvirt's disk chain and device for the file, without libvirt's PCI placement", () => {
  const argv = handQemuArgs(libvirt, DISK, "/guest.qcow2");
  assert.deepEqual(after(argv, "-blockdev").map(parseOpts), [{ ...storage, locking: "off" }, format]);
  const devs = after(argv, "-device");
  assert.deepEqual(parseOpts(devs[1] ?? ""), {
    driver: "virtio-blk-pci",
    drive: "libvirt-1-format",
    id: "ua-data",
    "write-cache": "on",
  });
  assert.deepEqual(after(argv, "-machine"), ["pc-q35-10.0"]);
  assert.deepEqual(after(argv, "-m"), ["size=262144k"]);
  assert.deepEqual(after(argv, "-accel"), ["tcg"]);
  assert.deepEqual(after(argv, "-cpu"), ["qemu64"]);
  assert.deepEqual(after(argv, "-smp"), ["1,sockets=1,cores=1,threads=1"]);
});

test("a file node used directly by the device (no raw format node) and key=value options", () => {
  const argv = handQemuArgs(
    ["-blockdev", `driver=file,filename=${DISK},node-name=f1`, "-device", "virtio-blk-pci,drive=f1,bus=pci.2,id=d"],
    DISK,
    "/guest.qcow2",
  );
  assert.deepEqual(after(argv, "-blockdev").map(parseOpts), [
    { driver: "file", filename: DISK, "node-name": "f1", locking: "off" },
  ]);
  assert.deepEqual(parseOpts(after(argv, "-device")[1] ?? ""), { driver: "virtio-blk-pci", drive: "f1", id: "d" });
  assert.deepEqual(blockdevFiles(libvirt), ["/boot.qcow2", DISK]);
  assert.throws(() => handQemuArgs(libvirt, "/other.img", "/g"), /no -blockdev for \/other\.img/);
});
