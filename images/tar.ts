// A streaming tar reader that takes only regular files under `disk/` (everything else is skipped, nothing is ever
// written outside the target directory), and a minimal deterministic ustar writer for building images.

import { once } from "node:events";
import { constants, createWriteStream } from "node:fs";
import { mkdir, open, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { finished } from "node:stream/promises";

export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "chardev" | "blockdev" | "fifo" | "other";

export interface TarHeader {
  name: string;
  type: TarEntryType;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string;
}

const BLOCK = 512;

function readOctal(b: Buffer, off: number, len: number): number {
  const first = b[off]!;
  if (first & 0x80) {
    // base-256 (GNU): big-endian two's complement in the remaining bytes
    let v = 0;
    for (let k = off + 1; k < off + len; k++) v = v * 256 + b[k]!;
    return v;
  }
  const s = b
    .toString("latin1", off, off + len)
    .replace(/\0.*$/s, "")
    .trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw new Error(`tar: bad numeric field "${s}"`);
  return Number.parseInt(s, 8);
}

function readStr(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString("utf8", off, end < 0 || end > off + len ? off + len : end);
}

function typeOf(flag: string): TarEntryType {
  switch (flag) {
    case "0":
    case "\0":
    case "7":
      return "file";
    case "5":
      return "dir";
    case "2":
      return "symlink";
    case "1":
      return "hardlink";
    case "3":
      return "chardev";
    case "4":
      return "blockdev";
    case "6":
      return "fifo";
    default:
      return "other";
  }
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = Number.parseInt(data.toString("latin1", i, sp), 10);
    if (!Number.isFinite(len) || len <= 0 || i + len > data.length) throw new Error("tar: bad pax record");
    const rec = data.toString("utf8", sp + 1, i + len - 1);
    const eq = rec.indexOf("=");
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/** Pulls exact byte counts out of an async chunk source. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  constructor(private readonly it: AsyncIterator<Buffer>) {}
  private async more(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    this.buf = this.buf.length === 0 ? r.value : Buffer.concat([this.buf, r.value]);
    return true;
  }
  async exact(n: number): Promise<Buffer | undefined> {
    while (this.buf.length < n) if (!(await this.more())) return undefined;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  /** Streams `n` bytes to `sink` (or drops them when sink is undefined). */
  async pass(n: number, sink?: (b: Buffer) => Promise<void>): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buf.length === 0 && !(await this.more())) throw new Error("tar: unexpected end of archive");
      const take = Math.min(left, this.buf.length);
      const piece = this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      left -= take;
      if (sink) await sink(piece);
    }
  }
}

/** Reads tar entries from a stream; `onEntry` gets each header and may consume the data via `read` (else skipped). */
export async function readTar(
  input: AsyncIterable<Buffer>,
  onEntry: (h: TarHeader, data: (sink: (b: Buffer) => Promise<void>) => Promise<void>) => Promise<void>,
): Promise<void> {
  const r = new ByteReader(input[Symbol.asyncIterator]());
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const hdr = await r.exact(BLOCK);
    if (hdr === undefined) return; // truncated trailer: tolerated (GNU tar writes it; some writers do not)
    if (hdr.every((x) => x === 0)) return;
    const sum = readOctal(hdr, 148, 8);
    let calc = 0;
    for (let k = 0; k < BLOCK; k++) calc += k >= 148 && k < 156 ? 0x20 : hdr[k]!;
    if (sum !== calc) throw new Error("tar: header checksum mismatch");
    const flag = String.fromCharCode(hdr[156]!);
    const size = readOctal(hdr, 124, 12);
    if (!Number.isSafeInteger(size) || size < 0) throw new Error("tar: bad size");
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
      if (size > 1 << 20) throw new Error("tar: metadata entry too large");
      const data = (await r.exact(padded))?.subarray(0, size);
      if (data === undefined) throw new Error("tar: unexpected end of archive");
      if (flag === "x") pax = parsePax(data);
      else if (flag === "L") longName = readStr(data, 0, data.length);
      else if (flag === "K") longLink = readStr(data, 0, data.length);
      continue;
    }
    const magic = hdr.toString("latin1", 257, 262);
    const prefix = magic === "ustar" ? readStr(hdr, 345, 155) : "";
    let name = readStr(hdr, 0, 100);
    if (prefix) name = `${prefix}/${name}`;
    const h: TarHeader = {
      name: pax["path"] ?? longName ?? name,
      type: typeOf(flag),
      size: pax["size"] !== undefined ? Number(pax["size"]) : size,
      mode: readOctal(hdr, 100, 8),
      uid: readOctal(hdr, 108, 8),
      gid: readOctal(hdr, 116, 8),
      mtime: readOctal(hdr, 136, 12),
      linkname: pax["linkpath"] ?? longLink ?? readStr(hdr, 157, 100),
    };
    pax = {};
    longName = undefined;
    longLink = undefined;
    const dataLen = h.type === "file" ? h.size : h.type === "hardlink" || h.type === "symlink" ? 0 : size;
    const realPadded = Math.ceil(dataLen / BLOCK) * BLOCK;
    let consumed = false;
    await onEntry(h, async (sink) => {
      consumed = true;
      await r.pass(dataLen, sink);
    });
    if (!consumed) await r.pass(dataLen);
    await r.pass(realPadded - dataLen);
  }
}

