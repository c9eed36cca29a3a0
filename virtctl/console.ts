// virtctl console VMI: a WebSocket to .../virtualmachineinstances/VMI/console (subprotocol plain.kubevirt.io). On a
// terminal, stdin goes raw and Ctrl+] ends the session; otherwise bytes pass through unchanged both ways. The client
// pings every 15 s so idle sessions survive proxies. While the VMI is not running yet it retries until --timeout.

import type { Readable, Writable } from "node:stream";
import type { Command } from "commander";
import type WebSocket from "ws";
import { type ClientConfig, toStatusError } from "../client/index.js";
import type { StatusError } from "../lib/errors.js";
import { type Io, runVerb, type VerbContext } from "./context.js";

export const CONSOLE_SUBPROTOCOL = "plain.kubevirt.io";
export const ESCAPE_BYTE = 0x1d; // Ctrl+]
export const PING_INTERVAL_MS = 15_000;

/** The WebSocket URL of a VMI stream subresource (console, vnc). */
export function streamUrl(cfg: ClientConfig, ns: string, name: string, stream: "console" | "vnc"): string {
  const base = cfg.server.replace(/^http/, "ws").replace(/\/+$/, "");
  return `${base}/apis/subresources.kubevirt.io/v1/namespaces/${encodeURIComponent(ns)}/virtualmachineinstances/${encodeURIComponent(name)}/${stream}`;
}

export function consoleUrl(cfg: ClientConfig, ns: string, name: string): string {
  return streamUrl(cfg, ns, name, "console");
}

export interface ConsoleStreams {
  stdin: Readable & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: Writable;
  io: Io;
}

/** A message's bytes, whatever shape ws delivered them in. */
export function messageBytes(data: Buffer | Buffer[] | ArrayBuffer): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/**
 * Opens a stream socket; rejects with the server's StatusError when the upgrade is refused. `onMessage` is attached
 * before the upgrade completes: bytes the server sends at once (a banner, console history) can arrive in the same
 * read as the 101 response and would be lost to a listener attached after `open`.
 */
export async function dialStream(cfg: ClientConfig, url: string, onMessage?: (b: Buffer) => void): Promise<WebSocket> {
  // (loaded when a stream is dialled, not at every virtctl start)
  const { default: WebSocket } = await import("ws");
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { "User-Agent": "virtctl" };
    if (cfg.token) headers.Authorization = `Bearer ${cfg.token}`;
    const ws = new WebSocket(url, CONSOLE_SUBPROTOCOL, {
      headers,
      ...(cfg.ca ? { ca: cfg.ca } : {}),
      ...(cfg.cert ? { cert: cfg.cert } : {}),
      ...(cfg.key ? { key: cfg.key } : {}),
      rejectUnauthorized: !cfg.insecureSkipTLSVerify,
      handshakeTimeout: 30_000,
    });
    if (onMessage) ws.on("message", (d: Buffer | Buffer[] | ArrayBuffer) => onMessage(messageBytes(d)));
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => reject(toStatusError(res.statusCode ?? 0, Buffer.concat(chunks).toString("utf8"))));
    });
    ws.once("error", (err) => reject(err));
  });
}

function retryable(err: unknown): boolean {
  const code = (err as StatusError).code;
  return code === 409 || code === 503 || code === 502 || (err as NodeJS.ErrnoException).code === "ECONNREFUSED";
}

/** Runs one console session to its end (escape, stdin EOF, or the server closing). */
export async function consoleSession(
  cfg: ClientConfig,
  ns: string,
  name: string,
  s: ConsoleStreams,
  opts: { timeoutMs: number; retryMs?: number },
): Promise<void> {
  const url = consoleUrl(cfg, ns, name);
  const deadline = Date.now() + opts.timeoutMs;
  let ws: WebSocket | undefined;
  let waited = false;
  while (!ws) {
    try {
      ws = await dialStream(cfg, url, (b) => s.stdout.write(b));
    } catch (err) {
      if (!retryable(err) || Date.now() >= deadline) throw err;
      if (!waited) s.io.err(`Waiting for the VMI ${name} to be ready: ${(err as Error).message}\n`);
      waited = true;
      await new Promise((r) => setTimeout(r, opts.retryMs ?? 1000));
    }
  }
  const sock = ws;
  const tty = s.stdin.isTTY === true && typeof s.stdin.setRawMode === "function";
  s.io.err(`Successfully connected to ${name} console. The escape sequence is ^]\n`);
  await new Promise<void>((resolve, reject) => {
    const ping = setInterval(() => {
      if (sock.readyState === sock.OPEN) sock.ping();
    }, PING_INTERVAL_MS);
    const cleanup = () => {
      clearInterval(ping);
      s.stdin.off("data", onData);
      s.stdin.off("end", onEnd);
      if (tty) s.stdin.setRawMode?.(false);
      s.stdin.pause();
    };
    const onData = (chunk: Buffer | string) => {
      const buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
      if (tty) {
        const i = buf.indexOf(ESCAPE_BYTE);
        if (i >= 0) {
          if (i > 0) sock.send(buf.subarray(0, i));
          s.io.err("\r\n");
          sock.close(1000);
          return;
        }
      }
      sock.send(buf);
    };
    const onEnd = () => sock.close(1000);
    if (tty) s.stdin.setRawMode?.(true);
    s.stdin.on("data", onData);
    s.stdin.on("end", onEnd);
    s.stdin.resume();
    sock.on("close", () => {
      cleanup();
      resolve();
    });
    sock.on("error", (err) => {
      cleanup();
      reject(err);
    });
  });
}

export function registerConsole(program: Command, ctx: VerbContext, streams: () => ConsoleStreams): void {
  program
    .command("console")
    .argument("<vmi>", "the VirtualMachineInstance")
    .description("Connect to a console of a virtual machine instance.")
    .option("--timeout <minutes>", "minutes to wait for the VMI to be ready", "5")
    .action(async (name: string, f: { timeout: string }, cmd: Command) =>
      runVerb(ctx, cmd, (s) =>
        consoleSession(s.config, s.namespace, name, streams(), {
          timeoutMs: Math.max(0, Number(f.timeout) || 0) * 60_000,
        }),
      ),
    );
}
