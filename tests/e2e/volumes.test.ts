// Volume preparation end to end through `tsvirt up` (real node agent, launcher, libvirt, QEMU under TCG): config
// disks the guest mounts and reads, hostDisk under the node's root (and refused outside it), imagePullPolicy, pull
// secrets, the digest a VMI booted from, and `tsvirt image push`/`verify` across registries.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type FaultProxy, startFaultProxy } from "../../images/testing/fault-proxy.js";
import { startRegistry } from "../../images/testing/registry.js";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { type Cluster, guestAnswers, startCluster, TSVIRT, until } from "../lib/up.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");

function vmiObject(
  c: Cluster,
  name: string,
  o: { image?: string; containerDisk?: Record<string, unknown>; disks?: string[]; volumes?: unknown[] } = {},
) {
  const disks = ["containerdisk", ...(o.disks ?? [])];
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name, namespace: "default" },
    spec: {
      domain: {
        devices: {
          disks: disks.map((d) => ({ name: d, disk: { bus: "virtio" } })),
          interfaces: [{ name: "default", masquerade: {} }],
        },
        resources: { requests: { memory: "128Mi" } },
      },
      networks: [{ name: "default", pod: {} }],
      volumes: [
        { name: "containerdisk", containerDisk: { image: o.image ?? c.image, ...o.containerDisk } },
        ...(o.volumes ?? []),
      ],
    },
  };
}

/** `kubectl apply` that is expected to fail: its stderr. */
function applyRefused(c: Cluster, obj: unknown): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile("kubectl", ["apply", "-f", "-"], { env: c.env }, (err, _out, stderr) =>
      err ? resolve(stderr) : reject(new Error("kubectl apply succeeded; expected a refusal")),
    );
    p.stdin?.end(JSON.stringify(obj));
  });
}

