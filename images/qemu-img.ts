// qemu-img through execFile (never a shell): format detection from the file's header and qcow2 overlays.
import { execFile } from "node:child_process";
import { isAbsolute } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export type DiskFormat = "qcow2" | "raw";

export interface DiskInfo {
  format: DiskFormat;
  virtualSize: number;
  actualSize: number;
}

/** Detects a disk's format by probing its header (`qemu-img info --output=json`). Refuses backing files. */
export async function diskInfo(path: string): Promise<DiskInfo> {
  const { stdout } = await run("qemu-img", ["info", "--output=json", "--", path], { maxBuffer: 1 << 20 });
  const info = JSON.parse(stdout) as {
    format?: string;
    "virtual-size"?: number;
    "actual-size"?: number;
    "backing-filename"?: string;
    "full-backing-filename"?: string;
  };
  if (info["backing-filename"] !== undefined || info["full-backing-filename"] !== undefined) {
    throw new Error("disk image refers to a backing file; containerDisk images must be self-contained");
  }
  if (info.format !== "qcow2" && info.format !== "raw") {
    throw new Error(`unsupported disk format "${info.format}" (want qcow2 or raw)`);
  }
  return { format: info.format, virtualSize: info["virtual-size"] ?? 0, actualSize: info["actual-size"] ?? 0 };
}

/**
 * Creates a qcow2 overlay over `base` (absolute path), so the VM writes to the overlay and the cached base stays
 * untouched and shared. The overlay's own format is qcow2; the base's format is given explicitly (`-F`).
 */
export async function createOverlay(base: string, overlay: string, baseFormat?: DiskFormat): Promise<void> {
  if (!isAbsolute(base)) throw new Error("overlay base must be an absolute path");
  const fmt = baseFormat ?? (await diskInfo(base)).format;
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-b", base, "-F", fmt, "--", overlay], { maxBuffer: 1 << 20 });
}
