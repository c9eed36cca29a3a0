// QEMU's user (libvirt's qemu.conf user: `libvirt-qemu`, group `kvm` on Debian) and whether it can reach a path:
// QEMU opens disks, overlays and sockets below tsvirt's data directory, so every directory on the way must be
// traversable by that user. tsvirt makes its own directories traversable for QEMU's group only (chgrp + g+x, on
// directories whose group bits grant nothing, so no one loses access) and refuses to start, in one line, when a
// directory it does not own (an ancestor of the data dir, such as /root) blocks the way.
import { chmod, chown, readFile, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";

export interface QemuUser {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups (libvirt starts QEMU with the user's group list). */
  groups: number[];
}

/** Pure: QEMU's user from /etc/passwd and /etc/group text; root when there is no libvirt-qemu user. */
export function qemuUserFrom(passwd: string, group: string, name = "libvirt-qemu"): QemuUser {
  const line = passwd.split("\n").find((l) => l.startsWith(`${name}:`));
  if (!line) return { name: "root", uid: 0, gid: 0, groups: [0] };
  const f = line.split(":");
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  const groups = new Set([gid]);
  for (const g of group.split("\n")) {
    const [gname, , id, members] = g.split(":");
    if (gname === undefined || id === undefined) continue;
    if ((members ?? "").split(",").includes(name)) groups.add(Number(id));
  }
  return { name, uid, gid, groups: [...groups] };
}

export async function qemuUser(): Promise<QemuUser> {
  const [passwd, group] = await Promise.all([
    readFile("/etc/passwd", "utf8").catch(() => ""),
    readFile("/etc/group", "utf8").catch(() => ""),
  ]);
  return qemuUserFrom(passwd, group);
}

/** Pure: may `u` search (traverse) a directory with this owner and mode? (POSIX permission bits; ACLs not read.) */
export function canTraverse(st: { mode: number; uid: number; gid: number }, u: QemuUser): boolean {
  if (u.uid === 0) return true;
  if (st.uid === u.uid) return (st.mode & 0o100) !== 0;
  if (u.groups.includes(st.gid)) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * Makes `dir` reachable by QEMU's user: every directory from `owned` (tsvirt's own data directory) down to `dir` is
 * made traversable for QEMU's group when it is not; every ancestor above `owned` must already be traversable, else
 * this throws one line naming the directory. Returns the directories it changed. `dir` must exist.
 */
export async function ensureQemuCanReach(dir: string, owned: string, user?: QemuUser): Promise<string[]> {
  const u = user ?? (await qemuUser());
  const target = resolve(dir);
  const root = resolve(owned);
  if (target !== root && !target.startsWith(`${root}/`)) throw new Error(`${target} is not below ${root}`);
  const chain: string[] = [];
  for (let d = target; ; d = dirname(d)) {
    chain.unshift(d);
    if (d === dirname(d)) break;
  }
  const changed: string[] = [];
  for (const d of chain) {
    const st = await stat(d);
    if (canTraverse(st, u)) continue;
    const ours = d === root || d.startsWith(`${root}/`);
    const why = `QEMU's user ${u.name} (uid ${u.uid}) cannot traverse ${d} (mode ${octal(st.mode)}, owner ${st.uid}:${st.gid})`;
    if (!ours) throw new Error(`${why}: choose a --data-dir outside it, or allow it: chmod o+x ${d}`);
    // our directory: QEMU's group gets search (not read) permission; only when the group bits grant nothing now
    if ((st.mode & 0o070) !== 0 && st.gid !== u.gid)
      throw new Error(`${why}: its group ${st.gid} has access, so tsvirt leaves it alone; allow it: chmod o+x ${d}`);
    if (st.uid === u.uid) await chmod(d, (st.mode & 0o7777) | 0o100);
    else {
      await chown(d, st.uid, u.gid);
      await chmod(d, (st.mode & 0o7777) | 0o010);
    }
    changed.push(d);
  }
  return changed;
}
