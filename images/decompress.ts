// Layer decompression by content (magic bytes), not by media type: gzip through node:zlib, zstd through Debian's
// `zstd` binary (Node 20's zlib has none) spawned with an argument array, plain tar as is.
import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { PassThrough, pipeline, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";

export type Compression = "gzip" | "zstd" | "none";

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  return "none";
}

/** Opens a layer file as a stream of uncompressed tar bytes. Errors of the decoder surface on the stream. */
export async function openLayer(path: string): Promise<{ stream: Readable; compression: Compression }> {
  const fh = await open(path, "r");
  const head = Buffer.alloc(4);
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  const compression = detectCompression(head);
  const src = createReadStream(path, { highWaterMark: 1 << 20 });
  if (compression === "none") return { stream: src, compression };
  if (compression === "gzip") {
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    pipeline(src, createGunzip({ chunkSize: 1 << 18 }), out, () => {});
    return { stream: out, compression };
  }
  return { stream: zstdDecode(src), compression };
}

/** Decodes a zstd stream with the `zstd` binary (`zstd -d -c -q`). A non-zero exit errors the output stream. */
export function zstdDecode(src: Readable): Readable {
  const child = spawn("zstd", ["-d", "-c", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString("utf8");
  });
  src.on("error", (e) => {
    child.kill("SIGKILL");
    out.destroy(e);
  });
  child.stdin.on("error", () => {});
  src.pipe(child.stdin);
  child.stdout.pipe(out, { end: false });
  child.on("error", (e) => out.destroy(e));
  child.on("close", (code, sig) => {
    if (code === 0) out.end();
    else out.destroy(new Error(`zstd failed (${code ?? sig}): ${stderr.trim()}`));
  });
  out.on("close", () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return out;
}
