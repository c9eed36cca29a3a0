// How the node agent reaches pods. The agent runs in the host namespace, which has no route to any pod address (pod
// traffic never touches the host's interfaces, and the host sends nothing to pod addresses). Its connections to
// pods, on its own node or another, originate in its node namespace instead: a short-lived helper entered there
// with nsenter carries the bytes between the agent's pipes and one TCP connection; the source address is the
// node's gateway, which every other node routes back through the fabric.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { Duplex } from "node:stream";
import { parseIpv4 } from "./cidr.js";
import { inNetns } from "./exec.js";

// The helper's program: connect, report "connected" on stderr, then relay until both directions end.
const RELAY = [
  'const s = require("node:net").connect({ host: process.argv[1], port: Number(process.argv[2]) });',
  's.on("connect", () => process.stderr.write("connected\\n"));',
  's.on("error", (e) => { process.stderr.write(e.message + "\\n"); process.exit(1); });',
  "process.stdin.pipe(s);",
  "s.pipe(process.stdout);",
  's.on("close", () => process.exit(0));',
].join("\n");

/** The helper's pipes as one stream; destroying it ends the helper (and so the connection). */
class HelperStream extends Duplex {
  private readonly child: ChildProcessWithoutNullStreams;
  constructor(child: ChildProcessWithoutNullStreams) {
    super();
    this.child = child;
    child.stdout.on("data", (d: Buffer) => {
      if (!this.push(d)) child.stdout.pause();
    });
    child.stdout.once("end", () => this.push(null));
    child.stdin.on("error", (e) => this.destroy(e));
  }
  override _read(): void {
    this.child.stdout.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.child.stdin.write(chunk, cb);
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin.end(cb);
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.child.kill("SIGKILL");
    cb(err);
  }
}

/** A TCP connection to host:port made from inside `netns` (a node namespace). Resolves once connected. */
export function connectFromNetns(netns: string, host: string, port: number, timeoutMs = 10_000): Promise<Duplex> {
  parseIpv4(host);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`invalid port ${port}`);
  const [file, ...args] = inNetns(netns, [process.execPath, "-e", RELAY, host, String(port)]) as [string, ...string[]];
  const child = spawn(file, args, { stdio: ["pipe", "pipe", "pipe"] });
  return new Promise((resolve, reject) => {
    let err = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`connect to ${host}:${port} from ${netns}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (d: Buffer): void => {
      err += d.toString();
      if (!err.startsWith("connected\n")) return;
      clearTimeout(timer);
      child.stderr.off("data", onData);
      resolve(new HelperStream(child));
    };
    child.stderr.on("data", onData);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`connect to ${host}:${port} from ${netns}: exit ${code}: ${err.trim()}`));
    });
  });
}
