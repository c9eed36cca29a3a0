// Whole-domain golden tests: every KubeVirt example manifest and a VMI with most features, TCG and KVM.
// UPDATE_GOLDEN=1 rewrites testdata/golden/*.xml.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import type { VirtualMachineInstance } from "../../api/index.js";
import { isStatusError } from "../../lib/errors.js";
import { convertWithProblems, vmiToDomainXml } from "./convert.js";
import { exampleVmis, preparedContext, testdataDir } from "./fixtures.js";

const update = process.env.UPDATE_GOLDEN === "1";
const POD = "/var/run/tsvirt/pods/6a1c5f32";

function golden(name: string, xml: string): void {
  const dir = join(testdataDir(), "golden");
  const file = join(dir, `${name}.xml`);
  if (update || !existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, xml);
    if (!update) assert.fail(`golden file ${file} was missing and has been written; re-run`);
    return;
  }
  assert.equal(xml, readFileSync(file, "utf8"), `${name} differs from its golden file (UPDATE_GOLDEN=1 rewrites it)`);
}

export function fullVmi(): VirtualMachineInstance {
  return parse(readFileSync(join(testdataDir(), "full.vmi.yaml"), "utf8")) as VirtualMachineInstance;
}

export function fullContext(kvm: boolean) {
  return preparedContext(fullVmi(), POD, { kvm, block: new Set(["dv-block", "lun"]) });
}

describe("converter golden domains", () => {
  for (const { file, vmi } of exampleVmis()) {
    it(`${file} converts (TCG)`, () => {
      const { problems } = convertWithProblems(vmi, preparedContext(vmi, POD));
      assert.deepEqual(problems, []);
      golden(file, vmiToDomainXml(vmi, preparedContext(vmi, POD)));
    });
  }
  it("boot-all VMI (TCG)", () => {
    const vmi = parse(readFileSync(join(testdataDir(), "boot-all.vmi.yaml"), "utf8")) as VirtualMachineInstance;
    golden("boot-all", vmiToDomainXml(vmi, preparedContext(vmi, POD)));
  });
  it("full VMI (TCG)", () => golden("full-tcg", vmiToDomainXml(fullVmi(), fullContext(false))));
  it("full VMI (KVM)", () => golden("full-kvm", vmiToDomainXml(fullVmi(), fullContext(true))));
  it("is deterministic", () => {
    const a = vmiToDomainXml(fullVmi(), fullContext(false));
    const b = vmiToDomainXml(fullVmi(), fullContext(false));
    assert.equal(a, b);
  });
  it("names every unsupported field in one 422 error", () => {
    const vmi = fullVmi();
    vmi.spec.domain.devices.tpm = {};
    vmi.spec.domain.devices.gpus = [{ name: "gpu1", deviceName: "nvidia.com/GP100GL" }];
    vmi.spec.domain.devices.interfaces = [{ name: "default", sriov: {} }];
    vmi.spec.networks = [{ name: "default", pod: {} }];
    try {
      vmiToDomainXml(vmi, fullContext(false));
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(isStatusError(e));
      assert.equal(e.status.code, 422);
      const fields = (e.status.details?.causes ?? []).map((c) => c.field);
      assert.ok(fields.includes("spec.domain.devices.tpm"), JSON.stringify(fields));
      assert.ok(fields.includes("spec.domain.devices.gpus"));
      assert.ok(fields.includes("spec.domain.devices.interfaces[0].sriov"));
      assert.match(e.message, /spec\.domain\.devices\.tpm: not supported by tsvirt/);
    }
  });
});