async function deleteVmi(c: Cluster, name: string): Promise<void> {
  await c.kubectl("delete", "vmi", name, "--wait=true", "--timeout=120s");
}

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [TSVIRT, ...args], { timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

describe("volume preparation through tsvirt up", async () => {
  it("prerequisites", () => requirePrereqs(...CLUSTER));

  it("config disks, ConfigDrive, hostDisk root; pull policy, pull secret, digest pinning", {
    timeout: 900_000,
  }, async (t) => {
    const hostRoot = await mkdtemp(join(tmpdir(), "tsv-hostdisks-"));
    await chmod(hostRoot, 0o755);
    t.after(() => rm(hostRoot, { recursive: true, force: true }));
    const c = await startCluster(t, { name: "vols", args: ["--host-disk-root", hostRoot] });
    const { kubectl, waitFor } = c;

    // --- configMap, secret, cloudInitConfigDrive (secretRef) and hostDisk (DiskOrCreate, under the root) -------
    await c.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "app-config", namespace: "default" },
      data: { color: "blue-from-configmap" },
    });
    await c.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "app-secret", namespace: "default" },
      data: { password: b64("s3cret-from-secret") },
    });
    await c.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "cd-userdata", namespace: "default" },
      data: { userdata: b64("#cloud-config\nuserdata-from-configdrive\n") },
    });
    const hostDiskPath = join(hostRoot, "vms", "data.img");
    // An existing disk (root's file) below the root: handed to QEMU's user, as KubeVirt does.
    const existing = join(hostRoot, "existing.img");
    await writeFile(existing, Buffer.alloc(8 << 20));
    await c.apply(
      vmiObject(c, "cfg", {
        disks: ["cm", "sec", "cdrive", "hd", "hd2"],
        volumes: [
          { name: "cm", configMap: { name: "app-config" } },
          { name: "sec", secret: { secretName: "app-secret" } },
          { name: "cdrive", cloudInitConfigDrive: { secretRef: { name: "cd-userdata" } } },
          { name: "hd", hostDisk: { path: hostDiskPath, type: "DiskOrCreate", capacity: "16Mi" } },
          { name: "hd2", hostDisk: { path: existing, type: "Disk" } },
        ],
      }),
    );
    await waitFor("vmi/cfg", "{.status.phase}", "Running", 300_000);
    const con = c.console("cfg");
    await con.expect(new RegExp(c.guest.marker), 300_000);
    con.send("\n");
    const read = async (dev: string, file: string, want: RegExp): Promise<void> => {
      const dir = `/mnt/${dev}`;
      con.send(
        `mkdir -p ${dir}; mount -t iso9660 -o ro /dev/${dev} ${dir} 2>/dev/null; echo "<$(cat ${dir}/${file})>"\n`,
      );
      await con.expect(want, 60_000);
    };
    await read("vdb", "color", /<blue-from-configmap>/);
    await read("vdc", "password", /<s3cret-from-secret>/);
    await read("vdd", "openstack/latest/user_data", /userdata-from-configdrive/);
    con.send('echo "hd=$(cat /sys/block/vde/size)"\n');
    await con.expect(/hd=32768/, 60_000); // 16 MiB in 512-byte sectors
    con.send('echo "hd2=$(cat /sys/block/vdf/size)"\n');
    await con.expect(/hd2=16384/, 60_000);
    con.close();

    // The digest the containerDisk booted from is recorded in the VMI's volume status.
    const cfg = await c.getJson<{
      status: { volumeStatus?: { name: string; containerDiskVolume?: { digest?: string } }[] };
    }>("vmi", "cfg");
    const bootDigest = cfg.status.volumeStatus?.find((v) => v.name === "containerdisk")?.containerDiskVolume?.digest;
    assert.match(bootDigest ?? "", /^sha256:[0-9a-f]{64}$/, JSON.stringify(cfg.status.volumeStatus));
    await deleteVmi(c, "cfg");

    // --- hostDisk: '..' or a relative path is a 422 naming the field; outside the root the node refuses --------
    const refused = await applyRefused(
      c,
      vmiObject(c, "hd-dots", {
        disks: ["hd"],
        volumes: [{ name: "hd", hostDisk: { path: `${hostRoot}/../etc/shadow`, type: "Disk" } }],
      }),
    );
    assert.match(refused, /spec\.volumes\[1\]\.hostDisk\.path/);
    assert.match(refused, /Invalid|invalid/);
    const outside = join(c.dir, "outside.img");
    await writeFile(outside, Buffer.alloc(1 << 20));
    await mkdir(join(hostRoot, "links"), { recursive: true });
    await c.apply(
      vmiObject(c, "hd-out", { disks: ["hd"], volumes: [{ name: "hd", hostDisk: { path: outside, type: "Disk" } }] }),
    );
    await waitFor(
      "vmi/hd-out",
      '{.status.conditions[?(@.type=="Synchronized")].message}',
      /spec\.volumes\[1\]\.hostDisk\.path.*outside the node's hostDisk root/,
      120_000,
    );
    assert.notEqual(await kubectl("get", "vmi", "hd-out", "-o", "jsonpath={.status.phase}"), "Running");
    await deleteVmi(c, "hd-out");

    // --- imagePullPolicy: IfNotPresent uses the node cache, Always asks the registry again --------------------
    // Each VMI's guest boots from what was pulled (or cached) and answers on its console before it is deleted: a
    // booted guest handles the ACPI button, so the delete is prompt (a booting one would run out its 30 s grace).
    const P: FaultProxy = await startFaultProxy(c.registry.host);
    t.after(() => P.close());
    const viaP = `${P.host}/tsvirt/guest:e2e`;
    await c.apply(vmiObject(c, "pull1", { image: viaP }));
    await waitFor("vmi/pull1", "{.status.phase}", "Running", 300_000);
    assert.ok(P.requests > 0, "the first pull went to the registry");
    await guestAnswers(c, "pull1", "pull1");
    await deleteVmi(c, "pull1");
    P.reset();
    await c.apply(vmiObject(c, "pull2", { image: viaP, containerDisk: { imagePullPolicy: "IfNotPresent" } }));
    await waitFor("vmi/pull2", "{.status.phase}", "Running", 300_000);
    assert.equal(P.requests, 0, "IfNotPresent: served from the node cache, no registry request");
    await guestAnswers(c, "pull2", "pull2");
    await deleteVmi(c, "pull2");
    await c.apply(vmiObject(c, "pull3", { image: viaP, containerDisk: { imagePullPolicy: "Always" } }));
    await waitFor("vmi/pull3", "{.status.phase}", "Running", 300_000);
    assert.ok(P.requests > 0, "Always: the registry was asked again");
    await guestAnswers(c, "pull3", "pull3");
    await deleteVmi(c, "pull3");

    // --- an image behind a pull secret starts only with the secret -------------------------------------------
    const A = await startFaultProxy(c.registry.host);
    t.after(() => A.close());
    A.auth = { kind: "bearer", user: "alice", password: "pw", token: "tok-e2e" };
    const viaA = `${A.host}/tsvirt/guest:e2e`;
    await c.apply(vmiObject(c, "nosecret", { image: viaA }));
    await waitFor(
      "vmi/nosecret",
      '{.status.conditions[?(@.type=="Ready")].reason}',
      /ErrImagePull|ImagePullBackOff/,
      120_000,
    );
    assert.notEqual(await kubectl("get", "vmi", "nosecret", "-o", "jsonpath={.status.phase}"), "Running");
    await deleteVmi(c, "nosecret");
    const dockerconfig = JSON.stringify({ auths: { [A.host]: { auth: b64("alice:pw") } } });
    await c.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "regcred", namespace: "default" },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": b64(dockerconfig) },
    });
    await c.apply(vmiObject(c, "withsecret", { image: viaA, containerDisk: { imagePullSecret: "regcred" } }));
    await waitFor("vmi/withsecret", "{.status.phase}", "Running", 300_000);
    assert.ok(A.tokenRequests > 0, "the node authenticated with the secret's credentials");
    await guestAnswers(c, "withsecret", "withsecret");
    await deleteVmi(c, "withsecret");

    // --- tsvirt image push to several registries, and verify ----------------------------------------------------
    const R2 = await startRegistry();
    t.after(() => R2.stop());
    const cacheDir = join(c.dir, "build-cache");
    const conf = join(c.dir, "registries.conf");
    const pushed = await runCli([
      "image",
      "push",
      "--cache-dir",
      cacheDir,
      bootDigest ?? "",
      `${c.registry.host}/tsvirt/mirrored:v1`,
      `${R2.host}/tsvirt/mirrored:v1`,
      "127.0.0.1:1/tsvirt/mirrored:v1",
    ]);
    assert.equal(pushed.code, 1, "one destination failed: non-zero exit");
    const res = JSON.parse(pushed.stdout) as { pushed: { ref: string; error?: unknown }[] };
    assert.deepEqual(
      res.pushed.map((p) => [p.ref, p.error === undefined]),
      [
        [`${c.registry.host}/tsvirt/mirrored:v1`, true],
        [`${R2.host}/tsvirt/mirrored:v1`, true],
        ["127.0.0.1:1/tsvirt/mirrored:v1", false],
      ],
    );
    await writeFile(
      conf,
      `[[registry]]\nprefix = "mirrored.test"\nlocation = "${c.registry.host}"\n[[registry.mirror]]\nlocation = "${R2.host}"\n`,
    );
    const ok = await runCli(["image", "verify", "--registries-conf", conf, "mirrored.test/tsvirt/mirrored:v1"]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { digest?: string }).digest, bootDigest);
    // Another image under the same tag on one registry only: verify says they disagree, and exits non-zero.
    const other = join(c.dir, "other.img");
    await writeFile(other, Buffer.alloc(1 << 20, 7));
    const built = await runCli(["image", "build", "--cache-dir", cacheDir, "--disk", other]);
    const otherDigest = (JSON.parse(built.stdout) as { manifestDigest: string }).manifestDigest;
    await runCli(["image", "push", "--cache-dir", cacheDir, otherDigest, `${R2.host}/tsvirt/mirrored:v1`]);
    const bad = await runCli(["image", "verify", "--registries-conf", conf, "mirrored.test/tsvirt/mirrored:v1"]);
    assert.equal(bad.code, 1);
    assert.equal((JSON.parse(bad.stdout) as { consistent: boolean }).consistent, false);
    assert.match(bad.stderr, /disagree/);
    await until("no VMI left", 60_000, async () =>
      (await kubectl("get", "vmi", "-o", "name")).trim() === "" ? true : undefined,
    );
  });
});
