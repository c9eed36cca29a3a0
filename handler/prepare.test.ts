import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { VirtualMachineInstance, Volume } from "../api/index.js";
import { movedClaimName, shortHash } from "../api/index.js";
import { isStatusError } from "../lib/errors.js";
import { refs } from "./ports.js";
import {
  checkHostDisk,
  downwardApiFiles,
  imageToPull,
  isBelow,
  type NodePrepareDeps,
  prepareNode,
  withContainerDiskDigests,
} from "./prepare.js";
import { FakeApi } from "./testing.js";

const D1 = `sha256:${"a".repeat(64)}`;
const D2 = `sha256:${"b".repeat(64)}`;
const b64 = (s: string) => Buffer.from(s).toString("base64");

function vmi(volumes: Volume[], extra: Partial<VirtualMachineInstance> = {}): VirtualMachineInstance {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "vm1", namespace: "ns1", uid: "uid-1", labels: { app: "web", tier: 'a"b' } },
    spec: { domain: { devices: { disks: volumes.map((v) => ({ name: v.name })) } }, volumes },
    ...extra,
  };
}

interface PullCall {
  image: string;
  uid: string;
  opts: unknown;
}
function setup(o: Partial<NodePrepareDeps> = {}) {
  const api = new FakeApi();
  const pulls: PullCall[] = [];
  const deps: NodePrepareDeps = {
    api,
    puller: {
      pull: async (image, uid, opts) => {
        pulls.push({ image, uid, opts });
        return { path: `/cache/${image.replace(/\W/g, "_")}/disk.img`, digest: D1 };
      },
      release: async () => {},
    },
    ...o,
  };
  return { api, pulls, deps };
}

const refuses = (field: string, re?: RegExp) => (e: unknown) => {
  assert.ok(isStatusError(e), String(e));
  assert.equal(e.status.code, 422);
  assert.equal(e.status.details?.causes?.[0]?.field, field);
  if (re) assert.match(e.message + JSON.stringify(e.status.details), re);
  return true;
};

describe("prepareNode: containerDisk", () => {
  it("pulls with the volume's policy and no credentials; records the digest", async () => {
    const { deps, pulls } = setup();
    const r = await prepareNode(
      vmi([{ name: "cd", containerDisk: { image: "reg.test/vm/disk:v1", imagePullPolicy: "Always" } }]),
      deps,
    );
    assert.deepEqual(pulls, [{ image: "reg.test/vm/disk:v1", uid: "uid-1", opts: { pullPolicy: "Always" } }]);
    assert.deepEqual(r.prepared.baseImages, { cd: "/cache/reg_test_vm_disk_v1/disk.img" });
    assert.deepEqual(r.digests, { cd: D1 });
  });

  it("uses the imagePullSecret's dockerconfigjson credentials", async () => {
    const { api, deps, pulls } = setup();
    api.put(refs.secrets, {
      metadata: { name: "pull", namespace: "ns1" },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": b64(JSON.stringify({ auths: { "reg.test": { auth: b64("alice:pw") } } })) },
    });
    await prepareNode(
      vmi([{ name: "cd", containerDisk: { image: "reg.test/vm/disk:v1", imagePullSecret: "pull" } }]),
      deps,
    );
    assert.deepEqual(pulls[0]?.opts, { credentials: { "reg.test": { username: "alice", password: "pw" } } });
  });

  it("a missing or mistyped imagePullSecret is a 422 naming the field; nothing is pulled", async () => {
    const { api, deps, pulls } = setup();
    const v = vmi([{ name: "cd", containerDisk: { image: "reg.test/vm/disk:v1", imagePullSecret: "pull" } }]);
    await assert.rejects(prepareNode(v, deps), refuses("spec.volumes[0].containerDisk.imagePullSecret", /not found/));
    api.put(refs.secrets, { metadata: { name: "pull", namespace: "ns1" }, type: "Opaque", data: { a: b64("b") } });
    await assert.rejects(
      prepareNode(v, deps),
      refuses("spec.volumes[0].containerDisk.imagePullSecret", /dockerconfigjson/),
    );
    assert.equal(pulls.length, 0);
  });

  it("pulls at the digest the VMI's status records (restart, migration target)", async () => {
    const { deps, pulls } = setup();
    const v = vmi([{ name: "cd", containerDisk: { image: "reg.test/vm/disk:v1" } }], {
      status: { volumeStatus: [{ name: "cd", target: "vda", containerDiskVolume: { digest: D2 } }] },
    });
    await prepareNode(v, deps);
    assert.equal(pulls[0]?.image, `reg.test/vm/disk:v1@${D2}`);
  });
});

