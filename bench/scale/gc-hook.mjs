// Preloaded (node --expose-gc --import) ONLY into the processes bench:scale starts: on SIGUSR2 it forces a full GC
// and writes the process's RSS (bytes) to $TSVIRT_BENCH_GC_DIR/<pid>.rss, so the bench reads memory after GC.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env.TSVIRT_BENCH_GC_DIR;
if (dir && typeof globalThis.gc === "function") {
  let seq = 0;
  process.on("SIGUSR2", () => {
    globalThis.gc();
    globalThis.gc();
    seq++;
    writeFileSync(join(dir, `${process.pid}.rss`), `${seq} ${process.memoryUsage().rss}\n`);
  });
}
