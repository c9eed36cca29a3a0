// Preloaded (node --expose-gc --import) ONLY into the processes bench:scale starts: on SIGUSR2 it forces two full GCs
// (the second one first finishes sweeping the first one's garbage: right after a single GC V8 still counts unswept
// dead objects in heapUsed and has not unmapped the pages they free), waits briefly for the background sweeper and
// unmapper, then writes "<seq> <rss> <heapUsed> <heapTotal> <external>" (bytes) to $TSVIRT_BENCH_GC_DIR/<pid>.rss,
// so the bench reads memory after GC. With a "snapshot" file in that directory it also writes <pid>.heapsnapshot.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.TSVIRT_BENCH_GC_DIR;
if (dir && typeof globalThis.gc === "function") {
  let seq = 0;
  process.on("SIGUSR2", async () => {
    globalThis.gc();
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 100));
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