describe("digest helpers", () => {
  it("imageToPull keeps the image without a digest, pins it with one", () => {
    assert.equal(imageToPull("reg.test/a:v1", undefined), "reg.test/a:v1");
    assert.equal(imageToPull("reg.test/a:v1", D1), `reg.test/a:v1@${D1}`);
    assert.equal(imageToPull(`reg.test/a@${D2}`, D1), `reg.test/a@${D1}`);
  });
  it("withContainerDiskDigests adds entries with KubeVirt's target, updates and keeps others", () => {
    const v = vmi(
      [
        { name: "pvc", persistentVolumeClaim: { claimName: "p" } },
        { name: "cd", containerDisk: { image: "x" } },
      ],
      { status: { volumeStatus: [{ name: "pvc", target: "vda", phase: "Ready" }] } },
    );
    assert.deepEqual(withContainerDiskDigests(v, { cd: D1 }), [
      { name: "pvc", target: "vda", phase: "Ready" },
      { name: "cd", target: "vdb", containerDiskVolume: { digest: D1 } },
    ]);
  });
});

describe("prepareNode: config volumes and cloud-init secrets", () => {
  it("configMap (data and binaryData), secret, serviceAccount, downwardAPI become the launcher's files", async () => {
    const { api, deps } = setup();
    api.put(refs.configMaps, {
      metadata: { name: "cm", namespace: "ns1" },
      data: { "app.conf": "color=blue\n" },
      binaryData: { "blob.bin": b64("\u0000\u0001") },
    });
    api.put(refs.secrets, { metadata: { name: "sec", namespace: "ns1" }, data: { password: b64("s3cret") } });
    const r = await prepareNode(
      vmi([
        { name: "cm", configMap: { name: "cm" } },
        { name: "sec", secret: { secretName: "sec" } },
        { name: "sa", serviceAccount: { serviceAccountName: "default" } },
        { name: "dapi", downwardAPI: { fields: [{ path: "name", fieldRef: { fieldPath: "metadata.name" } }] } },
        { name: "opt", configMap: { name: "absent", optional: true } },
      ]),
      deps,
    );
    assert.deepEqual(r.prepared.volumeFiles, {
      cm: { "app.conf": b64("color=blue\n"), "blob.bin": b64("\u0000\u0001") },
      sec: { password: b64("s3cret") },
      sa: { namespace: b64("ns1") },
      dapi: { name: b64("vm1") },
      opt: {},
    });
  });

  it("a missing ConfigMap or Secret is a 422 naming the volume's field", async () => {
    const { deps } = setup();
    await assert.rejects(
      prepareNode(vmi([{ name: "cm", configMap: { name: "absent" } }]), deps),
      refuses("spec.volumes[0].configMap.name", /ConfigMap "absent" not found/),
    );
    await assert.rejects(
      prepareNode(vmi([{ name: "s", secret: { secretName: "absent" } }]), deps),
      refuses("spec.volumes[0].secret.secretName"),
    );
    await assert.rejects(
      prepareNode(vmi([{ name: "ci", cloudInitConfigDrive: { secretRef: { name: "absent" } } }]), deps),
      refuses("spec.volumes[0].cloudInitConfigDrive.secretRef"),
    );
  });

  it("cloud-init secretRef and networkDataSecretRef are read (userdata / userData keys)", async () => {
    const { api, deps } = setup();
    api.put(refs.secrets, { metadata: { name: "ud", namespace: "ns1" }, data: { userdata: b64("#cloud-config\n") } });
    api.put(refs.secrets, { metadata: { name: "nd", namespace: "ns1" }, data: { networkData: b64("version: 2\n") } });
    const r = await prepareNode(
      vmi([
        { name: "ci", cloudInitNoCloud: { secretRef: { name: "ud" }, networkDataSecretRef: { name: "nd" } } },
        { name: "inline", cloudInitConfigDrive: { userData: "x" } },
      ]),
      deps,
    );
    assert.deepEqual(r.prepared.cloudInitSecrets, { ci: { userData: "#cloud-config\n", networkData: "version: 2\n" } });
  });

  it("downwardAPI: labels and annotations in Kubernetes' format; an unsupported field is refused", () => {
    const v = vmi([]);
    const files = downwardApiFiles(
      v,
      {
        name: "d",
        downwardAPI: {
          fields: [
            { path: "labels", fieldRef: { fieldPath: "metadata.labels" } },
            { path: "app", fieldRef: { fieldPath: "metadata.labels['app']" } },
          ],
        },
      },
      "spec.volumes[0].downwardAPI",
    );
    assert.equal(Buffer.from(files.labels ?? "", "base64").toString(), 'app="web"\ntier="a\\"b"\n');
    assert.equal(Buffer.from(files.app ?? "", "base64").toString(), "web");
    assert.throws(
      () =>
        downwardApiFiles(
          v,
          { name: "d", downwardAPI: { fields: [{ path: "x", fieldRef: { fieldPath: "spec.nodeName" } }] } },
          "spec.volumes[0].downwardAPI",
        ),
      refuses("spec.volumes[0].downwardAPI.fields[0]"),
    );
  });
});

