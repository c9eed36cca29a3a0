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
        disks: ["cd", "pvc", "blk", "eph", "empty", "ci", "cdr", "cm", "sec", "sa", "dapi", "host"].map((name) => ({
          name,
        })),
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
      { name: "cdr", cloudInitConfigDrive: { secretRef: { name: "ud" } } },
      { name: "cm", configMap: { name: "cm" } },
      { name: "sec", secret: { secretName: "sec" } },
      { name: "sa", serviceAccount: { serviceAccountName: "default" } },
      { name: "dapi", downwardAPI: { fields: [] } },
      { name: "host", hostDisk: { path: "/h/host.img", type: "DiskOrCreate", capacity: "8Mi" } },
    ],
  });
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const facts = {
  kvm: false,
  containerDisks: { cd: { path: "/img/cd/disk.qcow2", format: "qcow2" as const } },
  claims: {
    pvc: { type: "file" as const, path: "/pvc/disk.img" },
    blk: { type: "block" as const, path: "/dev/blk" },
    eph: { type: "file" as const, path: "/eph/disk.img" },
    host: { type: "file" as const, path: "/root/h/host.img" },
  },
  files: {
    cm: { "app.conf": b64("color=blue\n") },
    sec: { password: b64("s3cret") },
    sa: { namespace: b64("ns"), token: b64("tok") },
    dapi: { labels: b64('app="x"\n') },
  },
  cloudInitSecrets: { cdr: { userData: "#cloud-config\nfrom: secret\n" } },
  taps: { default: "tap0" },
};

const Q = "/pod/qemu/disks";
describe("contextFor", () => {
  const ctx = contextFor(vmiWithVolumes(), "/pod", facts);
  const cases: [string, unknown][] = [
    [
      "cd",
      {
        type: "overlay",
        path: `${Q}/cd/overlay.qcow2`,
        backing: { type: "file", path: "/img/cd/disk.qcow2", format: "qcow2" },
      },
    ],
    ["pvc", { type: "file", path: "/pvc/disk.img", format: "raw" }],
    ["blk", { type: "block", path: "/dev/blk" }],
    [
      "eph",
      {
        type: "overlay",
        path: `${Q}/eph/overlay.qcow2`,
        backing: { type: "file", path: "/eph/disk.img", format: "raw" },
      },
    ],
    ["empty", { type: "file", path: `${Q}/empty/empty.qcow2`, format: "qcow2" }],
    ["ci", { type: "file", path: `${Q}/ci/noCloud.iso`, format: "raw" }],
    ["cdr", { type: "file", path: `${Q}/cdr/configdrive.iso`, format: "raw" }],
    ["cm", { type: "file", path: `${Q}/cm/configMap.iso`, format: "raw" }],
    ["sec", { type: "file", path: `${Q}/sec/secret.iso`, format: "raw" }],
    ["sa", { type: "file", path: `${Q}/sa/serviceAccount.iso`, format: "raw" }],
    ["dapi", { type: "file", path: `${Q}/dapi/downwardAPI.iso`, format: "raw" }],
    ["host", { type: "file", path: "/root/h/host.img", format: "raw" }],
  ];
  for (const [vol, want] of cases) it(`volume ${vol}`, () => assert.deepEqual(ctx.volumes[vol], want));
  it("a config volume whose files the node did not read is left out (the converter names it)", () => {
    const c = contextFor(vmiWithVolumes(), "/pod", { ...facts, files: {} });
    assert.equal(c.volumes.cm, undefined);
  });
  it("sockets (in QEMU's directory) and taps", () => {
    assert.equal(ctx.serialSocket, "/pod/qemu/serial0");
    assert.equal(ctx.vncSocket, "/pod/qemu/vnc");
    assert.equal(ctx.guestAgentSocket, "/pod/qemu/qga");
    assert.deepEqual(ctx.interfaces, { default: { tap: "tap0" } });
  });
});

