import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { requirePrereqs } from "../tests/lib/prereqs.js";
import { makeBuilder } from "./prepare.js";

describe("domain builder (launcher side of the converter)", () => {
  it("puts a qcow2 overlay over the node's base image, creates emptyDisks, and names a missing base image", async (t) => {
    requirePrereqs("qemu-img");
    const dir = await mkdtemp(path.join(tmpdir(), "tsvirt-prep-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const base = path.join(dir, "base.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "16M"]);
    const build = makeBuilder({
      qemuDir: path.join(dir, "qemu"),
      kvm: false,
      serialSocket: path.join(dir, "qemu", "serial0"),
      owner: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
    });
    const vmi = {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstance",
      metadata: { name: "vm1", namespace: "ns1", uid: "u1" },
      spec: {
        domain: {
          resources: { requests: { memory: "128Mi" } },
          devices: {
            disks: [
              { name: "root", disk: { bus: "virtio" } },
              { name: "scratch", disk: { bus: "virtio" } },
            ],
          },
        },
        volumes: [
          { name: "root", containerDisk: { image: "example/root:1" } },
          { name: "scratch", emptyDisk: { capacity: "8Mi" } },
        ],
      },
    };
    const xml = await build(vmi, { baseImages: { root: base } });
    const overlay = path.join(dir, "qemu", "root", "overlay.qcow2");
    assert.ok(xml.includes(overlay), xml);
    assert.ok(xml.includes(base), "the base image is the overlay's backing store");
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", "-U", overlay], { encoding: "utf8" }));
    assert.equal(info["backing-filename"], base);
    assert.ok(existsSync(path.join(dir, "qemu", "scratch", "disk.qcow2")));
    assert.match(xml, /<name>ns1_vm1<\/name>/);

    await assert.rejects(build(vmi, {}), (e: Error) =>
      /spec\.volumes\[0\]\.containerDisk|base image/.test(JSON.stringify(e)),
    );
  });
});
