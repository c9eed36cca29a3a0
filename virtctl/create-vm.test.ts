import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "yaml";
import type { VirtualMachine } from "../client/index.js";
import { runVirtctl } from "./testing.js";

describe("virtctl create vm", () => {
  it("prints a VirtualMachine with KubeVirt's defaults and the given volumes", async () => {
    const ud = Buffer.from("#cloud-config\nruncmd: [echo hi]\n").toString("base64");
    const r = await runVirtctl([
      "create",
      "vm",
      "--name",
      "my-vm",
      "--memory",
      "256Mi",
      "--volume-containerdisk",
      "src:127.0.0.1:5000/guest:latest,bootorder:1",
      "--volume-pvc",
      "src:data,name:datadisk",
      "--cloud-init-user-data",
      ud,
    ]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.client.actions.length, 0, "no API call");
    const vm = parse(r.out) as VirtualMachine;
    assert.equal(vm.apiVersion, "kubevirt.io/v1");
    assert.equal(vm.kind, "VirtualMachine");
    assert.equal(vm.metadata.name, "my-vm");
    assert.equal(vm.spec.runStrategy, "Always");
    const spec = vm.spec.template.spec!;
    assert.equal(spec.terminationGracePeriodSeconds, 180);
    assert.deepEqual(spec.domain.memory, { guest: "256Mi" });
    assert.deepEqual(spec.volumes, [
      { name: "my-vm-containerdisk-0", containerDisk: { image: "127.0.0.1:5000/guest:latest" } },
      { name: "datadisk", persistentVolumeClaim: { claimName: "data" } },
      { name: "cloudinitdisk", cloudInitNoCloud: { userDataBase64: ud } },
    ]);
    assert.deepEqual(spec.domain.devices, { disks: [{ name: "my-vm-containerdisk-0", bootOrder: 1 }] });
  });

  it("generates cloud-config for --user and --ssh-key; a random name without --name", async () => {
    const r = await runVirtctl(["create", "vm", "--user", "cirros", "--ssh-key", "ssh-ed25519 AAAA test"]);
    const vm = parse(r.out) as VirtualMachine;
    assert.match(vm.metadata.name!, /^vm-[0-9a-f]{5}$/);
    const vol = vm.spec.template.spec!.volumes?.[0] as { cloudInitNoCloud?: { userData?: string } } | undefined;
    assert.equal(
      vol?.cloudInitNoCloud?.userData,
      "#cloud-config\nuser: cirros\nssh_authorized_keys:\n  - ssh-ed25519 AAAA test\n",
    );
    assert.deepEqual(vm.spec.template.spec!.domain.memory, { guest: "512Mi" });
  });

  it("rejects bad flags with KubeVirt-style messages", async () => {
    const cases: [string[], RegExp][] = [
      [["--run-strategy", "Sometimes"], /invalid run strategy "Sometimes"/],
      [["--volume-containerdisk", "image:x"], /unknown param\(s\): image:x/],
      [["--volume-containerdisk", "src:a,bootorder:0"], /bootorder must be greater than 0/],
      [["--volume-containerdisk", "src:a,name:d", "--volume-pvc", "src:p,name:d"], /already a volume with name "d"/],
      [["--name", "Bad_Name"], /invalid name/],
    ];
    for (const [args, re] of cases) {
      const r = await runVirtctl(["create", "vm", ...args]);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.err, /^Error: /);
      assert.match(r.err, re);
    }
  });
});
