import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { minimalDomainXml, quantityBytes } from "./minimal-domain.js";

const vmi = {
  metadata: { name: "vm1", namespace: "ns1", uid: "abc" },
  spec: {
    domain: {
      cpu: { cores: 2 },
      resources: { requests: { memory: "128Mi" } },
      firmware: { kernelBoot: { kernelArgs: "console=ttyS0 a<b" } },
    },
  },
};

describe("minimalDomainXml", () => {
  it("parses Kubernetes quantities", () => {
    assert.equal(quantityBytes("128Mi"), 134217728);
    assert.equal(quantityBytes("1G"), 1e9);
    assert.equal(quantityBytes("1.5Gi"), 1610612736);
    assert.equal(quantityBytes("12x"), undefined);
  });

  it("names the domain {namespace}_{name}, sizes memory and vCPUs, escapes text", () => {
    const xml = minimalDomainXml(vmi, {
      kvm: false,
      serialSocket: "/p/qemu/serial0",
      disks: [{ name: "root", path: "/p/qemu/root.qcow2", format: "qcow2" }],
      kernel: { kernel: "/k/vmlinux", initrd: "/k/initrd" },
    });
    assert.match(xml, /<domain type="qemu">/);
    assert.match(xml, /<name>ns1_vm1<\/name>/);
    assert.match(xml, /<memory unit="b">134217728<\/memory>/);
    assert.match(xml, /<vcpu placement="static">2<\/vcpu>/);
    assert.match(xml, /<cmdline>console=ttyS0 a&lt;b<\/cmdline>/);
    assert.match(xml, /<source mode="bind" path="\/p\/qemu\/serial0"\/>/);
    assert.match(xml, /<target dev="vda" bus="virtio"\/>/);
    assert.match(xml, /<on_crash>destroy<\/on_crash>/);
    assert.match(xml, /<panic model="isa"\/>/);
  });

  it("produces XML that libvirt's schema accepts", async (t) => {
    if (!existsSync("/usr/bin/virt-xml-validate")) return t.skip("virt-xml-validate is not installed");
    const dir = await mkdtemp(path.join(tmpdir(), "tsvirt-md-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, "d.xml");
    await writeFile(
      file,
      minimalDomainXml(vmi, {
        kvm: true,
        serialSocket: "/p/s",
        disks: [
          { name: "a", path: "/p/a.qcow2", format: "qcow2" },
          { name: "b", path: "/dev/sdz", format: "raw", block: true, readonly: true },
        ],
        taps: { default: "tap0" },
      }),
    );
    const out = await new Promise<string>((resolve, reject) =>
      execFile("virt-xml-validate", [file, "domain"], (err, stdout, stderr) =>
        err ? reject(new Error(stderr || stdout)) : resolve(stdout + stderr),
      ),
    );
    assert.match(out, /validates/);
  });
});
