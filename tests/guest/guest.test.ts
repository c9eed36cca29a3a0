// Launcher-independent sanity check of the test guest: plain qemu-system-x86_64 (KVM if present, else TCG).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { GUEST, requirePrereqs } from "../lib/prereqs.js";
import { ensureGuest, GUEST_CMDLINE, HEARTBEAT, kvmUsable, POWEROFF_MARKER } from "./index.js";

const QEMU = "qemu-system-x86_64";
requirePrereqs(QEMU, ...GUEST);
const accel = kvmUsable() ? "kvm" : "tcg";
const BOOT_TIMEOUT_MS = 300_000; // generous: a loaded 2-core machine boots TCG guests slowly

class Serial {
  text = "";
  private waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  constructor(readonly proc: ChildProcess) {
    proc.stdout?.setEncoding("utf8");
    proc.stdout?.on("data", (d: string) => {
      this.text += d;
      this.waiters = this.waiters.filter((w) => {
        const m = this.text.match(w.re);
        if (m) w.resolve(m);
        return !m;
      });
    });
  }
  wait(re: RegExp, ms = BOOT_TIMEOUT_MS): Promise<RegExpMatchArray> {
    const m = this.text.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out waiting for ${re}; serial so far:\n${this.text.slice(-2000)}`)),
        ms,
      );
      this.waiters.push({
        re,
        resolve: (mm) => {
          clearTimeout(timer);
          resolve(mm);
        },
      });
    });
  }
}

function qemu(args: string[]): { proc: ChildProcess; serial: Serial; exited: Promise<number | null> } {
  const proc = spawn(QEMU, ["-accel", accel, "-M", "q35", "-m", "256", "-display", "none", "-no-reboot", ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  return { proc, serial: new Serial(proc), exited };
}

async function qmp(path: string, command: string): Promise<void> {
  const sock = connect(path);
  let buf = "";
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  sock.setEncoding("utf8");
  sock.on("data", (d: string) => {
    buf += d;
    let i = buf.indexOf("\n");
    while (i >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
    wake?.();
  });
  const next = async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const l = lines.shift();
      if (l !== undefined) {
        const o = JSON.parse(l) as Record<string, unknown>;
        if (!("event" in o)) return o;
        continue;
      }
      await new Promise<void>((r) => {
        wake = r;
      });
    }
  };
  try {
    await next(); // greeting
    sock.write(`${JSON.stringify({ execute: "qmp_capabilities" })}\n`);
    assert.ok("return" in (await next()));
    sock.write(`${JSON.stringify({ execute: command })}\n`);
    assert.ok("return" in (await next()));
  } finally {
    sock.destroy();
  }
}

test("test guest: kernel boot prints the ready marker, answers on ttyS0, heartbeats, powers off on ACPI", {
  timeout: 600_000,
}, async (t) => {
  // Cleanups run last-registered first (the VM and daemon stop before their directory goes).
  const cleanup: (() => unknown)[] = [];
  t.after(async () => {
    for (const f of cleanup.reverse()) await f();
  });
  const g = await ensureGuest();
  const dir = mkdtempSync(join(tmpdir(), "tsvirt-guest-"));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const qmpPath = join(dir, "qmp.sock");
  const vm = qemu([
    ...["-kernel", g.vmlinux, "-initrd", g.initrd],
    ...["-append", `${GUEST_CMDLINE} ip=192.168.77.2/24 tsvirt.heartbeat=1`],
    ...["-drive", `file=${g.qcow2},if=none,id=d0,snapshot=on`, "-device", "virtio-blk-pci,drive=d0,serial=d0"],
    ...["-device", "virtio-scsi-pci", "-drive", `file=${g.qcow2},if=none,id=d1,snapshot=on,format=qcow2`],
    ...["-device", "scsi-hd,drive=d1"],
    ...["-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0"],
    ...["-serial", "stdio", "-monitor", "none", "-qmp", `unix:${qmpPath},server=on,wait=off`],
  ]);
  cleanup.push(() => vm.proc.kill("SIGKILL"));
  const ready = await vm.serial.wait(new RegExp(`${g.marker} kernel=(\\S+) disks=(\\S+)\\r?\\n`));
  assert.equal(ready[1], g.kernelVersion);
  const disks = (ready[2] ?? "").split(",");
  assert.ok(disks.includes("vda"), `virtio-blk disk seen: ${ready[2]}`);
  assert.ok(disks.includes("sda"), `virtio-scsi disk seen: ${ready[2]}`);
  const beats = await vm.serial.wait(new RegExp(`${HEARTBEAT} 3\\b`));
  assert.ok(beats);
  const token = `hi-${process.pid}-${Date.now()}`;
  vm.proc.stdin?.write(`echo ${token.slice(0, 3)}""${token.slice(3)}; ip -4 addr show eth0\n`);
  await vm.serial.wait(new RegExp(`\\n${token}\\r?\\n`));
  await vm.serial.wait(/inet 192\.168\.77\.2\/24/);
  await qmp(qmpPath, "system_powerdown");
  await vm.serial.wait(new RegExp(POWEROFF_MARKER));
  assert.equal(await vm.exited, 0);
});

test("test guest: the bootable qcow2 boots from its disk alone (SeaBIOS + SYSLINUX)", {
  timeout: 600_000,
}, async (t) => {
  // Cleanups run last-registered first (the VM and daemon stop before their directory goes).
  const cleanup: (() => unknown)[] = [];
  t.after(async () => {
    for (const f of cleanup.reverse()) await f();
  });
  const g = await ensureGuest();
  const vm = qemu([
    ...["-drive", `file=${g.qcow2},if=none,id=d0,snapshot=on,format=qcow2`],
    ...["-device", "virtio-blk-pci,drive=d0,bootindex=1"],
    ...["-serial", "stdio", "-monitor", "none", "-nic", "none"],
  ]);
  cleanup.push(() => vm.proc.kill("SIGKILL"));
  const ready = await vm.serial.wait(new RegExp(`${g.marker} kernel=\\S+ disks=(\\S+)\\r?\\n`));
  assert.ok((ready[1] ?? "").split(",").includes("vda"));
  vm.proc.stdin?.write('echo round""trip-ok\n');
  await vm.serial.wait(/\nroundtrip-ok\r?\n/);
});
