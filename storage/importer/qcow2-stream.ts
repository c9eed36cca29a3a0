// qcow2 → raw in one sequential pass. The stream is read once, in order; what each byte is becomes known from the
// tables met before it: the header names the L1 table (and the refcount table), the L1 names the L2 tables, an L2
// names the host clusters of its guest clusters. A data cluster whose mapping is known when it arrives is written at
// its guest offset in the target at once (compressed ones inflated first; zero/unallocated clusters stay holes: the
// target starts clean). Bytes of unknown meaning that arrive while some mapping is still unknown (the L1 not read
// yet, or an L2 table still ahead) may be data of a table yet to come: they are spilled to a sparse scratch file at
// their host offset and placed from there once their table arrives. qemu-img writes its tables before the data they
// map, so such an image needs no scratch at all; an image whose tables follow its data spills what precedes them,
// no more than the whole-image scratch copy of the fallback. Memory: the L1 and refcount tables, the L2 tables and
// compressed clusters the stream is inside of (a buffer each, from their first byte), two write batches, and a small
// entry per L2 table, compressed cluster or run of adjacent data clusters (up to 4 MiB) still ahead of the stream.
// Refused like `qemu-img info` would be: a backing file or an external data file (BackingFile), a broken header
// (NotADiskImage); left to the scratch path (qemu-img): encryption, extended L2 entries, a compression type other
// than deflate, the corrupt bit, unknown incompatible features, versions other than 2 and 3.
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { inflateRawSync, constants as zlibConstants } from "node:zlib";
import { TimerHeap } from "../../lib/workqueue/index.js";
import { isZero, readExactly, writeSparse } from "./blocks.js";
import { fatal, transient } from "./outcome.js";

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  /** Virtual size in bytes. */
  size: number;
  l1Offset: number;
  l1Size: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
}

/** The header's fixed part, enough to read cluster_bits. */
export const QCOW2_HEADER_MIN = 104;
const MAX_L1_BYTES = 32 << 20; // qemu's QCOW_MAX_L1_SIZE
const MAX_REFTABLE_BYTES = 8 << 20; // qemu's QCOW_MAX_REFTABLE_SIZE
const OFFSET_MASK = 0x00fffffffffffe00n;
const COMPRESSED = 1n << 62n;
const ZERO_FLAG = 1n;
const INCOMPAT_DIRTY = 1n;
const INCOMPAT_DATA_FILE = 4n;
const INCOMPAT_COMPRESSION = 8n;
const EXT_DATA_FILE = 0x44415441;
const ZERO_RUN = Buffer.alloc(1 << 20);
/** The buffer of an L2 table or compressed cluster ahead of the stream: allocated when its first byte arrives. */
const UNREAD = Buffer.alloc(0);

function allocate(it: Item): void {
  if ((it.kind === "l2" || it.kind === "comp") && it.buf === UNREAD) it.buf = Buffer.alloc(it.end - it.start);
}
/** The write (and read-back) batch: adjacent guest runs are coalesced up to this. */
const BATCH = 4 << 20;

const corrupt = (msg: string) => fatal("NotADiskImage", `not a valid qcow2 image: ${msg}`);

/** A u64 field as a number; past 2^53 it is no offset or size a volume can hold (Infinity fails every bound). */
function u64(b: Buffer, off: number): number {
  const v = b.readBigUInt64BE(off);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.POSITIVE_INFINITY : Number(v);
}

/** Pure: the cluster size a header names (cluster_bits 9..21 as qemu accepts), for how much to read before parsing. */
export function qcow2ClusterSize(head: Buffer): number {
  if (head.length < 24) throw corrupt("the header is truncated");
  const bits = head.readUInt32BE(20);
  if (bits < 9 || bits > 21) throw corrupt(`cluster_bits ${bits} is outside 9..21`);
  return 2 ** bits;
}

/**
 * Pure: the header from the image's first cluster (or all of a shorter image). Throws BackingFile / NotADiskImage
 * where qemu-img would refuse; returns `{ fallback }` for what the streamer leaves to qemu-img.
 */
