// The node agent's client of a launcher's command socket (newline-delimited JSON, protocol.ts).
import net from "node:net";
import { type StatusError, statusError } from "../lib/errors.js";
import type {
  DomainInfo,
  MethodName,
  MethodResults,
  MigrateStartParams,
  MigrateStatusResult,
  PrepareMigrationTargetParams,
  PrepareMigrationTargetResult,
  Response,
  WatchEvent,
} from "./protocol.js";

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout | undefined;
}

/** A launcher's error answer, as a Status error: `reason` is the launcher's reason (e.g. "NotFound", "Conflict"). */
export function launcherError(reason: string, message: string): StatusError {
  const code =
    reason === "NotFound"
      ? 404
      : reason === "Conflict" || reason === "UIDMismatch"
        ? 409
        : reason === "BadRequest"
          ? 400
          : 500;
  return statusError(code, reason, message);
}

export class LauncherClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly watches = new Map<number, (e: WatchEvent) => void>();
  private buf = "";
  private closed = false;
  private readonly closeHandlers = new Set<() => void>();

  private constructor(private readonly sock: net.Socket) {
    sock.setEncoding("utf8");
    sock.on("data", (d: string) => this.onData(d));
    sock.on("error", () => {});
    sock.on("close", () => this.handleClose());
  }

  static connect(socketPath: string, timeoutMs = 5000): Promise<LauncherClient> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(socketPath);
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connecting to ${socketPath} timed out`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(t);
        s.off("error", onErr);
        resolve(new LauncherClient(s));
      });
      const onErr = (e: Error): void => {
        clearTimeout(t);
        reject(e);
      };
      s.once("error", onErr);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(fn: () => void): void {
    this.closeHandlers.add(fn);
  }

  call<M extends Exclude<MethodName, "Watch">>(
    method: M,
    params?: unknown,
    opts: { timeoutMs?: number } = {},
  ): Promise<MethodResults[M]> {
    if (this.closed) return Promise.reject(new Error("launcher connection closed"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const p: Pending = { resolve: resolve as (v: unknown) => void, reject };
      if (opts.timeoutMs) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new Error(`launcher ${method} timed out after ${opts.timeoutMs} ms`));
        }, opts.timeoutMs);
      }
      this.pending.set(id, p);
      const req = params === undefined ? { id, method } : { id, method, params };
      this.sock.write(`${JSON.stringify(req)}\n`);
    });
  }

  /** Target side: listen for the migration, create the files QEMU needs, render the destination XML. Idempotent. */
  prepareMigrationTarget(p: PrepareMigrationTargetParams, timeoutMs = 120_000): Promise<PrepareMigrationTargetResult> {
    return this.call("PrepareMigrationTarget", p, { timeoutMs });
  }

  /** Source side: start libvirt's migration (answers at once; a job already running answers its state). */
  migrateStart(p: MigrateStartParams, timeoutMs = 60_000): Promise<MigrateStatusResult> {
    return this.call("MigrateStart", p, { timeoutMs });
  }

  migrateStatus(timeoutMs = 30_000): Promise<MigrateStatusResult> {
    return this.call("MigrateStatus", {}, { timeoutMs });
  }

  migrateAbort(timeoutMs = 30_000): Promise<MethodResults["MigrateAbort"]> {
    return this.call("MigrateAbort", {}, { timeoutMs });
  }

  /** Stream domain events; the first is the current state. Returns a function that stops listening locally. */
  watch(fn: (domain: DomainInfo) => void): () => void {
    const id = this.nextId++;
    this.watches.set(id, (e) => fn(e.domain));
    this.sock.write(`${JSON.stringify({ id, method: "Watch" })}\n`);
    return () => this.watches.delete(id);
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(d: string): void {
    this.buf += d;
    let nl = this.buf.indexOf("\n");
    while (nl >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      nl = this.buf.indexOf("\n");
      if (!line.trim()) continue;
      let msg: Response;
      try {
        msg = JSON.parse(line) as Response;
      } catch {
        continue;
      }
      if ("event" in msg) {
        this.watches.get(msg.id)?.(msg.event);
        continue;
      }
      const p = this.pending.get(msg.id);
      if (!p) continue;
      this.pending.delete(msg.id);
      if (p.timer) clearTimeout(p.timer);
      if ("error" in msg) p.reject(launcherError(msg.error.reason, msg.error.message));
      else p.resolve(msg.result);
    }
  }

  private handleClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(new Error("launcher connection closed"));
    }
    this.pending.clear();
    for (const h of this.closeHandlers) h();
  }
}
