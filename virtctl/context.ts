// What every virtctl verb shares: kubeconfig handling like kubectl (--kubeconfig, $KUBECONFIG, -n/--namespace, the
// current context's namespace), output streams, and the error contract: `Error: <server message>` and exit code 1.

import type { Command } from "commander";
import { type Client, type ClientConfig, loadConfig, RestClient } from "../client/index.js";

export interface Io {
  out(s: string): void;
  err(s: string): void;
}

export const processIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

export interface GlobalOptions {
  kubeconfig?: string;
  namespace?: string;
  context?: string;
  server?: string;
}

export interface Session {
  client: Client;
  config: ClientConfig;
  namespace: string;
  close(): void;
}

/** How verbs get a client; tests replace it with a FakeClient. */
export type SessionFactory = (opts: GlobalOptions) => Session;

export const restSession: SessionFactory = (opts) => {
  const config = loadConfig({
    ...(opts.kubeconfig ? { kubeconfig: opts.kubeconfig } : {}),
    ...(opts.context ? { context: opts.context } : {}),
    ...(opts.namespace ? { namespace: opts.namespace } : {}),
    ...(opts.server ? { server: opts.server } : {}),
  });
  const client = new RestClient({ ...config, userAgent: "virtctl" });
  return { client, config, namespace: config.namespace, close: () => client.close() };
};

export interface VerbContext {
  io: Io;
  session: SessionFactory;
  /** Sets the process exit code (tests record it instead). */
  exit(code: number): void;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Runs a verb: opens a session, runs it, prints `Error: …` and exits 1 on failure, always closes the session. */
export async function runVerb(ctx: VerbContext, cmd: Command, fn: (s: Session) => Promise<void>): Promise<void> {
  let session: Session | undefined;
  try {
    session = ctx.session(globals(cmd));
    await fn(session);
  } catch (err) {
    ctx.io.err(`Error: ${(err as Error).message}\n`);
    ctx.exit(1);
  } finally {
    session?.close();
  }
}