export function parseQcow2Header(head: Buffer): { header: Qcow2Header } | { fallback: string } {
  if (head.length < 72 || head.readUInt32BE(0) !== 0x514649fb) throw corrupt("the header is truncated");
  const version = head.readUInt32BE(4);
  if (version !== 2 && version !== 3) return { fallback: `version ${version}` };
  const clusterBits = Math.log2(qcow2ClusterSize(head));
  const cs = 2 ** clusterBits;
  const backingOffset = u64(head, 8);
  const backingSize = head.readUInt32BE(16);
  if (backingOffset !== 0 && backingSize > 0) {
    const end = backingOffset + backingSize;
    const name = end <= head.length ? head.toString("utf8", backingOffset, end) : "";
    throw fatal(
      "BackingFile",
      `the qcow2 image refers to a backing file (${name}); only self-contained images can be imported`,
    );
  }
  const size = u64(head, 24);
  if (head.readUInt32BE(32) !== 0) return { fallback: "encryption" };
  const l1Size = head.readUInt32BE(36);
  const l1Offset = u64(head, 40);
  const refcountTableOffset = u64(head, 48);
  const refcountTableClusters = head.readUInt32BE(56);
  let headerLength = 72;
  if (version === 3) {
    if (head.length < QCOW2_HEADER_MIN) throw corrupt("the header is truncated");
    const incompat = head.readBigUInt64BE(72);
    if (incompat & INCOMPAT_DATA_FILE)
      throw fatal("BackingFile", "the qcow2 image keeps its data in an external data file");
    headerLength = head.readUInt32BE(100);
    if (headerLength < QCOW2_HEADER_MIN || headerLength > head.length) throw corrupt(`header_length ${headerLength}`);
    const compressionType = headerLength > 104 ? (head[104] ?? 0) : 0;
    if (incompat & INCOMPAT_COMPRESSION && compressionType !== 0) {
      return { fallback: `compression type ${compressionType}` };
    }
    const unknown = incompat & ~(INCOMPAT_DIRTY | INCOMPAT_COMPRESSION);
    // (bit 1 corrupt, bit 4 extended L2, and any bit qemu may define later)
    if (unknown !== 0n) return { fallback: `incompatible features 0x${incompat.toString(16)}` };
  }
  // header extensions, up to the end marker (they fit in the first cluster)
  for (let off = headerLength; ; ) {
    if (off + 8 > head.length) throw corrupt("the header extensions run past the first cluster");
    const type = head.readUInt32BE(off);
    const len = head.readUInt32BE(off + 4);
    if (type === 0) break;
    if (type === EXT_DATA_FILE) throw fatal("BackingFile", "the qcow2 image keeps its data in an external data file");
    off += 8 + Math.ceil(len / 8) * 8;
  }
  const l2Entries = cs / 8;
  if (l1Size * 8 > MAX_L1_BYTES) throw corrupt(`the L1 table (${l1Size} entries) is too large`);
  if (l1Size < Math.ceil(size / (cs * l2Entries))) throw corrupt("the L1 table is too small for the virtual size");
  if (l1Size > 0 && (l1Offset % cs !== 0 || !Number.isFinite(l1Offset))) throw corrupt("the L1 table offset");
  return {
    header: { version, clusterBits, size, l1Offset, l1Size, refcountTableOffset, refcountTableClusters },
  };
}

/** A byte range of the image with a meaning: a table to read, metadata to pass over, data to place. */
type Item =
  | { kind: "l1" | "rt"; start: number; end: number; buf: Buffer }
  | { kind: "l2"; start: number; end: number; buf: Buffer; l1Index: number }
  | { kind: "skip"; start: number; end: number }
  | { kind: "plain"; start: number; end: number; guest: number }
  | { kind: "comp"; start: number; end: number; guest: number; buf: Buffer };

export interface Qcow2StreamResult {
  /** Bytes of the image spilled to the scratch file (0: the layout let it stream). */
  spilledBytes: number;
  /** The guest space's blocks written (a bit each, `granularity` bytes a block), for the hole check. */
  written: Uint8Array;
  granularity: number;
  /**
   * sha256 of the image's guest data (what was written, zeros elsewhere) when it arrived in guest order and every
   * block is either wholly written or wholly a hole; otherwise undefined (the caller re-reads the volume).
   */
  sha256?: string;
}

