#!/usr/bin/env node
// virtctl: KubeVirt's CLI verbs against the API named by the kubeconfig, like kubectl.
import { buildProgram, processContext } from "../virtctl/index.js";

const program = buildProgram(processContext()).version("0.1.0", "--client-version");
await program.parseAsync(process.argv);
