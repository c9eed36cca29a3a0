// A golden domain boots: KubeVirt's vmi-ephemeral example, converted for a pod dir, is exactly the golden XML
// (modulo the pod dir); with the test guest's bootable qcow2 as its containerDisk base image, a private libvirtd
// starts it, the ready marker arrives on the serial unix socket, `echo` round-trips, and an ACPI shutdown powers it off.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { parse } from "yaml";
import type { VirtualMachineInstance } from "../../api/index.js";
import { exampleVmis, preparedContext, testdataDir } from "../../launcher/converter/fixtures.js";
import { executePreparation, planPreparation, vmiToDomainXml } from "../../launcher/converter/index.js";
import { ensureGuest, kvmUsable } from "../guest/index.js";
import { startLibvirtd } from "../guest/libvirt.js";
import { GUEST, LIBVIRT, requirePrereqs } from "../lib/prereqs.js";

requirePrereqs(...LIBVIRT, ...GUEST, "xorriso");

const run = promisify(execFile);
const GOLDEN_POD = "/var/run/tsvirt/pods/6a1c5f32";
const TIMEOUT = 300_000; // generous: TCG boots slowly on a loaded 2-core machine

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = TIMEOUT): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function serialReader(sock: Socket): { text: () => string; wait: (re: RegExp) => Promise<RegExpMatchArray> } {
  let text = "";
  let wake: (() => void) | undefined;
  sock.setEncoding("utf8");
  sock.on("data", (d: string) => {
    text += d;
    wake?.();
  });
  return {
    text: () => text,
    wait: async (re) => {
      const deadline = Date.now() + TIMEOUT;
      for (;;) {
        const m = text.match(re);
        if (m) return m;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; serial:\n${text.slice(-2000)}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 1000);
        });
      }
    },
  };
}

test("golden domain vmi-ephemeral boots the test guest under a private libvirtd", {
  timeout: 600_000,
}, async (t) => {
  // Cleanups run last-registered first (the VM and daemon stop before their directory goes).
  const cleanup: (() => unknown)[] = [];
  t.after(async () => {
    for (const f of cleanup.reverse()) await f();
  });
  const guest = await ensureGuest();
  const ex = exampleVmis().find((e) => e.file === "vmi-ephemeral");
  assert.ok(ex);
  const root = mkdtempSync(join(tmpdir(), "tsvirt-e2e-"));
  cleanup.push(() => rmSync(root, { recursive: true, force: true }));
  const ctx = preparedContext(ex.vmi, root, { kvm: kvmUsable() });
  const xml = vmiToDomainXml(ex.vmi, ctx);
  if (!ctx.kvm) {
    const goldenXml = readFileSync(join(testdataDir(), "golden", "vmi-ephemeral.xml"), "utf8");
    assert.equal(xml, goldenXml.split(GOLDEN_POD).join(root), "the converted domain is the golden one");
  }
  // What the node would prepare: the containerDisk base image, a qcow2 overlay over it, the sockets dir.
  const cd = ctx.volumes.containerdisk;
  assert.ok(cd && cd.type === "overlay" && cd.backing.type === "file");
  mkdirSync(join(root, "images", "containerdisk"), { recursive: true });
  mkdirSync(dirname(cd.path), { recursive: true });
  mkdirSync(dirname(ctx.serialSocket), { recursive: true });
  copyFileSync(guest.qcow2, cd.backing.path);
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", cd.backing.path, "-F", "qcow2", cd.path]);
  const file = join(root, "domain.xml");
  writeFileSync(file, xml);

  const lv = await startLibvirtd(join(root, "libvirt"));
  cleanup.push(() => lv.stop());
  await lv.virsh("define", file);
  await lv.virsh("start", "default_vmi-ephemeral");
  const sock = await until("serial socket", async () => {
    return await new Promise<Socket | undefined>((resolve) => {
      const s = connect(ctx.serialSocket);
      s.once("connect", () => resolve(s));
      s.once("error", () => resolve(undefined));
    });
  });
  cleanup.push(() => sock.destroy());
  const serial = serialReader(sock);
  const ready = await serial.wait(new RegExp(`${guest.marker} kernel=\\S+ disks=(\\S+)\\r?\\n`));
  assert.ok((ready[1] ?? "").split(",").includes("vda"), `the containerDisk is vda: ${ready[1]}`);
  sock.write('echo conv""erter-ok\n');
  await serial.wait(/\nconverter-ok\r?\n/);
  assert.match(await lv.virsh("domstate", "default_vmi-ephemeral"), /running/);
  await lv.virsh("shutdown", "default_vmi-ephemeral");
  await until("shut off after ACPI shutdown", async () =>
    /shut off/.test(await lv.virsh("domstate", "--reason", "default_vmi-ephemeral")) ? true : undefined,
  );
  assert.match(await lv.virsh("domstate", "--reason", "default_vmi-ephemeral"), /shut off \(shutdown\)/);
});

