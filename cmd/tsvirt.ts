#!/usr/bin/env node
// The operator's binary: `up`, `api`, `controller`, `handler`, `launcher`, `image`. Each component registers its own
// subcommand lazily so a launcher process never loads the API server's code.
import { Command } from "commander";
import { onClosedOutput, runCli } from "./cli.js";
import { registerCommands } from "./commands.js";

const program = new Command("tsvirt").description("KubeVirt's VM lifecycle in TypeScript").version("0.1.0");
registerCommands(program);
onClosedOutput(true);
await runCli("tsvirt", program);
