import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, it } from "node:test";
import { promisify } from "node:util";
import { isStatusError } from "../../lib/errors.js";
import { requirePrereqs } from "../../tests/lib/prereqs.js";
import {
  contextFor,
  executePreparation,
  nodeFactsFromPrepared,
  planPreparation,
  prepareAndConvert,
} from "./prepare.js";
import { newVmi } from "./testutil.js";

const run = promisify(execFile);

function vmiWithVolumes() {
  return newVmi({
    domain: {
      memory: { guest: "64Mi" },
      devices: {
        disks: ["cd", "pvc", "blk", "eph", "empty", "ci", "cm", "host"].map((name) => ({ name })),
        interfaces: [{ name: "default", masquerade: {} }],
      },
    },
    networks: [{ name: "default", pod: {} }],
    volumes: [
      { name: "cd", containerDisk: { image: "r/i:1" } },
      { name: "pvc", persistentVolumeClaim: { claimName: "pvc" } },
      { name: "blk", dataVolume: { name: "blk" } },
      { name: "eph", ephemeral: { persistentVolumeClaim: { claimName: "eph" } } },
      { name: "empty", emptyDisk: { capacity: "16Mi" } },
      { name: "ci", cloudInitNoCloud: { userData: "#cloud-config\n" } },
      { name: "cm", configMap: { name: "cm" } },
      { name: "host", hostDisk: { path: "/h/host.img", type: "DiskOrCreate", capacity: "8Mi" } },
    ],
  });
}

const facts = {
  kvm: false,
  containerDisks: { cd: { path: "/img/cd/disk.qcow2", format: "qcow2" as const } },
  claims: {
    pvc: { type: "file" as const, path: "/pvc/disk.img" },
    blk: { type: "block" as const, path: "/dev/blk" },
    eph: { type: "file" as const, path: "/eph/disk.img" },
  },
  isos: { cm: "/node/cm.iso" },
  taps: { default: "tap0" },
};

describe("contextFor", () => {
  const ctx = contextFor(vmiWithVolumes(), "/pod", facts);
  const cases: [string, unknown][] = [
    [
      "cd",
      {
        type: "overlay",
        path: "/pod/disks/cd/overlay.qcow2",
        backing: { type: "file", path: "/img/cd/disk.qcow2", format: "qcow2" },
      },
    ],
    ["pvc", { type: "file", path: "/pvc/disk.img", format: "raw" }],
    ["blk", { type: "block", path: "/dev/blk" }],
    [
      "eph",
      {
        type: "overlay",
        path: "/pod/disks/eph/overlay.qcow2",
        backing: { type: "file", path: "/eph/disk.img", format: "raw" },
      },
    ],
    ["empty", { type: "file", path: "/pod/disks/empty/empty.qcow2", format: "qcow2" }],
    ["ci", { type: "file", path: "/pod/disks/ci/noCloud.iso", format: "raw" }],
    ["cm", { type: "file", path: "/node/cm.iso", format: "raw" }],
    ["host", undefined],
  ];
  for (const [vol, want] of cases) it(`volume ${vol}`, () => assert.deepEqual(ctx.volumes[vol], want));
  it("sockets and taps", () => {
    assert.equal(ctx.serialSocket, "/pod/sockets/serial0");
    assert.equal(ctx.vncSocket, "/pod/sockets/vnc");
    assert.deepEqual(ctx.interfaces, { default: { tap: "tap0" } });
  });
});

describe("planPreparation", () => {
  it("overlays, empty disk, hostDisk DiskOrCreate, NoCloud ISO — in volume order", () => {
    const vmi = vmiWithVolumes();
    const steps = planPreparation(vmi, contextFor(vmi, "/pod", facts)).filter((s) => s.kind !== "mkdir");
    assert.deepEqual(
      steps.map((s) => [s.kind, s.path]),
      [
        ["overlay", "/pod/disks/cd/overlay.qcow2"],
        ["overlay", "/pod/disks/eph/overlay.qcow2"],
        ["emptyDisk", "/pod/disks/empty/empty.qcow2"],
        ["noCloudIso", "/pod/disks/ci/noCloud.iso"],
        ["hostDisk", "/h/host.img"],
      ],
    );
    const empty = steps.find((s) => s.kind === "emptyDisk");
    assert.equal(empty?.kind === "emptyDisk" && empty.bytes, 16 * 2 ** 20);
  });
});