/** The name of a disk file inside a containerDisk layer (`disk/NAME`, optionally `./`-prefixed), else undefined. */
export function diskEntryName(path: string): string | undefined {
  const m = /^(?:\.\/)?disk\/([^/]+)$/.exec(path);
  if (!m) return undefined;
  const base = m[1]!;
  if (base === "." || base === ".." || base.startsWith(".wh.") || !/^[A-Za-z0-9._+-]{1,200}$/.test(base))
    return undefined;
  return base;
}

export interface ExtractedFile {
  name: string;
  path: string;
  size: number;
}

/**
 * Extracts the regular files under `disk/` from a tar stream into `targetDir/` (flat). Everything else —
 * directories, links, devices, fifos, absolute or `..` paths, names elsewhere — is skipped. Files are created with
 * O_EXCL|O_NOFOLLOW in a directory only we write to, so no entry can write outside it.
 */
export async function extractDiskFiles(input: AsyncIterable<Buffer>, targetDir: string): Promise<ExtractedFile[]> {
  await mkdir(targetDir, { recursive: true });
  const files = new Map<string, ExtractedFile>();
  await readTar(input, async (h, data) => {
    if (h.type !== "file") return;
    const base = diskEntryName(h.name);
    if (base === undefined) return;
    const path = join(targetDir, base);
    // A later layer may replace a file; unlink never follows a link and the directory is only ours.
    await unlink(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "ENOENT") throw e;
    });
    const fh = await open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644,
    );
    // A write stream keeps writes in flight while the next bytes are read and decoded.
    const ws = createWriteStream("", { fd: fh, highWaterMark: 4 << 20 });
    ws.on("error", () => {}); // surfaced by once(drain) / finished(); after destroy() only pending writes fail
    let n = 0;
    try {
      await data(async (b) => {
        n += b.length;
        if (!ws.write(b)) await once(ws, "drain");
      });
      ws.end();
      await finished(ws);
    } catch (e) {
      ws.destroy();
      throw e;
    }
    files.set(base, { name: base, path, size: n });
  });
  return [...files.values()];
}

// --- writer ---------------------------------------------------------------------------------------------------

export interface TarWriteEntry {
  name: string;
  type: TarEntryType;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  size?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

function octal(n: number, len: number): string {
  return `${n.toString(8).padStart(len - 1, "0")}\0`;
}

const flagOf: Record<TarEntryType, string> = {
  file: "0",
  dir: "5",
  symlink: "2",
  hardlink: "1",
  chardev: "3",
  blockdev: "4",
  fifo: "6",
  other: "0",
};

/** One 512-byte ustar header (names up to 100 bytes, or 155+100 split at a slash). */
export function tarHeader(e: TarWriteEntry): Buffer {
  const b = Buffer.alloc(BLOCK);
  let name = e.name;
  let prefix = "";
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf("/", 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`tar: name too long: ${name}`);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  b.write(name, 0, 100, "utf8");
  b.write(octal(e.mode ?? (e.type === "dir" ? 0o755 : 0o644), 8), 100, "latin1");
  b.write(octal(e.uid ?? 0, 8), 108, "latin1");
  b.write(octal(e.gid ?? 0, 8), 116, "latin1");
  b.write(octal(e.size ?? 0, 12), 124, "latin1");
  b.write(octal(e.mtime ?? 0, 12), 136, "latin1");
  b.write("        ", 148, "latin1");
  b.write(flagOf[e.type], 156, "latin1");
  if (e.linkname) b.write(e.linkname, 157, 100, "utf8");
  b.write("ustar\0", 257, "latin1");
  b.write("00", 263, "latin1");
  b.write(octal(e.devmajor ?? 0, 8), 329, "latin1");
  b.write(octal(e.devminor ?? 0, 8), 337, "latin1");
  if (prefix) b.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (let k = 0; k < BLOCK; k++) sum += b[k]!;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return b;
}

export interface TarSourceEntry extends TarWriteEntry {
  /** The entry's data (files only): a buffer or a stream of exactly `size` bytes. */
  data?: Buffer | AsyncIterable<Buffer>;
}

/** A tar stream of the given entries (data padded to 512 bytes, two zero blocks at the end). */
export function tarStream(entries: readonly TarSourceEntry[]): Readable {
  return Readable.from(
    (async function* () {
      for (const e of entries) {
        const size = e.type === "file" ? (e.size ?? (Buffer.isBuffer(e.data) ? e.data.length : 0)) : 0;
        yield tarHeader({ ...e, size });
        let n = 0;
        if (e.data !== undefined && e.type === "file") {
          if (Buffer.isBuffer(e.data)) {
            n = e.data.length;
            yield e.data;
          } else {
            for await (const c of e.data) {
              n += c.length;
              yield c;
            }
          }
        }
        if (n !== size) throw new Error(`tar: ${e.name}: got ${n} bytes, header says ${size}`);
        if (size % BLOCK) yield Buffer.alloc(BLOCK - (size % BLOCK));
      }
      yield Buffer.alloc(2 * BLOCK);
    })(),
    { objectMode: false },
  );
}