describe("hostDisk under the node's root", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvirt-hostdisk-"));
  const root = join(dir, "root");
  mkdirSync(join(root, "vms"), { recursive: true });
  writeFileSync(join(root, "vms", "a.img"), "");
  writeFileSync(join(dir, "outside.img"), "");
  symlinkSync(join(dir, "outside.img"), join(root, "vms", "escape.img"));
  symlinkSync(dir, join(root, "up"));
  const F = "spec.volumes[0].hostDisk.path";
  const check = (p: string, type = "Disk") => checkHostDisk(p, type, root, F, "vm1");

  it("an existing disk below the root is used at its resolved path", async () => {
    assert.equal(await check(join(root, "vms", "a.img")), join(root, "vms", "a.img"));
  });
  it("DiskOrCreate may name a file (and directories) not there yet, below the root", async () => {
    assert.equal(await check(join(root, "new", "b.img"), "DiskOrCreate"), join(root, "new", "b.img"));
  });
  it("refused: no root configured, outside the root, symlinks out of it, '..', a missing Disk", async () => {
    await assert.rejects(
      checkHostDisk(join(root, "vms", "a.img"), "Disk", undefined, F, "vm1"),
      refuses(F, /disabled/),
    );
    await assert.rejects(check(join(dir, "outside.img")), refuses(F, /outside/));
    await assert.rejects(check(join(root, "vms", "escape.img")), refuses(F, /outside/));
    await assert.rejects(check(join(root, "up", "outside.img")), refuses(F, /outside/));
    await assert.rejects(check(join(root, "up", "new.img"), "DiskOrCreate"), refuses(F, /outside/));
    await assert.rejects(check(`${root}/vms/../../outside.img`), refuses(F, /not allowed/));
    await assert.rejects(check(join(root, "vms", "missing.img")), refuses(F, /does not exist/));
    await assert.rejects(check(root), refuses(F, /outside/));
  });
  it("prepareNode hands the checked path to the launcher", async () => {
    const { deps } = setup({ hostDiskRoot: root });
    const r = await prepareNode(
      vmi([{ name: "h", hostDisk: { path: join(root, "vms", "a.img"), type: "Disk" } }]),
      deps,
    );
    assert.deepEqual(r.prepared.volumePaths, { h: join(root, "vms", "a.img") });
  });
  it("isBelow", () => {
    assert.equal(isBelow("/r", "/r/a"), true);
    assert.equal(isBelow("/r", "/r"), false);
    assert.equal(isBelow("/r", "/ra"), false);
    assert.equal(isBelow("/r", "/"), false);
  });
  it("cleanup", () => rmSync(dir, { recursive: true, force: true }));
});

