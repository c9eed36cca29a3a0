import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { launcherShape, podShapes, shapeOf, terminationMessage } from "./pod-shapes.js";
import type { Pod, VirtualMachineInstance } from "./ports.js";
import { refs } from "./ports.js";
import { FakeApi } from "./testing.js";

const VMI_UID = "11111111-2222-4333-8444-555555555555";

function pod(labels: Record<string, string> = { "kubevirt.io": "virt-launcher" }): Pod {
  return {
    metadata: {
      name: "virt-launcher-vm1-abcde",
      namespace: "default",
      uid: "99999999-2222-4333-8444-555555555555",
      labels,
      ownerReferences: [
        { apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance", name: "vm1", uid: VMI_UID, controller: true },
      ],
    },
    spec: { nodeName: "n1", containers: [{ name: "compute", image: "x", command: ["/bin/evil"] }] },
  };
}

function deps(api = new FakeApi()) {
  return {
    node: "n1",
    dataDir: "/var/lib/tsvirt/n1",
    api,
    launcherCommand: (uid: string, podDir: string) => ({ argv: ["launcher", uid, podDir] }),
    probe: async (socket: string) => socket === `/var/lib/tsvirt/n1/sockets/${VMI_UID}_sock`,
  };
}

describe("pod shapes", () => {
  it("runs only the shapes it lists, with the command line it builds; anything else is refused with why", async () => {
    const shapes = podShapes(deps());
    const m = shapeOf(shapes, pod());
    assert.ok(m.shape);
    assert.equal(m.ownerUid, VMI_UID);
    assert.deepEqual(m.shape.command(m.ownerUid, "/p", pod()), { argv: ["launcher", VMI_UID, "/p"] });
    assert.equal(
      await m.shape.ready(m.ownerUid, "/p"),
      true,
      "probes the launcher's socket at the node's well-known path",
    );
    const other = shapeOf(shapes, pod({ app: "nginx" }));
    assert.equal(other.shape, undefined);
    assert.match(
      other.shape === undefined ? other.message : "",
      /runs only pods tsvirt renders \(virt-launcher\): .*kubevirt\.io=virt-launcher is missing/,
    );
  });

  it("termination message: the termination log, else the log's tail when the process failed (FallbackToLogsOnError)", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-shape-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const shape = launcherShape(deps());
    assert.equal(await terminationMessage(shape, dir, 0), undefined);
    await writeFile(join(dir, "launcher.log"), `${"x".repeat(5000)}\nlibvirtd died: Permission denied\n`);
    const tail = await terminationMessage(shape, dir, 1);
    assert.ok(tail?.endsWith("libvirtd died: Permission denied"));
    assert.ok((tail?.length ?? 0) <= 2048);
    assert.equal(await terminationMessage(shape, dir, 0), undefined, "a clean exit says nothing from its log");
    await writeFile(join(dir, "termination-log"), '{"state":"Shutoff","reason":"Shutdown"}\n');
    assert.equal(await terminationMessage(shape, dir, 1), '{"state":"Shutoff","reason":"Shutdown"}');
  });

  it("holds a deleted launcher pod back only while its guest's end is not recorded on the VMI", async () => {
    const api = new FakeApi();
    const shape = launcherShape(deps(api));
    const end = '{"state":"Shutoff","reason":"Shutdown"}';
    assert.equal(await shape.beforeRemove?.(pod(), VMI_UID, undefined), true, "no end to record");
    assert.equal(await shape.beforeRemove?.(pod(), VMI_UID, end), true, "the VMI is gone");
    const vmi: VirtualMachineInstance = {
      metadata: { name: "vm1", namespace: "default", uid: VMI_UID },
      spec: { domain: { devices: {} } },
      status: { phase: "Running", nodeName: "n1" },
    };
    api.put(refs.vmis, vmi);
    assert.equal(await shape.beforeRemove?.(pod(), VMI_UID, end), false, "Succeeded is due and not recorded");
    api.put(refs.vmis, { ...vmi, status: { phase: "Succeeded", nodeName: "n1" } });
    assert.equal(await shape.beforeRemove?.(pod(), VMI_UID, end), true);
  });
});
