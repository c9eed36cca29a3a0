// Host-local pod IP allocation, restart-safe: one file per allocated address, named by the address and holding the
// pod uid (as CNI's host-local plugin does). Creating the file with O_EXCL makes two allocations of one address
// impossible, even across processes; allocation for a uid that already holds an address returns that address.
import { link, mkdir, open, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Cidr, formatCidr, formatIpv4, parseIpv4, podRange } from "./cidr.js";
import { validateUid } from "./names.js";

const IP_FILE = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
/** host-local's round-robin cursor: the last address handed out (its file name is CNI's). */
export const LAST_RESERVED = "last_reserved_ip.0";

export class IpExhaustedError extends Error {
  constructor(cidr: Cidr) {
    super(`no free pod IP left in ${formatCidr(cidr)}`);
    this.name = "IpExhaustedError";
  }
}

export class HostLocalIpam {
  readonly dir: string;
  readonly cidr: Cidr;

  /** `dir` is owned by this allocator (e.g. DATA/network/ipam). */
  constructor(dir: string, cidr: Cidr) {
    this.dir = dir;
    this.cidr = cidr;
  }

  /** Every allocation on disk: address → uid. Addresses outside the CIDR (an old podCIDR) are listed too. */
  async list(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return out;
      throw e;
    }
    for (const name of names) {
      if (!IP_FILE.test(name)) continue;
      try {
        const uid = (await readFile(join(this.dir, name), "utf8")).trim();
        if (uid !== "") out.set(name, uid);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
    }
    return out;
  }

  async lookup(uid: string): Promise<string | undefined> {
    validateUid(uid);
    for (const [ip, owner] of await this.list()) if (owner === uid) return ip;
    return undefined;
  }

  /** Idempotent: the same uid always gets the address it already holds. */
  async allocate(uid: string): Promise<string> {
    validateUid(uid);
    const taken = await this.list();
    for (const [ip, owner] of taken) if (owner === uid) return ip;
    await mkdir(this.dir, { recursive: true });
    const { first, last } = podRange(this.cidr);
    // Round-robin from after the last address handed out, as host-local does: a just-freed address is reused last,
    // so neighbours that still cache its old MAC (the node bridge, other pods) have long forgotten it.
    const prev = await readFile(join(this.dir, LAST_RESERVED), "utf8").then(
      (t) => {
        try {
          return parseIpv4(t.trim());
        } catch {
          return undefined;
        }
      },
      () => undefined,
    );
    const start = prev !== undefined && prev >= first && prev < last ? prev + 1 : first;
    const size = last - first + 1;
    for (let k = 0; k < size; k++) {
      const n = first + ((start - first + k) % size);
      const ip = formatIpv4(n);
      if (taken.has(ip)) continue;
      // Write the uid to a private file, then hard-link it to the address: the link either fails (taken) or makes
      // a complete record appear at once, so no reader ever sees a half-written allocation.
      const tmp = join(this.dir, `.${uid}.${process.pid}.tmp`);
      const fh = await open(tmp, "w", 0o644);
      try {
        await fh.writeFile(`${uid}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await link(tmp, join(this.dir, ip));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") continue;
        throw e;
      } finally {
        await unlink(tmp).catch(() => {});
      }
      // Only a hint (a lost update just means a lower start next time): written atomically, never synced.
      const cursor = join(this.dir, `.${LAST_RESERVED}.${process.pid}.${uid}`);
      await writeFile(cursor, `${ip}\n`)
        .then(() => rename(cursor, join(this.dir, LAST_RESERVED)))
        .catch(() => unlink(cursor).catch(() => {}));
      return ip;
    }
    throw new IpExhaustedError(this.cidr);
  }

  /** Idempotent: releasing a uid that holds nothing does nothing. */
  async release(uid: string): Promise<void> {
    validateUid(uid);
    for (const [ip, owner] of await this.list()) {
      if (owner !== uid) continue;
      parseIpv4(ip);
      await unlink(join(this.dir, ip)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw e;
      });
    }
  }
}
