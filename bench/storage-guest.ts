// bench:storage's guest-write pair: the test guest writes its data disk sequentially (dd oflag=direct, timed by the
// guest itself) once inside a tsvirt VM and once inside a QEMU started by hand on the SAME raw file with the SAME
// disk options: the hand QEMU's disk (blockdev nodes and device) is copied from the command line libvirt gave the
// tsvirt VM's QEMU, as are its accelerator, machine type, CPU model, memory and vCPUs; only the PCI placement
// (libvirt's root ports) and image locking (both QEMUs open the one file, never writing at the same time) differ.
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { until } from "../tests/lib/up.js";

/** What the bench talks to: a serial console (virtctl console, or the hand QEMU's stdio). */
export interface GuestShell {
  send(text: string): void;
  readonly out: { text: string };
}

type Props = Record<string, unknown>;

/** A -blockdev / -device value: JSON (libvirt's form) or QEMU's key=value list (a bare first item is the driver). */
export function parseOpts(v: string): Props {
  if (v.startsWith("{")) return JSON.parse(v) as Props;
  const out: Props = {};
  v.split(",").forEach((kv, i) => {
    const eq = kv.indexOf("=");
    if (eq < 0 && i === 0) out.driver = kv;
    else if (eq > 0) out[kv.slice(0, eq)] = kv.slice(eq + 1);
  });
  return out;
}

/** All values of an option in an argv (`-opt value` pairs). */
function values(argv: string[], opt: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length - 1; i++) if (argv[i] === opt) out.push(argv[i + 1] ?? "");
  return out;
}

/** The files of an argv's -blockdev nodes. */
export function blockdevFiles(argv: string[]): string[] {
  return values(argv, "-blockdev")
    .map((v) => parseOpts(v).filename)
    .filter((f): f is string => typeof f === "string");
}

/**
 * The hand QEMU's argv: the guest boots from `bootDisk` (a throw-away snapshot of the same bootable qcow2) and gets
 * `diskPath` with the exact blockdev chain and device properties libvirt gave the data disk in `libvirtArgv`.
 */
export function handQemuArgs(libvirtArgv: string[], diskPath: string, bootDisk: string): string[] {
  const blockdevs = values(libvirtArgv, "-blockdev").map(parseOpts);
  const storage = blockdevs.find((b) => b.filename === diskPath);
  if (!storage) throw new Error(`libvirt's QEMU has no -blockdev for ${diskPath}`);
  // libvirt may put a raw format node above the file node, or (newer versions) use the file node directly.
  const format = blockdevs.find((b) => b.file === storage["node-name"]);
  const top = format ?? storage;
  const device = values(libvirtArgv, "-device")
    .map(parseOpts)
    .find((d) => d.drive === top["node-name"]);
  if (!device) throw new Error(`libvirt's QEMU has no -device for block node ${String(top["node-name"])}`);
  // Placement on libvirt's PCIe root ports is libvirt's topology, not a disk option; the boot order is the boot disk's.
  const { bus: _bus, addr: _addr, bootindex: _boot, ...dev } = device;
  const one = (opt: string): string[] => {
    const v = values(libvirtArgv, opt)[0];
    return v === undefined ? [] : [opt, v];
  };
  const machine = values(libvirtArgv, "-machine")[0]?.split(",")[0];
  const mem = values(libvirtArgv, "-m")[0]?.split(",")[0];
  return [
    ...one("-accel"),
    ...(machine ? ["-machine", machine] : []),
    ...one("-cpu"),
    ...(mem ? ["-m", mem] : []),
    ...one("-smp"),
    ...["-display", "none", "-no-user-config", "-nodefaults", "-no-reboot"],
    ...["-serial", "stdio", "-monitor", "none"],
    ...["-drive", `file=${bootDisk},if=none,id=boot,snapshot=on,format=qcow2`],
    ...["-device", "virtio-blk-pci,drive=boot,bootindex=1"],
    ...["-blockdev", JSON.stringify({ ...storage, locking: "off" })],
    ...(format ? ["-blockdev", JSON.stringify(format)] : []),
    ...["-device", JSON.stringify(dev)],
  ];
}

/** The argv of a running process (NUL-separated /proc cmdline). */
export async function processArgv(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").slice(0, -1);
}

export interface HandQemu extends GuestShell {
  readonly proc: ChildProcess;
  kill(): Promise<void>;
}

export function startHandQemu(args: string[]): HandQemu {
  const proc = spawn("qemu-system-x86_64", args, { stdio: ["pipe", "pipe", "pipe"] });
  const out = { text: "" };
  proc.stdout?.setEncoding("latin1");
  proc.stdout?.on("data", (d: string) => {
    out.text += d;
  });
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (d: string) => {
    out.text += d;
  });
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return {
    proc,
    out,
    send: (text) => proc.stdin?.write(text),
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * Has the guest write `mib` MiB of zeros to its disk of `sectors` 512-byte sectors (found by size, so the device
 * name does not matter) with O_DIRECT; resolves with the guest's own wall time for the dd, in seconds.
 * The tag is split in the typed line (TAG''=) so the console's echo of the command never matches.
 */
export async function guestWrite(sh: GuestShell, tag: string, sectors: number, mib: number): Promise<number> {
  const from = sh.out.text.length;
  sh.send(
    `t=; for d in /sys/block/vd*; do [ "$(cat $d/size)" = ${sectors} ] && t=/dev/\${d##*/}; done; ` +
      `r=$( { time -p dd if=/dev/zero of=$t bs=1M count=${mib} oflag=direct; } 2>&1 | sed -n 's/^real //p'); ` +
      `echo ${tag}''=[$t $r]\n`,
  );
  const re = new RegExp(`${tag}=\\[(\\S*) ([0-9.]+)\\]`);
  const m = await until(
    `${tag} on the guest's console`,
    300_000,
    async () => re.exec(sh.out.text.slice(from)) ?? undefined,
  );
  if (!m[1]) throw new Error(`${tag}: the guest has no disk of ${sectors} sectors`);
  const s = Number(m[2]);
  if (!(s > 0)) throw new Error(`${tag}: the guest timed its dd at ${m[2]} s`);
  return s;
}
