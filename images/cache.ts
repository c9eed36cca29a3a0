// The node's image cache under a data dir:
//   blobs/sha256/<hex>        verified blobs (written to tmp/ and renamed only after the digest matched)
//   manifests/<hex>           manifests by digest
//   disks/<hex>/disk.img      the extracted disk of a manifest (read-only), meta.json beside it (mtime = last use)
//   refs/<sha256(ref)>.json   tag → manifest digest, for IfNotPresent pulls without any network request
//   pins/<vmi uid>            manifest digest in use by a VMI: never garbage-collected, survives restarts
//   tmp/                      partial downloads and extractions
import { createHash, randomBytes } from "node:crypto";
import { chmod, mkdir, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { DiskFormat } from "./qemu-img.js";
import { isDigest } from "./reference.js";

export interface DiskMeta {
  manifestDigest: string;
  format: DiskFormat;
  virtualSize: number;
  size: number;
  blobs: string[];
}

export interface CachedDisk extends DiskMeta {
  diskPath: string;
}

export interface PartialBlob {
  path: string;
  hash: ReturnType<typeof createHash>;
  bytes: number;
}

const UID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

function hexOf(digest: string): string {
  if (!isDigest(digest)) throw new Error(`invalid digest "${digest}"`);
  return digest.slice(7);
}

async function atomicWrite(dir: string, tmpDir: string, name: string, data: string | Buffer): Promise<void> {
  const tmp = join(tmpDir, `w-${randomBytes(8).toString("hex")}`);
  await writeFile(tmp, data);
  await rename(tmp, join(dir, name));
}

const enoent = (e: unknown): undefined => {
  if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
  throw e;
};

const opened = new Map<string, ImageCache>();

export class ImageCache {
  readonly root: string;
  /** Downloads in flight by blob digest (one per digest per process). */
  readonly blobFlights = new Map<string, Promise<void>>();
  /** Partial downloads by blob digest: failover resumes them from another registry. */
  readonly partials = new Map<string, PartialBlob>();
  /** Extractions in flight by manifest digest. */
  readonly extractFlights = new Map<string, Promise<CachedDisk>>();
  /** Manifest digests being pulled right now (protected from GC). */
  readonly active = new Map<string, number>();
  private ready: Promise<void> | undefined;

  private constructor(root: string) {
    this.root = root;
  }

  /** The cache at `dir` (one instance per directory per process, so concurrent pulls share downloads). */
  static open(dir: string): ImageCache {
    const root = resolve(dir);
    let c = opened.get(root);
    if (!c) {
      c = new ImageCache(root);
      opened.set(root, c);
    }
    return c;
  }

  get tmpDir(): string {
    return join(this.root, "tmp");
  }

  async init(): Promise<void> {
    this.ready ??= (async () => {
      for (const d of ["blobs/sha256", "manifests", "disks", "refs", "pins", "tmp"]) {
        await mkdir(join(this.root, d), { recursive: true });
      }
    })();
    return this.ready;
  }

  blobPath(digest: string): string {
    return join(this.root, "blobs", "sha256", hexOf(digest));
  }

  async hasBlob(digest: string): Promise<boolean> {
    return (await stat(this.blobPath(digest)).catch(enoent)) !== undefined;
  }

  /** Moves a verified temp file into the blob store. */
  async commitBlob(digest: string, tmpPath: string): Promise<void> {
    await rename(tmpPath, this.blobPath(digest));
  }

  tempPath(prefix: string): string {
    return join(this.tmpDir, `${prefix}-${randomBytes(8).toString("hex")}`);
  }

  async putManifest(digest: string, raw: Buffer): Promise<void> {
    await atomicWrite(join(this.root, "manifests"), this.tmpDir, hexOf(digest), raw);
  }

  async getManifest(digest: string): Promise<Buffer | undefined> {
    return readFile(join(this.root, "manifests", hexOf(digest))).catch(enoent);
  }

  private refFile(ref: string): string {
    return `${createHash("sha256").update(ref).digest("hex")}.json`;
  }

  async lookupRef(ref: string): Promise<string | undefined> {
    const txt = await readFile(join(this.root, "refs", this.refFile(ref)), "utf8").catch(enoent);
    if (txt === undefined) return undefined;
    const doc = JSON.parse(txt) as { ref: string; digest: string };
    return doc.ref === ref && isDigest(doc.digest) ? doc.digest : undefined;
  }

  async recordRef(ref: string, digest: string): Promise<void> {
    await atomicWrite(join(this.root, "refs"), this.tmpDir, this.refFile(ref), JSON.stringify({ ref, digest }));
  }

  diskDir(manifestDigest: string): string {
    return join(this.root, "disks", hexOf(manifestDigest));
  }

  /** The extracted disk of a manifest, if cached; marks it used now (LRU). */
  async getDisk(manifestDigest: string, touch = true): Promise<CachedDisk | undefined> {
    const dir = this.diskDir(manifestDigest);
    const txt = await readFile(join(dir, "meta.json"), "utf8").catch(enoent);
    if (txt === undefined) return undefined;
    const meta = JSON.parse(txt) as DiskMeta;
    if (touch) {
      const now = new Date();
      await utimes(join(dir, "meta.json"), now, now).catch(enoent);
    }
    return { ...meta, diskPath: join(dir, "disk.img") };
  }

  /** Installs an extraction directory (holding disk.img) as the disk of `meta.manifestDigest`, atomically. */
  async commitDisk(stagingDir: string, meta: DiskMeta): Promise<CachedDisk> {
    await chmod(join(stagingDir, "disk.img"), 0o444);
    await writeFile(join(stagingDir, "meta.json"), JSON.stringify(meta));
    const dir = this.diskDir(meta.manifestDigest);
    try {
      await rename(stagingDir, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
      await rm(stagingDir, { recursive: true, force: true }); // another process won the race: same content
    }
    return { ...meta, diskPath: join(dir, "disk.img") };
  }

  // --- pins ----------------------------------------------------------------------------------------------------

  /** Marks the image `manifestDigest` in use by the VMI `uid` (on disk: survives restarts). A VMI may pin several. */
  async pin(uid: string, manifestDigest: string): Promise<void> {
    if (!UID_RE.test(uid)) throw new Error(`invalid pin owner "${uid}"`);
    const hex = hexOf(manifestDigest);
    await this.init();
    await mkdir(join(this.root, "pins", uid), { recursive: true });
    await atomicWrite(join(this.root, "pins", uid), this.tmpDir, hex, manifestDigest);
  }

  /** Drops the VMI's pin of one image, or of all its images when `manifestDigest` is omitted (idempotent). */
  async unpin(uid: string, manifestDigest?: string): Promise<void> {
    if (!UID_RE.test(uid)) throw new Error(`invalid pin owner "${uid}"`);
    if (manifestDigest === undefined) await rm(join(this.root, "pins", uid), { recursive: true, force: true });
    else await unlink(join(this.root, "pins", uid, hexOf(manifestDigest))).catch(enoent);
  }

  /** All pins: VMI uid → manifest digests. */
  async pins(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    const uids = (await readdir(join(this.root, "pins")).catch(enoent)) ?? [];
    for (const uid of uids) {
      const hexes = (await readdir(join(this.root, "pins", uid)).catch(() => undefined)) ?? [];
      const digests = hexes.map((h) => `sha256:${h}`).filter(isDigest);
      if (digests.length) out.set(uid, digests);
    }
    return out;
  }

  // --- garbage collection ---------------------------------------------------------------------------------------

  /**
   * Size-bounded LRU collection: removes least-recently-used images (disk, manifest, blobs no other kept image
   * uses) until the cache holds at most `maxBytes`. Never removes a pinned image or one being pulled. Also removes
   * unreferenced blobs and temp files older than `tmpMaxAgeMs`.
   */
  async gc(opts: { maxBytes: number; tmpMaxAgeMs?: number }): Promise<{ removed: string[]; bytes: number }> {
    await this.init();
    const now = Date.now();
    for (const n of await readdir(this.tmpDir)) {
      const st = await stat(join(this.tmpDir, n)).catch(enoent);
      if (st && now - st.mtimeMs > (opts.tmpMaxAgeMs ?? 3_600_000))
        await rm(join(this.tmpDir, n), { recursive: true, force: true });
    }
    const protectedDigests = new Set([...[...(await this.pins()).values()].flat(), ...this.active.keys()]);
    interface Img {
      digest: string;
      lastUsed: number;
      diskBytes: number;
      blobs: string[];
    }
    const images: Img[] = [];
    for (const hex of await readdir(join(this.root, "manifests"))) {
      const digest = `sha256:${hex}`;
      if (!isDigest(digest)) continue;
      const raw = await this.getManifest(digest);
      let blobs: string[] = [];
      try {
        const m = JSON.parse(String(raw)) as { config?: { digest: string }; layers?: { digest: string }[] };
        blobs = [m.config?.digest, ...(m.layers ?? []).map((l) => l.digest)].filter(
          (d): d is string => !!d && isDigest(d),
        );
      } catch {}
      const metaSt = await stat(join(this.diskDir(digest), "meta.json")).catch(enoent);
      const diskSt = await stat(join(this.diskDir(digest), "disk.img")).catch(enoent);
      images.push({ digest, lastUsed: metaSt?.mtimeMs ?? 0, diskBytes: diskSt?.size ?? 0, blobs });
    }
    const blobSizes = new Map<string, number>();
    for (const hex of await readdir(join(this.root, "blobs", "sha256"))) {
      const st = await stat(join(this.root, "blobs", "sha256", hex)).catch(enoent);
      if (st) blobSizes.set(`sha256:${hex}`, st.size);
    }
    const removed: string[] = [];
    const referenced = (kept: Img[]): Set<string> => new Set(kept.flatMap((i) => i.blobs));
    // Blobs no manifest refers to (and no download is producing) go first.
    let kept = images;
    for (const [d] of blobSizes) {
      if (!referenced(kept).has(d) && !this.blobFlights.has(d)) {
        await unlink(this.blobPath(d)).catch(enoent);
        blobSizes.delete(d);
      }
    }
    const total = (): number =>
      kept.reduce((s, i) => s + i.diskBytes, 0) + [...blobSizes.values()].reduce((s, n) => s + n, 0);
    const candidates = images.filter((i) => !protectedDigests.has(i.digest)).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const img of candidates) {
      if (total() <= opts.maxBytes) break;
      kept = kept.filter((i) => i !== img);
      await rm(this.diskDir(img.digest), { recursive: true, force: true });
      await unlink(join(this.root, "manifests", hexOf(img.digest))).catch(enoent);
      const still = referenced(kept);
      for (const b of img.blobs) {
        if (!still.has(b) && !this.blobFlights.has(b)) {
          await unlink(this.blobPath(b)).catch(enoent);
          blobSizes.delete(b);
        }
      }
      removed.push(img.digest);
    }
    for (const f of await readdir(join(this.root, "refs"))) {
      const txt = await readFile(join(this.root, "refs", f), "utf8").catch(enoent);
      if (txt && removed.includes((JSON.parse(txt) as { digest: string }).digest))
        await unlink(join(this.root, "refs", f)).catch(enoent);
    }
    return { removed, bytes: total() };
  }
}