describe("prepareNode: claims (persistentVolumeClaim, dataVolume)", () => {
  const base = mkdtempSync(join(tmpdir(), "tsvirt-prep-claim-"));
  const pvOf = (name: string, node: string, mode = "Filesystem") => ({
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: { name, annotations: { "pv.kubernetes.io/provisioned-by": "tsvirt.io/local" } },
    spec: {
      capacity: { storage: "1Mi" },
      volumeMode: mode,
      local: { path: `volumes/${name}` },
      nodeAffinity: {
        required: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: "kubernetes.io/hostname", operator: "In", values: [node] }] },
          ],
        },
      },
    },
  });
  const claim = (name: string, pv?: string, phase = "Bound") => ({
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, namespace: "ns1" },
    spec: pv ? { volumeName: pv } : {},
    status: { phase },
  });
  const dataVolume = (name: string, phase: string, progress?: string) => ({
    apiVersion: "cdi.kubevirt.io/v1beta1",
    kind: "DataVolume",
    metadata: { name, namespace: "ns1" },
    spec: { source: { blank: {} } },
    status: { phase, ...(progress ? { progress } : {}) },
  });

  it("resolves claim → bound PV → this node's disk.img (Filesystem) or loop device (Block)", async () => {
    const { api, deps } = setup({
      node: "node01",
      dataDir: base,
      loopDeviceOf: async (f) => (f.endsWith("pvc-blk/disk.img") ? "/dev/loop9" : undefined),
    });
    for (const n of ["pvc-1", "pvc-blk"]) {
      mkdirSync(join(base, "volumes", n), { recursive: true });
      writeFileSync(join(base, "volumes", n, "disk.img"), "");
    }
    api.put(refs.pvs, pvOf("pvc-1", "node01"));
    api.put(refs.pvs, pvOf("pvc-blk", "node01", "Block"));
    api.put(refs.pvcs, claim("data", "pvc-1"));
    api.put(refs.pvcs, claim("dv1", "pvc-blk"));
    api.put(refs.datavolumes, dataVolume("dv1", "Succeeded", "100.0%"));
    const r = await prepareNode(
      vmi([
        { name: "a", persistentVolumeClaim: { claimName: "data" } },
        { name: "b", dataVolume: { name: "dv1" } },
      ]),
      deps,
    );
    assert.deepEqual(r.prepared.volumePaths, { a: join(base, "volumes", "pvc-1", "disk.img"), b: "/dev/loop9" });
    assert.deepEqual(r.prepared.blockVolumes, ["b"]);
  });

  it("refuses (retried) a claim missing, not Bound, on another node, or whose volume is not made yet", async () => {
    const { api, deps } = setup({ node: "node01", dataDir: base, loopDeviceOf: async () => undefined });
    const pvc = (claimName: string) => vmi([{ name: "d", persistentVolumeClaim: { claimName } }]);
    const field = "spec.volumes[0].persistentVolumeClaim.claimName";
    await assert.rejects(prepareNode(pvc("nope"), deps), refuses(field, /not found/));
    api.put(refs.pvcs, claim("pending", undefined, "Pending"));
    await assert.rejects(prepareNode(pvc("pending"), deps), refuses(field, /not Bound yet/));
    api.put(refs.pvs, pvOf("pvc-other", "node02"));
    api.put(refs.pvcs, claim("other", "pvc-other"));
    await assert.rejects(prepareNode(pvc("other"), deps), refuses(field, /on node node02, not node01/));
    api.put(refs.pvs, pvOf("pvc-new", "node01"));
    api.put(refs.pvcs, claim("fresh", "pvc-new"));
    await assert.rejects(prepareNode(pvc("fresh"), deps), refuses(field, /not made yet/));
    const dv = vmi([{ name: "d", dataVolume: { name: "fresh" } }]);
    api.put(refs.datavolumes, dataVolume("fresh", "Succeeded"));
    await assert.rejects(prepareNode(dv, deps), refuses("spec.volumes[0].dataVolume.name", /not made yet/));
  });

  it("refuses (retried) a dataVolume until its DataVolume is Succeeded, naming its phase and progress", async () => {
    const { api, deps } = setup({ node: "node01", dataDir: base });
    mkdirSync(join(base, "volumes", "pvc-dv"), { recursive: true });
    writeFileSync(join(base, "volumes", "pvc-dv", "disk.img"), "");
    api.put(refs.pvs, pvOf("pvc-dv", "node01"));
    api.put(refs.pvcs, claim("root", "pvc-dv"));
    const v = vmi([{ name: "d", dataVolume: { name: "root" } }]);
    const field = "spec.volumes[0].dataVolume.name";
    await assert.rejects(prepareNode(v, deps), refuses(field, /DataVolume "root" not found in namespace ns1/));
    api.put(refs.datavolumes, dataVolume("root", "ImportInProgress", "45.2%"));
    await assert.rejects(
      prepareNode(v, deps),
      refuses(field, /DataVolume "root" is not ready yet \(phase ImportInProgress, progress 45\.2%\)/),
    );
    api.put(refs.datavolumes, dataVolume("root", "Succeeded", "100.0%"));
    const r = await prepareNode(v, deps);
    assert.deepEqual(r.prepared.volumePaths, { d: join(base, "volumes", "pvc-dv", "disk.img") });
  });

  it("a live migration's target prepares a moved disk's new claim, once it is at full size and QEMU's", async () => {
    const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    const { api, deps } = setup({ node: "node02", dataDir: base, volumeOwner: me });
    const to = movedClaimName("old", shortHash("mig-uid"));
    mkdirSync(join(base, "volumes", "pvc-moved"), { recursive: true });
    writeFileSync(join(base, "volumes", "pvc-moved", "disk.img"), "");
    api.put(refs.pvs, pvOf("pvc-moved", "node02"));
    api.put(refs.pvcs, claim(to, "pvc-moved"));
    api.put(refs.datavolumes, dataVolume(to, "Succeeded"));
    const v = vmi([{ name: "d", dataVolume: { name: "old" } }], {
      status: {
        migrationState: { migrationUid: "mig-uid", sourceNode: "node01", targetNode: "node02" },
        migratedVolumes: [
          { volumeName: "d", sourcePVCInfo: { claimName: "old" }, destinationPVCInfo: { claimName: to } },
        ],
      },
    });
    const field = "spec.volumes[0].dataVolume.name";
    await assert.rejects(prepareNode(v, deps), refuses(field, /has 0 of 1048576 bytes yet/));
    truncateSync(join(base, "volumes", "pvc-moved", "disk.img"), 2 ** 20);
    await assert.rejects(
      prepareNode(v, { ...deps, volumeOwner: { uid: me.uid + 1, gid: me.gid } }),
      refuses(field, /not QEMU's/),
    );
    const r = await prepareNode(v, deps);
    assert.deepEqual(r.prepared.volumePaths, { d: join(base, "volumes", "pvc-moved", "disk.img") });
  });

  it("a moved Block claim: its loop device must be there at full size and QEMU's too", async () => {
    const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    const loop = join(base, "loop7"); // stands for /dev/loop7 (a file this test owns)
    writeFileSync(loop, "");
    let loopBytes = 4096;
    const { api, deps } = setup({
      node: "node02",
      dataDir: base,
      volumeOwner: me,
      loopDeviceOf: async (f) => (f.endsWith("pvc-mblk/disk.img") ? loop : undefined),
      volumeBytes: async (p, block) => (block ? loopBytes : statSync(p).size),
    });
    const to = movedClaimName("oldblk", shortHash("mig-uid"));
    mkdirSync(join(base, "volumes", "pvc-mblk"), { recursive: true });
    writeFileSync(join(base, "volumes", "pvc-mblk", "disk.img"), "");
    truncateSync(join(base, "volumes", "pvc-mblk", "disk.img"), 2 ** 20);
    api.put(refs.pvs, pvOf("pvc-mblk", "node02", "Block"));
    api.put(refs.pvcs, claim(to, "pvc-mblk"));
    api.put(refs.datavolumes, dataVolume(to, "Succeeded"));
    const v = vmi([{ name: "d", dataVolume: { name: "oldblk" } }], {
      status: {
        migrationState: { migrationUid: "mig-uid", sourceNode: "node01", targetNode: "node02" },
        migratedVolumes: [
          { volumeName: "d", sourcePVCInfo: { claimName: "oldblk" }, destinationPVCInfo: { claimName: to } },
        ],
      },
    });
    const field = "spec.volumes[0].dataVolume.name";
    await assert.rejects(
      prepareNode(v, deps),
      refuses(field, /the loop device .*loop7 of claim .* has 4096 of 1048576/),
    );
    loopBytes = 2 ** 20;
    await assert.rejects(
      prepareNode(v, { ...deps, volumeOwner: { uid: me.uid + 1, gid: me.gid } }),
      refuses(field, /not QEMU's/),
    );
    const r = await prepareNode(v, deps);
    assert.deepEqual([r.prepared.volumePaths, r.prepared.blockVolumes], [{ d: loop }, ["d"]]);
  });
  it("cleanup", () => rmSync(base, { recursive: true, force: true }));
});
