// Process entry for bench:scale: N FAKE node agents (fake pod runners, fake launchers) in one process, talking to the
// real API server over HTTP with user agent "virt-handler". Never used by an end-to-end test.
import { RestClient } from "../../../client/index.js";
import { startFakeNodes } from "./fake-node.js";

const server = process.argv[2];
const count = Number(process.argv[3] ?? 10);
if (!server) throw new Error("usage: main.ts SERVER_URL [NODES]");
const client = new RestClient({ server, namespace: "default", userAgent: "virt-handler" });
const agents = await startFakeNodes(client, count);
process.stdout.write(`fake node agents ready: ${agents.map((a) => a.node).join(",")}\n`);
const stop = async (): Promise<void> => {
  await Promise.all(agents.map((a) => a.stop()));
  client.close();
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
