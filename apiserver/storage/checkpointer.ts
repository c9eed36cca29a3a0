// WAL checkpoints off the event loop. A checkpoint copies the WAL's pages into the database file and, with
// synchronous=NORMAL, fsyncs both files: 10-50 ms on this machine. SQLite's automatic checkpoint runs inside the
// COMMIT that crosses its threshold (1000 WAL pages), so that commit's requests waited for both fsyncs. Here a worker
// thread with its own connection runs PASSIVE checkpoints (they never block the writer) every `intervalMs`; the
// writer's automatic checkpoint stays as a backstop at a much larger WAL size, should the worker fall behind.
// Durability is unchanged: a committed transaction is in the WAL whether or not it was checkpointed yet.
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** WAL pages after which the writer checkpoints by itself (the backstop); 4 KiB pages: 64 MiB. */
export const BACKSTOP_PAGES = 16384;

// The worker's program, plain CommonJS evaluated in the thread (a worker cannot load TypeScript sources under tsx).
// It receives only the database path, the module path of better-sqlite3 and the interval; it runs no other input.
const PROGRAM = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.lib);
const db = new Database(workerData.path);
db.pragma("busy_timeout = 0");
const tick = () => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch {
    // busy or closed: the next tick tries again
  }
};
const timer = setInterval(tick, workerData.intervalMs);
parentPort.on("message", (m) => {
  if (m !== "close") return;
  clearInterval(timer);
  try {
    db.close();
  } catch {}
  parentPort.close();
});
`;

export class Checkpointer {
  readonly #worker: Worker;
  #closed = false;
  /** settles when the thread has closed its connection and ended (it may still touch -wal/-shm until then) */
  readonly exited: Promise<void>;

  constructor(path: string, intervalMs = 250) {
    const lib = createRequire(import.meta.url).resolve("better-sqlite3");
    this.#worker = new Worker(PROGRAM, { eval: true, workerData: { path, lib, intervalMs } });
    this.#worker.unref();
    this.exited = new Promise((resolve) => this.#worker.once("exit", () => resolve()));
    // a failing checkpointer costs only latency (the backstop checkpoints); never the process
    this.#worker.on("error", () => {});
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // held until it has closed its connection, so whoever awaits `exited` is not left with an empty event loop
    this.#worker.ref();
    this.#worker.postMessage("close");
  }
}
