// Runs the virtctl command tree in-process against a FakeClient, capturing output and the exit code.
import { FakeClient } from "../client/index.js";
import type { ConsoleStreams } from "./console.js";
import { buildProgram } from "./index.js";

export interface Run {
  out: string;
  err: string;
  code: number;
  client: FakeClient;
  namespaces: (string | undefined)[];
}

export async function runVirtctl(
  args: string[],
  client = new FakeClient(),
  streams?: () => ConsoleStreams,
): Promise<Run> {
  const r: Run = { out: "", err: "", code: 0, client, namespaces: [] };
  const program = buildProgram(
    {
      io: { out: (s) => (r.out += s), err: (s) => (r.err += s) },
      session: (g) => {
        r.namespaces.push(g.namespace);
        return {
          client,
          config: { server: "http://127.0.0.1:1", namespace: g.namespace ?? "default" },
          namespace: g.namespace ?? "default",
          close: () => {},
        };
      },
      exit: (c) => {
        r.code = c;
      },
    },
    streams,
  );
  program.exitOverride();
  try {
    await program.parseAsync(["node", "virtctl", ...args]);
  } catch (err) {
    r.code = (err as { exitCode?: number }).exitCode ?? 1;
  }
  return r;
}
