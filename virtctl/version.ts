// virtctl version: the client's version, and the server's from GET /apis/subresources.kubevirt.io/v1/version.
import type { Command } from "commander";
import type { Client } from "../client/index.js";
import { type Io, runVerb, type VerbContext } from "./context.js";

export const CLIENT_VERSION = {
  gitVersion: "v1.8.0-tsvirt.0.1.0",
  gitCommit: "",
  gitTreeState: "clean",
  buildDate: "",
  goVersion: `node${process.versions.node}`,
  compiler: "tsc",
  platform: `${process.platform}/${process.arch === "x64" ? "amd64" : process.arch}`,
};

export type VersionInfo = typeof CLIENT_VERSION;

function render(v: Partial<VersionInfo>): string {
  const q = (s: string | undefined) => JSON.stringify(s ?? "");
  return `version.Info{GitVersion:${q(v.gitVersion)}, GitCommit:${q(v.gitCommit)}, GitTreeState:${q(v.gitTreeState)}, BuildDate:${q(v.buildDate)}, GoVersion:${q(v.goVersion)}, Compiler:${q(v.compiler)}, Platform:${q(v.platform)}}`;
}

export async function version(client: Client | undefined, io: Io): Promise<void> {
  io.out(`Client Version: ${render(CLIENT_VERSION)}\n`);
  if (!client) return;
  const server = await client.getPath<Partial<VersionInfo>>("/apis/subresources.kubevirt.io/v1/version");
  io.out(`Server Version: ${render(server)}\n`);
}

export function registerVersion(program: Command, ctx: VerbContext): void {
  program
    .command("version")
    .description("Print the client and server version information.")
    .option("--client", "client version only")
    .action(async (f: { client?: boolean }, cmd: Command) => {
      if (f.client) return version(undefined, ctx.io);
      return runVerb(ctx, cmd, (s) => version(s.client, ctx.io));
    });
}