export interface Qcow2StreamOptions {
  /** The target, open for writing; it reads zeros everywhere (a clean target). */
  target: FileHandle;
  /** Opens the scratch file the first time something must be spilled. */
  openScratch: () => Promise<FileHandle>;
}

/**
 * Converts the qcow2 byte stream (starting at byte 0) into the target as raw, in one pass (see the file's head).
 * Every written batch is read back and compared. Throws NotADiskImage for a truncated or corrupt image.
 */
export async function streamQcow2(
  data: AsyncIterable<Buffer>,
  h: Qcow2Header,
  o: Qcow2StreamOptions,
): Promise<Qcow2StreamResult> {
  const cs = 2 ** h.clusterBits;
  const l2Entries = cs / 8;
  const heap = new TimerHeap<Item>();
  let active: Item[] = [];
  let pos = 0;
  let l1Read = h.l1Size === 0;
  let l2Pending = 0;
  const complete = (): boolean => l1Read && l2Pending === 0;

  // the guest space written, for the caller's check that the rest reads zeros
  let granularity = cs;
  while (h.size / granularity > 2 ** 26) granularity *= 2;
  // the digest while it streams, as long as the data comes in guest order (qemu-img's layout)
  const hash = createHash("sha256");
  let hashedUpTo = 0;
  let inOrder = granularity === cs;
  const hashZeros = (n: number): void => {
    for (; n > 0; n -= ZERO_RUN.length) hash.update(n >= ZERO_RUN.length ? ZERO_RUN : ZERO_RUN.subarray(0, n));
  };
  const written = new Uint8Array(Math.ceil(Math.ceil(h.size / granularity) / 8));
  const mark = (from: number, to: number): void => {
    for (let b = Math.floor(from / granularity); b * granularity < to; b++) written[b >> 3]! |= 1 << (b & 7);
  };

  // writes at guest offsets: adjacent runs coalesced into a batch, one batch written + read back while the next fills
  const bufs = [Buffer.allocUnsafe(BATCH), Buffer.allocUnsafe(BATCH)];
  const back = Buffer.allocUnsafe(BATCH);
  let turn = 0;
  let batchAt = 0;
  let batchLen = 0;
  let inflight: Promise<void> | undefined;
  const writeBatch = async (buf: Buffer, at: number): Promise<void> => {
    await writeSparse(o.target, buf, at);
    const got = await readExactly(o.target, back, buf.length, at);
    if (!got.equals(buf))
      throw transient("VerifyFailed", `the volume does not read back what was written at byte ${at}`);
    mark(at, at + buf.length);
  };
  const flush = async (): Promise<void> => {
    if (batchLen === 0) return;
    await inflight;
    const buf = (bufs[turn] as Buffer).subarray(0, batchLen);
    inflight = writeBatch(buf, batchAt);
    inflight.catch(() => {}); // awaited at the next flush or the end
    turn ^= 1;
    batchLen = 0;
  };
  const put = async (guest: number, bytes: Buffer): Promise<void> => {
    if (guest >= h.size) return;
    let b = bytes.subarray(0, Math.min(bytes.length, h.size - guest));
    if (inOrder && guest < hashedUpTo) inOrder = false;
    if (inOrder) {
      hashZeros(guest - hashedUpTo);
      hash.update(b);
      hashedUpTo = guest + b.length;
    }
    while (b.length > 0) {
      if (batchLen > 0 && (guest !== batchAt + batchLen || batchLen === BATCH)) await flush();
      if (batchLen === 0) batchAt = guest;
      const k = Math.min(b.length, BATCH - batchLen);
      b.copy(bufs[turn] as Buffer, batchLen, 0, k);
      batchLen += k;
      guest += k;
      b = b.subarray(k);
    }
  };

  // the spill: unknown bytes at their host offset in a sparse scratch file; `spilled` lists the ranges passed to it
  let scratch: FileHandle | undefined;
  let spilledBytes = 0;
  const spilled: [number, number][] = [];
  const spill = async (at: number, bytes: Buffer): Promise<void> => {
    const last = spilled[spilled.length - 1];
    if (last && last[1] === at) last[1] = at + bytes.length;
    else spilled.push([at, at + bytes.length]);
    if (isZero(bytes)) return; // (a hole in the scratch reads zeros)
    scratch ??= await o.openScratch();
    await writeSparse(scratch, bytes, at);
    spilledBytes += bytes.length;
  };
  const spilledCovers = (from: number, to: number): boolean => {
    let lo = 0;
    let hi = spilled.length - 1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      const r = spilled[m] as [number, number];
      if (r[1] <= from) lo = m + 1;
      else if (r[0] > from) hi = m - 1;
      else return r[1] >= to;
    }
    return false;
  };
  const readSpilled = async (from: number, to: number): Promise<Buffer> => {
    const buf = Buffer.alloc(to - from);
    if (!scratch) return buf;
    for (let off = 0; off < buf.length; ) {
      const { bytesRead } = await scratch.read(buf, off, buf.length - off, from + off);
      if (bytesRead === 0) break; // past the scratch's end: a hole, zeros
      off += bytesRead;
    }
    return buf;
  };

  // an item whose start the stream has passed was spilled (its mapping was unknown then): it is read from the scratch
  const register = async (it: Item): Promise<void> => {
    if (it.start >= pos) {
      heap.push({ readyAt: it.start, item: it });
      return;
    }
    if (it.kind === "skip") return;
    const upto = Math.min(it.end, pos);
    if (!spilledCovers(it.start, upto)) {
      throw corrupt(`bytes ${it.start}..${upto} are mapped twice (or as data and as a table)`);
    }
    const got = await readSpilled(it.start, upto);
    allocate(it);
    if (it.kind === "plain") await put(it.guest, got);
    else got.copy(it.buf, 0);
    if (it.end <= pos) await finish(it);
    else active.push(it);
  };

  const finish = async (it: Item): Promise<void> => {
    switch (it.kind) {
      case "rt":
        // the refcount blocks are metadata: passing them needs no spill
        for (let i = 0; i + 8 <= it.buf.length; i += 8) {
          const off = Number(it.buf.readBigUInt64BE(i) & OFFSET_MASK);
          if (off !== 0 && off % cs === 0) await register({ kind: "skip", start: off, end: off + cs });
        }
        return;
      case "l1":
        l1Read = true;
        for (let i = 0; i < h.l1Size; i++) {
          const off = Number(it.buf.readBigUInt64BE(i * 8) & OFFSET_MASK);
          if (off === 0 || i * l2Entries * cs >= h.size) continue;
          if (off % cs !== 0) throw corrupt(`L2 table offset ${off} is not cluster-aligned`);
          l2Pending++;
          await register({ kind: "l2", start: off, end: off + cs, buf: UNREAD, l1Index: i });
        }
        return;
      case "l2": {
        l2Pending--;
        const csizeShift = 62n - BigInt(h.clusterBits - 8);
        const csizeMask = (1n << BigInt(h.clusterBits - 8)) - 1n;
        const coffMask = (1n << csizeShift) - 1n;
        // adjacent clusters (host and guest) make one item, up to a batch: fewer items ahead of the stream
        let run: { kind: "plain"; start: number; end: number; guest: number } | undefined;
        for (let j = 0; j < l2Entries; j++) {
          const guest = (it.l1Index * l2Entries + j) * cs;
          if (guest >= h.size) break;
          const e = it.buf.readBigUInt64BE(j * 8);
          if (e & COMPRESSED) {
            const start = Number(e & coffMask);
            const sectors = Number((e >> csizeShift) & csizeMask) + 1;
            const len = sectors * 512 - (start % 512);
            await register({ kind: "comp", start, end: start + len, guest, buf: UNREAD });
            continue;
          }
          if (e & ZERO_FLAG) continue;
          const off = Number(e & OFFSET_MASK);
          if (off === 0) continue;
          if (off % cs !== 0) throw corrupt(`data cluster offset ${off} is not cluster-aligned`);
          if (run && run.end === off && run.guest + (run.end - run.start) === guest && run.end - run.start < BATCH) {
            run.end += cs;
            continue;
          }
          if (run) await register(run);
          run = { kind: "plain", start: off, end: off + cs, guest };
        }
        if (run) await register(run);
        return;
      }
      case "comp":
        await put(it.guest, inflateCluster(it.buf, cs, it.start));
        return;
      default:
        return;
    }
  };

  await register({ kind: "skip", start: 0, end: cs }); // the header
  if (h.l1Size > 0) {
    await register({ kind: "l1", start: h.l1Offset, end: h.l1Offset + h.l1Size * 8, buf: Buffer.alloc(h.l1Size * 8) });
  }
  const rtBytes = h.refcountTableClusters * cs;
  if (rtBytes > 0 && rtBytes <= MAX_REFTABLE_BYTES && h.refcountTableOffset % cs === 0) {
    await register({
      kind: "rt",
      start: h.refcountTableOffset,
      end: h.refcountTableOffset + rtBytes,
      buf: Buffer.alloc(rtBytes),
    });
  }

  const cover: [number, number][] = [];
  try {
    for await (const chunk of data) {
      const base = pos;
      const end = pos + chunk.length;
      // in segments that end where an item ends: what a table says applies to the rest of the chunk
      while (pos < end) {
        for (let top = heap.peek(); top && top.readyAt < end; top = heap.peek()) {
          const it = (heap.pop() as typeof top).item;
          allocate(it);
          active.push(it);
        }
        let segEnd = end;
        for (const it of active) if (it.end > pos && it.end < segEnd) segEnd = it.end;
        const mustSpill = !complete();
        cover.length = 0;
        for (const it of active) {
          const s = Math.max(pos, it.start);
          const e = Math.min(segEnd, it.end);
          if (s >= e) continue;
          // (a compressed cluster's last sector may hold the start of another: spilled, in case its table is ahead)
          if (mustSpill) cover.push([s, it.kind === "comp" ? Math.min(e, Math.max(s, sectorStart(it.end - 1))) : e]);
          const piece = chunk.subarray(s - base, e - base);
          if (it.kind === "plain") await put(it.guest + (s - it.start), piece);
          else if (it.kind !== "skip") piece.copy(it.buf, s - it.start);
        }
        if (mustSpill) {
          // what no item claims may be data of a table still ahead
          cover.sort((a, b) => a[0] - b[0]);
          let at = pos;
          for (const [s, e] of cover) {
            if (s > at) await spill(at, chunk.subarray(at - base, s - base));
            at = Math.max(at, e);
          }
          if (at < segEnd) await spill(at, chunk.subarray(at - base, segEnd - base));
        }
        pos = segEnd;
        const done = active.filter((it) => it.end <= pos);
        if (done.length) {
          active = active.filter((it) => it.end > pos);
          for (const it of done) await finish(it);
        }
      }
    }
    // the image ends: a compressed cluster's last sector may run past it (qemu reads what there is); anything else
    // still expected means the image was cut short
    for (const it of active.splice(0)) {
      if (it.kind === "comp") await finish({ ...it, buf: it.buf.subarray(0, pos - it.start) });
      else if (it.kind !== "skip")
        throw corrupt(`the image ends at byte ${pos}, inside its ${what(it)} at ${it.start}`);
    }
    for (let top = heap.pop(); top; top = heap.pop()) {
      if (top.item.kind !== "skip")
        throw corrupt(`the image ends at byte ${pos}, before its ${what(top.item)} at ${top.readyAt}`);
    }
    await flush();
    await inflight;
  } finally {
    await inflight?.catch(() => {});
    await scratch?.close();
  }
  if (inOrder) hashZeros(h.size - hashedUpTo);
  return { spilledBytes, written, granularity, ...(inOrder ? { sha256: hash.digest("hex") } : {}) };
}

const sectorStart = (x: number): number => x - (x % 512);

function what(it: Item): string {
  return {
    l1: "L1 table",
    rt: "refcount table",
    l2: "L2 table",
    skip: "metadata",
    plain: "data",
    comp: "compressed data",
  }[it.kind];
}

/** A compressed cluster (raw deflate, as qemu writes it) → exactly one cluster, as qemu requires. */
function inflateCluster(buf: Buffer, cs: number, at: number): Buffer {
  let out: Buffer;
  try {
    // (the input may run past the deflate stream's end into the next cluster's sector: that tail is ignored)
    out = inflateRawSync(buf, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: cs });
  } catch (e) {
    throw corrupt(`the compressed cluster at ${at} does not inflate: ${(e as Error).message}`);
  }
  if (out.length !== cs) throw corrupt(`the compressed cluster at ${at} inflates to ${out.length} bytes, not ${cs}`);
  return out;
}
