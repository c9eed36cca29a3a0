// A VM that cannot run says why where a user looks: `kubectl describe vm` (printableStatus, the Failure/Ready
// conditions) and `kubectl get events` (Warning events on the VM or its VMI). Three causes through `tsvirt up`: a
// containerDisk image no registry holds, a hostDisk outside the node's root (refused by the node agent), and a domain
// libvirt refuses (an unknown CPU model: the launcher's Sync fails).
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CLUSTER, requirePrereqs } from "../lib/prereqs.js";
import { type Cluster, startCluster, until } from "../lib/up.js";

type VmObject = {
  spec: {
    template: {
      spec: {
        domain: { cpu?: Record<string, unknown>; devices: { disks: object[] } };
        volumes: object[];
      };
    };
  };
};

interface EventList {
  items: {
    type: string;
    reason: string;
    message: string;
    involvedObject: { apiVersion?: string; kind: string; name: string; namespace?: string; uid?: string };
  }[];
}

/** Warning events about `kind/name`, selected as a user would (`kubectl get events --field-selector`). */
async function warnings(c: Cluster, kind: string, name: string) {
  const list = await c.getJson<EventList>(
    "events",
    "-n",
    "default",
    "--field-selector",
    `involvedObject.kind=${kind},involvedObject.name=${name},type=Warning`,
  );
  return list.items;
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** kubectl describe's rendering of the VM's Failure condition (KubeVirt: reason SyncFailed) with this message. */
function failure(message: string): RegExp {
  return new RegExp(
    `Message:\\s+${esc(message)}\\n\\s+Reason:\\s+SyncFailed\\n\\s+Status:\\s+True\\n\\s+Type:\\s+Failure\\n`,
  );
}

/**
 * A Warning event about the VM's VMI (the current one, or the last one when the VM crash-loops) with exactly this
 * reason and message, both as `kubectl get events` prints it and through a field selector on the involved object.
 */
async function sees(c: Cluster, vm: string, reason: string, message: string): Promise<void> {
  const list = await until(`a Warning ${reason} event on vmi/${vm}`, 60_000, async () => {
    const l = await warnings(c, "VirtualMachineInstance", vm);
    return l.some((e) => e.reason === reason && e.message === message) ? l : undefined;
  }).catch(async (e: Error) => {
    throw new Error(`${e.message}\n--- kubectl get events:\n${await c.kubectl("get", "events", "-n", "default")}`);
  });
  const ev = list.find((e) => e.reason === reason && e.message === message);
  assert.equal(ev?.involvedObject.apiVersion, "kubevirt.io/v1");
  assert.equal(ev?.involvedObject.namespace, "default");
  assert.match(ev?.involvedObject.uid ?? "", /^[0-9a-f-]{36}$/);
  const table = await c.kubectl("get", "events", "-n", "default");
  assert.match(table, new RegExp(`Warning\\s+${reason}\\s+virtualmachineinstance/${vm}\\s+${esc(message)}\\n`), table);
}

/** Waits until `kubectl describe vm NAME` shows every pattern; returns the text (the last one seen on time-out). */
async function describeShows(c: Cluster, name: string, res: RegExp[], timeoutMs: number): Promise<string> {
  let last = "";
  try {
    return await until(`describe vm/${name} shows ${res.join(" ")}`, timeoutMs, async () => {
      last = await c.kubectl("describe", "vm", name);
      return res.every((re) => re.test(last)) ? last : undefined;
    });
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- kubectl describe vm ${name}:\n${last}`);
  }
}

describe("a failing VM says why (describe vm, get events)", () => {
  it("prerequisites", () => requirePrereqs(...CLUSTER));

  it("missing image, hostDisk outside the root, a domain libvirt refuses", { timeout: 900_000 }, async (t) => {
    const hostRoot = await mkdtemp(join(tmpdir(), "tsv-failroot-"));
    await chmod(hostRoot, 0o755);
    t.after(() => rm(hostRoot, { recursive: true, force: true }));
    const c = await startCluster(t, { name: "fail", args: ["--host-disk-root", hostRoot] });
    const outside = join(c.dir, "outside.img");
    await writeFile(outside, Buffer.alloc(1 << 20));

    const missing = `${c.registry.host}/tsvirt/no-such-image:e2e`;
    await c.apply(c.vm("noimage", { runStrategy: "Always", image: missing }));
    const hd = c.vm("hostout", { runStrategy: "Always" }) as VmObject;
    hd.spec.template.spec.domain.devices.disks.push({ name: "hd", disk: { bus: "virtio" } });
    hd.spec.template.spec.volumes.push({ name: "hd", hostDisk: { path: outside, type: "Disk" } });
    await c.apply(hd);
    const cpu = c.vm("badcpu", { runStrategy: "Always" }) as VmObject;
    cpu.spec.template.spec.domain.cpu = { model: "NoSuchCpuModel" };
    await c.apply(cpu);

    // --- an image in no registry: ErrImagePull/ImagePullBackOff naming the image, on the VM and as events ------
    const pullMsg = `Failed to pull image "${missing}": ${missing.replace(/:e2e$/, "")}: manifest ${missing}: not found (404)`;
    await describeShows(
      c,
      "noimage",
      [
        /Printable Status:\s+(ErrImagePull|ImagePullBackOff)\n/,
        new RegExp(
          `Message:\\s+(Back-off pulling image: )?${esc(pullMsg)}\\n\\s+Reason:\\s+(ErrImagePull|ImagePullBackOff)\\n`,
        ),
      ],
      180_000,
    );
    await sees(c, "noimage", "SyncFailed", `pulling the VMI's images failed: ${pullMsg}`);

    // --- hostDisk outside the node's root: the node agent refuses, naming the field ---------------------------
    const hdMsg =
      `VirtualMachineInstance "hostout" is invalid: spec.volumes[1].hostDisk.path: hostDisk path "${outside}" ` +
      `is outside the node's hostDisk root ${hostRoot}`;
    await describeShows(c, "hostout", [failure(hdMsg)], 180_000);
    await sees(c, "hostout", "SyncFailed", hdMsg);

    // --- a domain libvirt refuses: the launcher's Sync fails, the VM crash-loops and says why -----------------
    const cpuMsg = "the launcher refused the VMI: internal error: Unknown CPU model NoSuchCpuModel";
    await describeShows(c, "badcpu", [/Printable Status:\s+CrashLoopBackOff\n/, failure(cpuMsg)], 300_000);
    await sees(c, "badcpu", "SyncFailed", cpuMsg);
  });
});