test("golden domain boot-all: a disk on every bus, a NoCloud cdrom and a tap NIC, seen by the guest", {
  timeout: 600_000,
}, async (t) => {
  // Cleanups run last-registered first (the VM and daemon stop before their directory goes).
  const cleanup: (() => unknown)[] = [];
  t.after(async () => {
    for (const f of cleanup.reverse()) await f();
  });
  const guest = await ensureGuest();
  const vmi = parse(readFileSync(join(testdataDir(), "boot-all.vmi.yaml"), "utf8")) as VirtualMachineInstance;
  const root = mkdtempSync(join(tmpdir(), "tsvirt-e2e-"));
  cleanup.push(() => rmSync(root, { recursive: true, force: true }));
  const ctx = preparedContext(vmi, root, { kvm: kvmUsable() });
  const xml = vmiToDomainXml(vmi, ctx);
  if (!ctx.kvm) {
    const goldenXml = readFileSync(join(testdataDir(), "golden", "boot-all.xml"), "utf8");
    assert.equal(xml, goldenXml.split(GOLDEN_POD).join(root), "the converted domain is the golden one");
  }
  // The node's part by hand (the containerDisk base image, the PVC's file); the launcher's part with the planner.
  const cd = ctx.volumes.containerdisk;
  const data = ctx.volumes.data;
  assert.ok(cd?.type === "overlay" && cd.backing.type === "file" && data?.type === "file");
  mkdirSync(dirname(cd.backing.path), { recursive: true });
  mkdirSync(dirname(data.path), { recursive: true });
  copyFileSync(guest.qcow2, cd.backing.path);
  await run("qemu-img", ["create", "-q", "-f", "raw", data.path, "32M"]);
  const steps = planPreparation(vmi, ctx);
  assert.deepEqual(
    steps.filter((s) => s.kind !== "mkdir").map((s) => s.kind),
    ["overlay", "emptyDisk", "iso"],
  );
  await executePreparation(steps);
  const file = join(root, "domain.xml");
  writeFileSync(file, xml);

  const lv = await startLibvirtd(join(root, "libvirt"), { netns: true });
  cleanup.push(() => lv.stop());
  // The tap the node would create, inside the daemon's own network namespace (nothing reaches the host's network).
  await lv.nsenter("ip", "tuntap", "add", "dev", "tap0", "mode", "tap");
  await lv.nsenter("ip", "link", "set", "tap0", "up");
  await lv.virsh("define", file);
  await lv.virsh("start", "e2e_boot-all");
  const sock = await until("serial socket", async () => {
    return await new Promise<Socket | undefined>((resolve) => {
      const s = connect(ctx.serialSocket);
      s.once("connect", () => resolve(s));
      s.once("error", () => resolve(undefined));
    });
  });
  cleanup.push(() => sock.destroy());
  const serial = serialReader(sock);
  const ready = await serial.wait(new RegExp(`${guest.marker} kernel=\\S+ disks=(\\S+)\\r?\\n`));
  const seen = (ready[1] ?? "").split(",");
  assert.ok(seen.includes("vda"), `virtio disk: ${ready[1]}`);
  assert.ok(seen.includes("sr0"), `cdrom: ${ready[1]}`);
  assert.equal(seen.filter((d) => /^sd[a-z]+$/.test(d)).length, 2, `sata + scsi disks: ${ready[1]}`);
  sock.write(
    'cat /sys/class/net/eth0/address; mount -t iso9660 -o ro /dev/sr0 /mnt && cat /mnt/meta-data; echo do""ne\n',
  );
  await serial.wait(/\ndone\r?\n/);
  assert.match(serial.text(), /02:00:00:00:00:42/);
  assert.match(serial.text(), /instance-id: boot-all\.e2e/);
  await lv.virsh("shutdown", "e2e_boot-all");
  await until("shut off after ACPI shutdown", async () =>
    /shut off/.test(await lv.virsh("domstate", "e2e_boot-all")) ? true : undefined,
  );
});

