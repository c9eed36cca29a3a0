import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clock, cpu, features, lifecycle, memory, metadata, osAndFirmware, vmiUidOemString } from "./compute.js";
import { apply, newContext, newVmi } from "./testutil.js";

describe("metadata", () => {
  const cases = [
    {
      name: "namespace_name and the uid as uuid",
      ns: "ns",
      fw: undefined,
      want: { name: "ns_testvmi", uuid: "11111111-2222-4333-8444-555555555555" },
    },
    {
      name: "no namespace → default",
      ns: "",
      fw: undefined,
      want: { name: "default_testvmi", uuid: "11111111-2222-4333-8444-555555555555" },
    },
    {
      name: "firmware.uuid wins",
      ns: "a",
      fw: "E4686D2C-6E8D-4335-B8FD-81BEE22F4814",
      want: { name: "a_testvmi", uuid: "e4686d2c-6e8d-4335-b8fd-81bee22f4814" },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const vmi = newVmi(c.fw ? { domain: { firmware: { uuid: c.fw } } } : {});
      vmi.metadata = { ...vmi.metadata, namespace: c.ns };
      const { dom } = apply(metadata, vmi);
      assert.equal(dom.name, c.want.name);
      assert.equal(dom.uuid, c.want.uuid);
      assert.equal(dom.metadata.kubevirt.uid, "11111111-2222-4333-8444-555555555555");
    });
  }
  it("domain type follows KVM availability", () => {
    assert.equal(apply(metadata, newVmi(), newContext({ kvm: true })).dom.type, "kvm");
    assert.equal(apply(metadata, newVmi(), newContext({ kvm: false })).dom.type, "qemu");
  });
});

describe("memory", () => {
  const cases: { name: string; domain: object; bytes?: number; field?: string }[] = [
    { name: "memory.guest", domain: { memory: { guest: "128Mi" } }, bytes: 128 * 2 ** 20 },
    { name: "decimal suffix", domain: { memory: { guest: "1024M" } }, bytes: 1024e6 },
    {
      name: "guest beats requests",
      domain: { memory: { guest: "64Mi" }, resources: { requests: { memory: "1Gi" } } },
      bytes: 64 * 2 ** 20,
    },
    { name: "requests", domain: { resources: { requests: { memory: "1Gi" } } }, bytes: 2 ** 30 },
    { name: "limits when no request", domain: { resources: { limits: { memory: "2Gi" } } }, bytes: 2 * 2 ** 30 },
    { name: "missing", domain: {}, field: "spec.domain.memory.guest" },
    { name: "malformed", domain: { memory: { guest: "lots" } }, field: "spec.domain.memory.guest" },
    {
      name: "maxGuest unsupported",
      domain: { memory: { guest: "1Gi", maxGuest: "2Gi" } },
      bytes: 2 ** 30,
      field: "spec.domain.memory.maxGuest",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { dom, fields } = apply(memory, newVmi({ domain: c.domain }));
      if (c.bytes !== undefined) assert.equal(dom.memory, c.bytes);
      assert.deepEqual(fields, c.field ? [c.field] : []);
    });
  }
  it("hugepages → memoryBacking", () => {
    const { dom } = apply(memory, newVmi({ domain: { memory: { guest: "1Gi", hugepages: { pageSize: "2Mi" } } } }));
    assert.deepEqual(dom.memoryBacking, { hugepages: { pageSizeKiB: 2048 } });
  });
});

