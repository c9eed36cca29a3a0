// The test guest, for tests and benchmarks: builds it once (cached on disk by build.sh) and returns its paths.
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Guest {
  /** Uncompressed kernel (PVH entry): the fast `-kernel` / kernelBoot choice under TCG. */
  vmlinux: string;
  /** The compressed bzImage from the Debian package. */
  vmlinuz: string;
  /** busybox initramfs (cpio newc, gzip). */
  initrd: string;
  /** Bootable disk (BIOS + SYSLINUX): boots from its disk alone, e.g. as a containerDisk. */
  qcow2: string;
  /** Printed on the serial console once the guest is up: `TSVIRT-GUEST-READY kernel=… disks=vda,sr0`. */
  marker: string;
  kernelVersion: string;
  kernelPackage: string;
}

/** Printed every 200 ms when the kernel command line has `tsvirt.heartbeat=1`. */
export const HEARTBEAT = "TSVIRT-HEARTBEAT";
/** Printed by the ACPI power-button handler right before the guest powers off. */
export const POWEROFF_MARKER = "TSVIRT-GUEST-POWEROFF";
/** Kernel command line for a serial-console boot of the guest. */
export const GUEST_CMDLINE = "console=ttyS0 panic=-1";

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "tests", "guest", "build.sh"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("tests/guest: cannot find the repository root");
    dir = up;
  }
}

/** Where the guest is built: $TSVIRT_GUEST_DIR, else tests/guest/out in this checkout. */
export function guestDir(): string {
  const env = process.env.TSVIRT_GUEST_DIR;
  return env ? resolve(env) : join(repoRoot(), "tests", "guest", "out");
}

let pending: Promise<Guest> | undefined;

/** Builds the guest if needed (seconds; cached across runs) and returns its files. */
export function ensureGuest(): Promise<Guest> {
  pending ??= build().catch((err: unknown) => {
    pending = undefined;
    throw err;
  });
  return pending;
}

async function build(): Promise<Guest> {
  const out = guestDir();
  const script = join(repoRoot(), "tests", "guest", "build.sh");
  await run("bash", [script, out], { maxBuffer: 16 * 1024 * 1024, timeout: 300_000 });
  const j = JSON.parse(readFileSync(join(out, "guest.json"), "utf8")) as Record<string, unknown>;
  const str = (k: string): string => {
    const v = j[k];
    if (typeof v !== "string" || v === "") throw new Error(`tests/guest: guest.json has no ${k}`);
    return v;
  };
  return {
    vmlinux: str("vmlinux"),
    vmlinuz: str("vmlinuz"),
    initrd: str("initrd"),
    qcow2: str("qcow2"),
    marker: str("marker"),
    kernelVersion: str("kernelVersion"),
    kernelPackage: str("kernelPackage"),
  };
}

/**
 * Whether hardware virtualisation is really usable: /dev/kvm exists AND the CPU advertises vmx/svm.
 * (Some hosts expose a /dev/kvm, e.g. kvm-pvm, on which a normal guest never boots.) TSVIRT_ACCEL=kvm|tcg overrides.
 */
export function kvmUsable(): boolean {
  const forced = process.env.TSVIRT_ACCEL;
  if (forced === "kvm" || forced === "tcg") return forced === "kvm";
  if (!existsSync("/dev/kvm")) return false;
  try {
    return /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return false;
  }
}