describe("planPreparation", () => {
  const vmi = vmiWithVolumes();
  const steps = planPreparation(vmi, contextFor(vmi, "/pod", facts), facts);
  it("every kind, in volume order", () => {
    assert.deepEqual(
      steps.filter((s) => s.kind !== "mkdir").map((s) => [s.kind, s.path, s.kind === "iso" ? s.label : ""]),
      [
        ["overlay", `${Q}/cd/overlay.qcow2`, ""],
        ["overlay", `${Q}/eph/overlay.qcow2`, ""],
        ["emptyDisk", `${Q}/empty/empty.qcow2`, ""],
        ["iso", `${Q}/ci/noCloud.iso`, "cidata"],
        ["iso", `${Q}/cdr/configdrive.iso`, "config-2"],
        ["iso", `${Q}/cm/configMap.iso`, "cfgdata"],
        ["iso", `${Q}/sec/secret.iso`, "cfgdata"],
        ["iso", `${Q}/sa/serviceAccount.iso`, "cfgdata"],
        ["iso", `${Q}/dapi/downwardAPI.iso`, "cfgdata"],
        ["hostDisk", "/root/h/host.img", ""],
        ["own", "/root/h/host.img", ""],
      ],
    );
    assert.equal(steps[0]?.kind === "mkdir" && steps[0].path, "/pod/qemu");
  });
  const iso = (p: string) => {
    const s = steps.find((x) => x.kind === "iso" && x.path === p);
    assert.ok(s && s.kind === "iso");
    return Object.fromEntries(Object.entries(s.files).map(([k, v]) => [k, v.toString()]));
  };
  it("emptyDisk size", () => {
    const empty = steps.find((s) => s.kind === "emptyDisk");
    assert.equal(empty?.kind === "emptyDisk" && empty.bytes, 16 * 2 ** 20);
  });
  it("hostDisk DiskOrCreate at the node-checked path, with its capacity", () => {
    const h = steps.find((s) => s.kind === "hostDisk");
    assert.equal(h?.kind === "hostDisk" && h.bytes, 8 * 2 ** 20);
  });
  it("configMap, secret, serviceAccount, downwardAPI: the node's files, decoded", () => {
    assert.deepEqual(iso(`${Q}/cm/configMap.iso`), { "app.conf": "color=blue\n" });
    assert.deepEqual(iso(`${Q}/sec/secret.iso`), { password: "s3cret" });
    assert.deepEqual(iso(`${Q}/sa/serviceAccount.iso`), { namespace: "ns", token: "tok" });
    assert.deepEqual(iso(`${Q}/dapi/downwardAPI.iso`), { labels: 'app="x"\n' });
  });
  it("cloud-init: NoCloud inline, ConfigDrive from the secret the node read", () => {
    assert.equal(iso(`${Q}/ci/noCloud.iso`)["user-data"], "#cloud-config\n");
    assert.equal(iso(`${Q}/cdr/configdrive.iso`)["openstack/latest/user_data"], "#cloud-config\nfrom: secret\n");
  });
  it("a cloud-init secretRef the node did not resolve is a 422 naming the field", () => {
    assert.throws(
      () => planPreparation(vmi, contextFor(vmi, "/pod", facts), { ...facts, cloudInitSecrets: {} }),
      (e: unknown) =>
        isStatusError(e) && e.status.details?.causes?.[0]?.field === "spec.volumes[6].cloudInitConfigDrive.secretRef",
    );
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
    const disks = join(dir, "pod", "qemu", "disks");
    const overlay = await info(join(disks, "cd", "overlay.qcow2"));
    assert.equal(overlay["backing-filename"], base);
    assert.equal(overlay["virtual-size"], 32 * 2 ** 20);
    const empty = await info(join(disks, "e", "empty.qcow2"));
    assert.deepEqual([empty.format, empty["virtual-size"]], ["qcow2", 8 * 2 ** 20]);
    assert.ok(existsSync(join(disks, "ci", "noCloud.iso")));
    assert.ok(existsSync(join(dir, "pod", "qemu")));
    // A restarted launcher keeps the guest's writes: the overlay is not recreated.
    writeFileSync(join(dir, "marker"), "");
    const before = (await info(join(disks, "cd", "overlay.qcow2")))["actual-size"];
    await executePreparation(steps);
    assert.equal((await info(join(disks, "cd", "overlay.qcow2")))["actual-size"], before);
  });
});

describe("nodeFactsFromPrepared", () => {
  it("maps a Sync request's prepared payload to node facts", () => {
    const vmi = vmiWithVolumes();
    const f = nodeFactsFromPrepared(
      {
        baseImages: { cd: "/img/cd/disk.img" },
        volumePaths: { pvc: "/pvc/disk.img", blk: "/dev/blk", host: "/h/host.img" },
        volumeFiles: { cm: { k: b64("v") } },
        cloudInitSecrets: { cdr: { userData: "u" } },
        blockVolumes: ["blk"],
        taps: { default: "tap0" },
        kernelBoot: { kernel: "/k/vmlinux" },
      },
      { kvm: true, baseFormats: { cd: "raw" } },
    );
    assert.deepEqual(f.containerDisks, { cd: { path: "/img/cd/disk.img", format: "raw" } });
    assert.deepEqual(f.claims, {
      pvc: { type: "file", path: "/pvc/disk.img" },
      blk: { type: "block", path: "/dev/blk" },
      host: { type: "file", path: "/h/host.img" },
    });
    assert.deepEqual(f.files, { cm: { k: b64("v") } });
    assert.deepEqual(f.cloudInitSecrets, { cdr: { userData: "u" } });
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
    assert.ok(existsSync(join(pod, "qemu", "disks", "cd", "overlay.qcow2")));
  });
  it("refuses a hostDisk the node did not approve (422 naming the path field), creating nothing", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsvirt-pac-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const vmi = newVmi({
      domain: { memory: { guest: "64Mi" }, devices: { disks: [{ name: "h" }] } },
      volumes: [{ name: "h", hostDisk: { path: "/etc/shadow", type: "Disk" } }],
    });
    await assert.rejects(
      prepareAndConvert(vmi, {}, { podDir: join(dir, "pod"), kvm: false }),
      (e: unknown) => isStatusError(e) && e.status.details?.causes?.[0]?.field === "spec.volumes[0].hostDisk.path",
    );
    assert.equal(existsSync(join(dir, "pod")), false);
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