describe("cpu", () => {
  const cases: {
    name: string;
    domain: object;
    kvm: boolean;
    topo: [number, number, number];
    vcpu: number;
    mode: string;
    model?: string;
    field?: string;
  }[] = [
    {
      name: "defaults: 1 socket, host-model on KVM",
      domain: {},
      kvm: true,
      topo: [1, 1, 1],
      vcpu: 1,
      mode: "host-model",
    },
    {
      name: "TCG: qemu64 instead of host-model",
      domain: {},
      kvm: false,
      topo: [1, 1, 1],
      vcpu: 1,
      mode: "custom",
      model: "qemu64",
    },
    {
      name: "TCG: no host-passthrough",
      domain: { cpu: { model: "host-passthrough" } },
      kvm: false,
      topo: [1, 1, 1],
      vcpu: 1,
      mode: "custom",
      model: "qemu64",
    },
    {
      name: "KVM: host-passthrough",
      domain: { cpu: { model: "host-passthrough" } },
      kvm: true,
      topo: [1, 1, 1],
      vcpu: 1,
      mode: "host-passthrough",
    },
    {
      name: "named model",
      domain: { cpu: { model: "Skylake-Server" } },
      kvm: true,
      topo: [1, 1, 1],
      vcpu: 1,
      mode: "custom",
      model: "Skylake-Server",
    },
    {
      name: "sockets from the CPU limit",
      domain: { resources: { limits: { cpu: "3" }, requests: { cpu: "1" } } },
      kvm: true,
      topo: [3, 1, 1],
      vcpu: 3,
      mode: "host-model",
    },
    {
      name: "sockets from the CPU request (rounded up)",
      domain: { resources: { requests: { cpu: "1500m" } } },
      kvm: true,
      topo: [2, 1, 1],
      vcpu: 2,
      mode: "host-model",
    },
    {
      name: "explicit topology",
      domain: { cpu: { cores: 2, threads: 2 } },
      kvm: true,
      topo: [1, 2, 2],
      vcpu: 4,
      mode: "host-model",
    },
    {
      name: "cpu hotplug unsupported",
      domain: { cpu: { maxSockets: 4 } },
      kvm: true,
      topo: [1, 1, 1],
      vcpu: 1,
      mode: "host-model",
      field: "spec.domain.cpu.maxSockets",
    },
    {
      name: "dedicated placement unsupported",
      domain: { cpu: { dedicatedCpuPlacement: true } },
      kvm: true,
      topo: [1, 1, 1],
      vcpu: 1,
      mode: "host-model",
      field: "spec.domain.cpu.dedicatedCpuPlacement",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { dom, fields } = apply(cpu, newVmi({ domain: c.domain }), newContext({ kvm: c.kvm }));
      assert.deepEqual([dom.cpu.topology.sockets, dom.cpu.topology.cores, dom.cpu.topology.threads], c.topo);
      assert.equal(dom.vcpu, c.vcpu);
      assert.equal(dom.cpu.mode, c.mode);
      assert.equal(dom.cpu.model, c.model);
      assert.deepEqual(fields, c.field ? [c.field] : []);
    });
  }
});

