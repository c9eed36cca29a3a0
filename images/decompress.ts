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
  return { stream: decodeAs(src, compression), compression };
}

function decodeAs(src: Readable, compression: Compression): Readable {
  if (compression === "none") return src;
  if (compression === "gzip") {
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    pipeline(src, createGunzip({ chunkSize: 1 << 20 }), out, () => {});
    return out;
  }
  return zstdDecode(src);
}

/** Decodes a layer arriving as a stream (e.g. while it downloads), detecting the compression from its first bytes. */
export function decodeLayerStream(src: Readable): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  let started = false;
  const first = (): void => {
    const head = src.read() as Buffer | null;
    if (head === null) {
      if (!started) src.once("readable", first);
      return;
    }
    started = true;
    src.unshift(head);
    pipeline(decodeAs(src, detectCompression(head)), out, (err) => {
      if (err) out.destroy(err);
    });
  };
  src.once("error", (e) => out.destroy(e));
  src.once("end", () => {
    if (!started) out.end();
  });
  first();
  return out;
}

/** Decodes a zstd stream with the `zstd` binary (`zstd -d -c -q`). A non-zero exit errors the output stream. */
export function zstdDecode(src: Readable): Readable {
  return toolDecode("zstd", src);
}

/**
 * Decodes a stream with a decompressor binary (`zstd`/`xz`/`gzip` `-d -c -q`, argv only), as one stream: a non-zero
 * exit errors the output, and closing the output kills the tool.
 */
export function toolDecode(tool: "zstd" | "xz" | "gzip", src: Readable): Readable {
  const child = spawn(tool, ["-d", "-c", "-q"], { stdio: ["pipe", "pipe", "pipe"] });
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
    else out.destroy(new Error(`${tool} failed (${code ?? sig}): ${stderr.trim()}`));
  });
  out.on("close", () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return out;
}
