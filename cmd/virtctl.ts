#!/usr/bin/env node
// virtctl: KubeVirt's CLI verbs against the API named by the kubeconfig, like kubectl.
import { buildProgram, processContext } from "../virtctl/index.js";
import { onClosedOutput, runCli } from "./cli.js";

const program = buildProgram(processContext()).version("0.1.0", "--client-version");
onClosedOutput(false);
await runCli("virtctl", program);