describe("executePreparation", () => {
  beforeEach(() => requirePrereqs("qemu-img", "xorriso"));
  it("creates the overlay over its base, the empty disk and the ISO; idempotent", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsvirt-prep-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const base = join(dir, "base.qcow2");
    await run("qemu-img", ["create", "-q", "-f", "qcow2", base, "32M"]);
    const vmi = newVmi({
      domain: { memory: { guest: "64Mi" }, devices: { disks: [{ name: "cd" }, { name: "e" }, { name: "ci" }] } },
      volumes: [
        { name: "cd", containerDisk: { image: "x" } },
        { name: "e", emptyDisk: { capacity: "8Mi" } },
        { name: "ci", cloudInitNoCloud: { userData: "hi" } },
      ],
    });
    const ctx = contextFor(vmi, join(dir, "pod"), {
      kvm: false,
      containerDisks: { cd: { path: base, format: "qcow2" } },
    });
    const steps = planPreparation(vmi, ctx);
    await executePreparation(steps);
    const info = async (p: string) =>
      JSON.parse((await run("qemu-img", ["info", "-U", "--output=json", p])).stdout) as Record<string, unknown>;
    const overlay = await info(join(dir, "pod", "disks", "cd", "overlay.qcow2"));
    assert.equal(overlay["backing-filename"], base);
    assert.equal(overlay["virtual-size"], 32 * 2 ** 20);
    const empty = await info(join(dir, "pod", "disks", "e", "empty.qcow2"));
    assert.deepEqual([empty.format, empty["virtual-size"]], ["qcow2", 8 * 2 ** 20]);
    assert.ok(existsSync(join(dir, "pod", "disks", "ci", "noCloud.iso")));
    assert.ok(existsSync(join(dir, "pod", "sockets")));
    // A restarted launcher keeps the guest's writes: the overlay is not recreated.
    writeFileSync(join(dir, "marker"), "");
    const before = (await info(join(dir, "pod", "disks", "cd", "overlay.qcow2")))["actual-size"];
    await executePreparation(steps);
    assert.equal((await info(join(dir, "pod", "disks", "cd", "overlay.qcow2")))["actual-size"], before);
  });
});

describe("nodeFactsFromPrepared", () => {
  it("maps a Sync request's prepared paths to node facts", () => {
    const vmi = vmiWithVolumes();
    const f = nodeFactsFromPrepared(
      vmi,
      {
        baseImages: { cd: "/img/cd/disk.img" },
        volumePaths: { pvc: "/pvc/disk.img", blk: "/dev/blk", cm: "/node/cm.iso", host: "/h/host.img" },
        blockVolumes: ["blk"],
        taps: { default: "tap0" },
        kernelBoot: { kernel: "/k/vmlinux", initrd: undefined },
      },
      { kvm: true, baseFormats: { cd: "raw" } },
    );
    assert.deepEqual(f.containerDisks, { cd: { path: "/img/cd/disk.img", format: "raw" } });
    assert.deepEqual(f.claims, {
      pvc: { type: "file", path: "/pvc/disk.img" },
      blk: { type: "block", path: "/dev/blk" },
      host: { type: "file", path: "/h/host.img" },
    });
    assert.deepEqual(f.isos, { cm: "/node/cm.iso" });
    assert.deepEqual(f.kernelBoot, { kernel: "/k/vmlinux" });
    const ctx = contextFor(vmi, "/pod", f);
    assert.deepEqual(ctx.volumes.host, { type: "file", path: "/h/host.img", format: "raw" });
    assert.equal(ctx.kvm, true);
  });
});

describe("prepareAndConvert", () => {
  beforeEach(() => requirePrereqs("qemu-img", "xorriso"));
  it("detects the base format, creates the overlay, returns the domain XML", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsvirt-pac-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const base = join(dir, "base.img");
    await run("qemu-img", ["create", "-q", "-f", "raw", base, "16M"]);
    const vmi = newVmi({
      domain: { memory: { guest: "64Mi" }, devices: { disks: [{ name: "cd" }] } },
      volumes: [{ name: "cd", containerDisk: { image: "x" } }],
    });
    const pod = join(dir, "pod");
    const xml = await prepareAndConvert(vmi, { baseImages: { cd: base } }, { podDir: pod, kvm: false });
    assert.match(xml, /<backingStore type="file">\s*<format type="raw"\/>/);
    assert.ok(existsSync(join(pod, "disks", "cd", "overlay.qcow2")));
  });
  it("creates nothing for a VMI it cannot convert", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsvirt-pac-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const vmi = newVmi({
      domain: { memory: { guest: "64Mi" }, devices: { disks: [{ name: "e" }], tpm: {} } },
      volumes: [{ name: "e", emptyDisk: { capacity: "8Mi" } }],
    });
    await assert.rejects(
      prepareAndConvert(vmi, {}, { podDir: join(dir, "pod"), kvm: false }),
      (e: unknown) => isStatusError(e) && e.status.code === 422,
    );
    assert.equal(existsSync(join(dir, "pod")), false);
  });
});
