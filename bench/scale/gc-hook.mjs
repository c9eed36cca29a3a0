// Preloaded (node --expose-gc --import) ONLY into the processes bench:scale starts: on SIGUSR2 it forces full GCs
// (V8's "last resort" flavour where the engine has it: several passes, pooled pages released) and writes
// "<seq> <rss> <heapUsed> <heapTotal> <external>" (bytes) to $TSVIRT_BENCH_GC_DIR/<pid>.rss, so the bench reads
// memory after GC. With a "snapshot" file in that directory it also writes <pid>.heapsnapshot there first.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.TSVIRT_BENCH_GC_DIR;
if (dir && typeof globalThis.gc === "function") {
  let seq = 0;
  const fullGc = () => {
    try {
      globalThis.gc({ type: "major", execution: "sync", flavor: "last-resort" });
    } catch {
      globalThis.gc();
      globalThis.gc();
    }
  };
  process.on("SIGUSR2", async () => {
    fullGc();
    // BENCH_HEAP_SNAPSHOT: the bench drops a "snapshot" file to ask for a heap snapshot with this reading.
    if (existsSync(join(dir, "snapshot"))) {
      const { writeHeapSnapshot } = await import("node:v8");
      writeHeapSnapshot(join(dir, `${process.pid}.heapsnapshot`));
      const after = process.memoryUsage();
      writeFileSync(join(dir, `${process.pid}.after-snapshot`), `${after.rss} ${after.heapUsed}\n`);
    }
    seq++;
    const m = process.memoryUsage();
    writeFileSync(join(dir, `${process.pid}.rss`), `${seq} ${m.rss} ${m.heapUsed} ${m.heapTotal} ${m.external}\n`);
  });
}
