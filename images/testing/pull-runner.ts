// Benchmark helper: a long-lived process (like the node agent) that pulls on request over the fork IPC channel and
// reports the time from request to a verified, extracted disk. Run from dist/ with plain node.
import { RegistryHealth } from "../breaker.js";
import { pullContainerDisk } from "../pull.js";

interface PullRequest {
  id: number;
  ref: string;
  cacheDir: string;
}

if (!process.send) throw new Error("pull-runner must be started with child_process.fork");
process.on("message", (m: PullRequest) => {
  const t0 = performance.now();
  pullContainerDisk(m.ref, { cacheDir: m.cacheDir, health: new RegistryHealth() }).then(
    (r) =>
      process.send!({
        id: m.id,
        ms: performance.now() - t0,
        virtualSize: r.virtualSize,
        downloadedBytes: r.downloadedBytes,
      }),
    (e: Error) => process.send!({ id: m.id, error: e.message }),
  );
});
process.on("disconnect", () => process.exit(0));
process.send({ id: 0, ready: true });