describe("osAndFirmware", () => {
  it("q35 and SMBIOS sysinfo by default", () => {
    const { dom, fields } = apply(osAndFirmware, newVmi());
    assert.equal(dom.os.machine, "q35");
    assert.equal(dom.os.smbiosSysinfo, true);
    assert.deepEqual(fields, []);
  });
  it("names the VMI uid in an SMBIOS OEM string; the firmware UUID stays the domain UUID", () => {
    const vmi = newVmi({ domain: { firmware: { uuid: "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9" } } });
    const ctx = newContext();
    const { dom } = apply(osAndFirmware, vmi, ctx, (d) => metadata({ vmi, ctx, problems: [] }, d));
    assert.equal(dom.uuid, "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
    assert.deepEqual(dom.sysinfo?.oemStrings, ["kubevirt.io/vmi-uid=11111111-2222-4333-8444-555555555555"]);
    assert.equal(dom.sysinfo?.system.find((e) => e.name === "uuid")?.value, "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
  });
  it("no OEM string without a uid", () => {
    assert.equal(vmiUidOemString(undefined), undefined);
    assert.equal(vmiUidOemString(""), undefined);
    const vmi = newVmi();
    vmi.metadata = { ...vmi.metadata, uid: undefined };
    assert.equal(apply(osAndFirmware, vmi).dom.sysinfo?.oemStrings, undefined);
  });
  it("EFI auto-selection with secure boot (default) turns on SMM", () => {
    const { dom } = apply(osAndFirmware, newVmi({ domain: { firmware: { bootloader: { efi: {} } } } }));
    assert.equal(dom.os.firmware, "efi");
    assert.deepEqual(
      dom.os.firmwareFeatures?.find((f) => f.name === "secure-boot"),
      { name: "secure-boot", enabled: true },
    );
    assert.equal(dom.features.smm, true);
  });
  it("EFI with explicit firmware files", () => {
    const ctx = newContext({ efi: { code: "/ovmf/CODE.fd", vars: "/ovmf/VARS.fd", nvram: "/pod/nvram.fd" } });
    const { dom } = apply(
      osAndFirmware,
      newVmi({ domain: { firmware: { bootloader: { efi: { secureBoot: false } } } } }),
      ctx,
    );
    assert.deepEqual(dom.os.loader, { path: "/ovmf/CODE.fd", readonly: true, secure: false, type: "pflash" });
    assert.deepEqual(dom.os.nvram, { path: "/pod/nvram.fd", template: "/ovmf/VARS.fd" });
  });
  it("kernelBoot uses the extracted kernel/initrd and kernelArgs", () => {
    const vmi = newVmi({
      domain: {
        firmware: {
          kernelBoot: {
            kernelArgs: "console=ttyS0",
            container: { image: "k:1", kernelPath: "/boot/vmlinux", initrdPath: "/boot/initrd" },
          },
        },
      },
    });
    const { dom, fields } = apply(
      osAndFirmware,
      vmi,
      newContext({ kernelBoot: { kernel: "/pod/k/vmlinux", initrd: "/pod/k/initrd" } }),
    );
    assert.deepEqual(fields, []);
    assert.deepEqual(
      [dom.os.kernel, dom.os.initrd, dom.os.cmdline],
      ["/pod/k/vmlinux", "/pod/k/initrd", "console=ttyS0"],
    );
  });
  it("kernelBoot without extracted files is an error naming the field", () => {
    const vmi = newVmi({ domain: { firmware: { kernelBoot: { container: { image: "k:1" } } } } });
    assert.deepEqual(apply(osAndFirmware, vmi).fields, ["spec.domain.firmware.kernelBoot.container"]);
  });
  it("other machine types are refused", () => {
    assert.deepEqual(apply(osAndFirmware, newVmi({ domain: { machine: { type: "pc-i440fx-9.0" } } })).fields, [
      "spec.domain.machine.type",
    ]);
  });
  it("bios useSerial", () => {
    const { dom } = apply(
      osAndFirmware,
      newVmi({ domain: { firmware: { bootloader: { bios: { useSerial: true } } } } }),
    );
    assert.deepEqual(dom.os.bios, { useserial: true });
  });
});

describe("features", () => {
  const cases: { name: string; f: object; check: (d: ReturnType<typeof apply>["dom"]) => void }[] = [
    {
      name: "acpi + apic + vmport off by default",
      f: {},
      check: (d) => assert.deepEqual([d.features.acpi, d.features.apic, d.features.vmport], [true, {}, "off"]),
    },
    { name: "acpi disabled", f: { acpi: { enabled: false } }, check: (d) => assert.equal(d.features.acpi, false) },
    { name: "smm", f: { smm: {} }, check: (d) => assert.equal(d.features.smm, true) },
    { name: "kvm hidden", f: { kvm: { hidden: true } }, check: (d) => assert.equal(d.features.kvmHidden, true) },
    {
      name: "hyperv spinlocks default retries",
      f: { hyperv: { spinlocks: {} } },
      check: (d) => assert.deepEqual(d.features.hyperv?.items, [{ name: "spinlocks", state: "on", retries: 4096 }]),
    },
  ];
  for (const c of cases) it(c.name, () => c.check(apply(features, newVmi({ domain: { features: c.f } })).dom));
});

describe("clock", () => {
  const cases: {
    name: string;
    clock: object | undefined;
    kvm?: boolean;
    offset: string;
    timers: string[];
    field?: string;
  }[] = [
    { name: "utc by default", clock: undefined, offset: "utc", timers: [] },
    { name: "utc offset", clock: { utc: { offsetSeconds: 60 } }, offset: "variable", timers: [] },
    { name: "timezone", clock: { timezone: "Europe/Paris" }, offset: "timezone", timers: [] },
    {
      name: "timers",
      clock: { timer: { rtc: { tickPolicy: "catchup" }, pit: { present: false }, hpet: { present: false } } },
      offset: "utc",
      timers: ["rtc", "pit", "hpet"],
    },
    {
      name: "kvmclock needs KVM",
      clock: { timer: { kvm: {} } },
      offset: "utc",
      timers: [],
      field: "spec.domain.clock.timer.kvm",
    },
    { name: "kvmclock with KVM", clock: { timer: { kvm: {} } }, kvm: true, offset: "utc", timers: ["kvmclock"] },
    {
      name: "bad tick policy",
      clock: { timer: { pit: { tickPolicy: "warp" } } },
      offset: "utc",
      timers: ["pit"],
      field: "spec.domain.clock.timer.pit.tickPolicy",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const vmi = newVmi(c.clock ? { domain: { clock: c.clock } } : {});
      const { dom, fields } = apply(clock, vmi, newContext({ kvm: c.kvm ?? false }));
      assert.equal(dom.clock.offset, c.offset);
      assert.deepEqual(
        dom.clock.timers.map((t) => t.name),
        c.timers,
      );
      assert.deepEqual(fields, c.field ? [c.field] : []);
    });
  }
});

describe("lifecycle", () => {
  for (const [policy, reboot] of [
    [undefined, "restart"],
    ["Reboot", "restart"],
    ["Terminate", "destroy"],
  ] as const) {
    it(`rebootPolicy ${policy ?? "unset"} → on_reboot ${reboot}; a crash destroys`, () => {
      const { dom } = apply(lifecycle, newVmi(policy ? { domain: { rebootPolicy: policy } } : {}));
      assert.equal(dom.onReboot, reboot);
      assert.equal(dom.onCrash, "destroy");
    });
  }
});
