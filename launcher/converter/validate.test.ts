// Every KubeVirt example (and every golden file) → XML that virt-xml-validate accepts and a real libvirtd defines.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { kvmUsable } from "../../tests/guest/index.js";
import { type PrivateLibvirtd, startLibvirtd } from "../../tests/guest/libvirt.js";
import { LIBVIRT, requirePrereqs } from "../../tests/lib/prereqs.js";
import { vmiToDomainXml } from "./convert.js";
import { exampleVmis, preparedContext, testdataDir } from "./fixtures.js";

const run = promisify(execFile);

requirePrereqs("virt-xml-validate", ...LIBVIRT);

function inputs(): { name: string; xml: string }[] {
  const work = "/var/run/tsvirt/pods/validate";
  const out = exampleVmis().map(({ file, vmi }) => ({
    name: `example ${file}`,
    xml: vmiToDomainXml(vmi, preparedContext(vmi, work)),
  }));
  const goldenDir = join(testdataDir(), "golden");
  for (const f of readdirSync(goldenDir)
    .filter((n) => n.endsWith(".xml"))
    .sort()) {
    out.push({ name: `golden ${f}`, xml: readFileSync(join(goldenDir, f), "utf8") });
  }
  return out;
}

describe("converted domains are valid libvirt XML", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvirt-validate-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  for (const { name, xml } of inputs()) {
    it(`${name}: virt-xml-validate accepts it`, async () => {
      const file = join(dir, `${name.replace(/[^a-z0-9.-]+/gi, "_")}.xml`);
      writeFileSync(file, xml);
      const { stdout, stderr } = await run("virt-xml-validate", [file, "domain"]);
      assert.match(stdout + stderr, /validates/);
    });
  }
});

describe("a private libvirtd defines every converted domain", { timeout: 300_000 }, () => {
  let lv: PrivateLibvirtd | undefined;
  const dir = mkdtempSync(join(tmpdir(), "tsvirt-lv-"));
  before(async () => {
    lv = await startLibvirtd(join(dir, "libvirt"));
  });
  after(async () => {
    await lv?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const { name, xml } of inputs()) {
    it(`${name}: virsh define + dumpxml`, async () => {
      assert.ok(lv);
      const file = join(dir, `${name.replace(/[^a-z0-9.-]+/gi, "_")}.xml`);
      // Without /dev/kvm libvirt refuses to define a KVM domain at all; the rest of it is still checked (as TCG).
      writeFileSync(file, kvmUsable() ? xml : xml.replace(/^<domain type="kvm"/, '<domain type="qemu"'));
      const domName = /<name>([^<]+)<\/name>/.exec(xml)?.[1] ?? "";
      await lv.virsh("define", file);
      try {
        const dumped = await lv.virsh("dumpxml", "--inactive", domName);
        assert.match(dumped, new RegExp(`<name>${domName}</name>`));
        assert.match(dumped, /<kubevirt xmlns="http:\/\/kubevirt.io">/);
        // Every disk the converter emitted survives the daemon's parsing.
        assert.equal((dumped.match(/<disk /g) ?? []).length, (xml.match(/<disk /g) ?? []).length);
      } finally {
        await lv.virsh("undefine", "--nvram", domName).catch(() => lv?.virsh("undefine", domName));
      }
    });
  }
});
