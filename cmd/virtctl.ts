#!/usr/bin/env node
// virtctl: KubeVirt's CLI verbs against the API named by the kubeconfig, like kubectl.
import { Command } from "commander";

const program = new Command("virtctl").description("KubeVirt's virtctl, for tsvirt").version("0.1.0");
await program.parseAsync(process.argv);
