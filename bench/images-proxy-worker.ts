// The bench's counting proxy, in its own process so its work does not share the pulling client's event loop
// (skopeo, the baseline, runs in its own process too). Driven over the IPC channel of child_process.fork.
import { startFaultProxy } from "../images/testing/fault-proxy.js";

const upstream = process.argv[2];
if (!upstream || !process.send) throw new Error("usage: fork(images-proxy-worker.ts, [upstream])");
const send = (m: unknown): void => void process.send!(m);
const proxy = await startFaultProxy(upstream);
process.on("message", (m: { cmd: "reset" | "stats" | "close"; id: number }) => {
  if (m.cmd === "reset") proxy.reset();
  if (m.cmd === "close") void proxy.close().then(() => send({ id: m.id }));
  else send({ id: m.id, requests: proxy.requests, blobBytes: proxy.blobBytes() });
});
process.on("disconnect", () => void proxy.close().then(() => process.exit(0)));
send({ id: 0, host: proxy.host });