test("golden domain kernelboot: kernelBoot with the guest's vmlinux; a guest panic (pvpanic) ends it as crashed", {
  timeout: 600_000,
}, async (t) => {
  const cleanup: (() => unknown)[] = [];
  t.after(async () => {
    for (const f of cleanup.reverse()) await f();
  });
  const guest = await ensureGuest();
  const vmi = parse(readFileSync(join(testdataDir(), "kernelboot.vmi.yaml"), "utf8")) as VirtualMachineInstance;
  const root = mkdtempSync(join(tmpdir(), "tsvirt-e2e-"));
  cleanup.push(() => rmSync(root, { recursive: true, force: true }));
  const ctx = preparedContext(vmi, root, { kvm: kvmUsable() });
  const xml = vmiToDomainXml(vmi, ctx);
  if (!ctx.kvm) {
    const goldenXml = readFileSync(join(testdataDir(), "golden", "kernelboot.xml"), "utf8");
    assert.equal(xml, goldenXml.split(GOLDEN_POD).join(root), "the converted domain is the golden one");
  }
  // The node extracted the kernelBoot container's kernel and initrd.
  assert.ok(ctx.kernelBoot?.initrd);
  mkdirSync(dirname(ctx.kernelBoot.kernel), { recursive: true });
  copyFileSync(guest.vmlinux, ctx.kernelBoot.kernel);
  copyFileSync(guest.initrd, ctx.kernelBoot.initrd);
  await executePreparation(planPreparation(vmi, ctx));
  const file = join(root, "domain.xml");
  writeFileSync(file, xml);

  const lv = await startLibvirtd(join(root, "libvirt"));
  cleanup.push(() => lv.stop());
  await lv.virsh("define", file);
  await lv.virsh("start", "e2e_kernelboot");
  const sock = await until("serial socket", async () => {
    return await new Promise<Socket | undefined>((resolve) => {
      const s = connect(ctx.serialSocket);
      s.once("connect", () => resolve(s));
      s.once("error", () => resolve(undefined));
    });
  });
  cleanup.push(() => sock.destroy());
  const serial = serialReader(sock);
  await serial.wait(new RegExp(`${guest.marker} kernel=\\S+ disks=\\S+\\r?\\n`));
  await serial.wait(/TSVIRT-HEARTBEAT 2\r?\n/);
  assert.match(await lv.virsh("vcpucount", "--live", "--active", "e2e_kernelboot"), /2/);
  sock.write("echo c > /proc/sysrq-trigger\n");
  const state = await until("crashed after a guest panic", async () => {
    const s = await lv.virsh("domstate", "--reason", "e2e_kernelboot");
    return /shut off/.test(s) ? s : undefined;
  });
  assert.match(state, /shut off \(crashed\)/);
});
