import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { diskEntryName, extractDiskFiles, readTar, type TarSourceEntry, tarHeader, tarStream } from "./tar.js";

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c);
  return Buffer.concat(parts);
}

/** A pax extended header ('x') whose `path` record overrides the next entry's name. */
function paxHeader(path: string): Buffer {
  const rec = (k: string, v: string): string => {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 2;
    while (`${len}${body}`.length !== len) len = `${len}${body}`.length;
    return `${len}${body}`;
  };
  const data = Buffer.from(rec("path", path));
  const h = tarHeader({ name: "PaxHeaders/x", type: "file", size: data.length });
  h.write("x", 156, "latin1");
  h.write("        ", 148, "latin1");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad]);
}

describe("tar extraction is confined to its target", () => {
  let root: string;
  let target: string;
  const payload = Buffer.from("attacker bytes\n");
  const good = Buffer.alloc(4096, 7);
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "tar-attack-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function extract(entries: TarSourceEntry[], prefix: Buffer = Buffer.alloc(0)): Promise<string[]> {
    target = join(root, `t-${Math.random().toString(36).slice(2)}`, "disk-out");
    await mkdir(join(target, ".."), { recursive: true });
    const tar = Buffer.concat([prefix, await collect(tarStream(entries))]);
    const files = await extractDiskFiles(
      (async function* () {
        yield tar;
      })(),
      target,
    );
    return files.map((f) => f.name).sort();
  }
  async function outsideNames(): Promise<string[]> {
    return (await readdir(join(target, ".."))).filter((n) => n !== "disk-out");
  }
  const legit: TarSourceEntry = { name: "disk/disk.qcow2", type: "file", data: good };

  it("takes a regular file under disk/", async () => {
    assert.deepEqual(await extract([{ name: "disk/", type: "dir" }, legit]), ["disk.qcow2"]);
    assert.deepEqual(await readFile(join(target, "disk.qcow2")), good);
  });

  it("a ../ path writes nothing outside", async () => {
    const got = await extract([
      { name: "../x", type: "file", data: payload },
      { name: "disk/../../x", type: "file", data: payload },
      { name: "disk/../x", type: "file", data: payload },
      legit,
    ]);
    assert.deepEqual(got, ["disk.qcow2"]);
    assert.deepEqual(await outsideNames(), []);
    assert.deepEqual(await readdir(target), ["disk.qcow2"]);
  });

  it("a pax path with ../ writes nothing outside", async () => {
    const got = await extract([legit], paxHeader("disk/../../pax-x"));
    // the pax record renamed the first entry, so it is skipped; nothing else was written
    assert.deepEqual(got, []);
    assert.deepEqual(await outsideNames(), []);
    assert.deepEqual(await readdir(target), []);
  });

  it("an absolute path writes nothing outside", async () => {
    const abs = join(root, "absolute-target");
    const got = await extract([
      { name: abs, type: "file", data: payload },
      { name: `/disk/x`, type: "file", data: payload },
      legit,
    ]);
    assert.deepEqual(got, ["disk.qcow2"]);
    await assert.rejects(stat(abs), { code: "ENOENT" });
    await assert.rejects(stat("/disk/x"), { code: "ENOENT" });
  });

  it("a symlink out of the target, then a file through it, writes nothing outside", async () => {
    const victim = join(root, "victim");
    await writeFile(victim, "original\n");
    const got = await extract([
      { name: "disk/evil", type: "symlink", linkname: victim },
      { name: "disk/evil", type: "file", data: payload },
      { name: "disk", type: "symlink", linkname: root },
      { name: "disk/escape", type: "file", data: payload },
      { name: "disk/hl", type: "hardlink", linkname: victim },
      { name: "disk/hl", type: "file", data: payload },
    ]);
    assert.equal(await readFile(victim, "utf8"), "original\n");
    await assert.rejects(stat(join(root, "escape")), { code: "ENOENT" });
    // links are never created; the plain files land inside the target only
    assert.deepEqual(got, ["escape", "evil", "hl"]);
    for (const n of await readdir(target)) assert.ok((await stat(join(target, n))).isFile());
    assert.deepEqual(await outsideNames(), []);
  });

  it("a device node is not created", async () => {
    const got = await extract([
      { name: "disk/sda", type: "blockdev", devmajor: 8, devminor: 0 },
      { name: "disk/mem", type: "chardev", devmajor: 1, devminor: 1 },
      { name: "disk/fifo", type: "fifo" },
      legit,
    ]);
    assert.deepEqual(got, ["disk.qcow2"]);
    assert.deepEqual(await readdir(target), ["disk.qcow2"]);
    assert.deepEqual(await outsideNames(), []);
  });

  it("rejects a corrupted header", async () => {
    const tar = await collect(tarStream([legit]));
    tar[10] = 0x41;
    await assert.rejects(
      extractDiskFiles(
        (async function* () {
          yield tar;
        })(),
        join(root, "bad"),
      ),
      /checksum/,
    );
  });
});

describe("tar reader", () => {
  it("streams data in small chunks and keeps names with prefix", async () => {
    const long = `disk/${"d".repeat(95)}`;
    const tar = await collect(
      tarStream([
        { name: `${"p/".repeat(60)}f`, type: "file", data: Buffer.from("abc") },
        { name: long, type: "file", data: Buffer.alloc(1000, 1) },
      ]),
    );
    const seen: string[] = [];
    await readTar(
      (async function* () {
        for (let i = 0; i < tar.length; i += 7) yield tar.subarray(i, i + 7);
      })(),
      async (h, data) => {
        let n = 0;
        await data(async (b) => {
          n += b.length;
        });
        seen.push(`${h.name}:${n}`);
      },
    );
    assert.deepEqual(seen, [`${"p/".repeat(60)}f:3`, `${long}:1000`]);
  });
  it("names a disk entry only for disk/NAME", () => {
    assert.equal(diskEntryName("disk/disk.qcow2"), "disk.qcow2");
    assert.equal(diskEntryName("./disk/x.img"), "x.img");
    for (const n of ["disk/", "disk/a/b", "/disk/a", "disk/..", "disk/.wh.a", "other/a", "disk/a\nb"])
      assert.equal(diskEntryName(n), undefined, n);
  });
});
