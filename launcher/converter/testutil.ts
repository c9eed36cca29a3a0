// Helpers for the configurators' table tests: a minimal VMI, a context, and running one configurator.
import type { VirtualMachineInstance } from "../../api/index.js";
import type { StatusCause } from "../../lib/errors.js";
import type { Domain } from "../domain/index.js";
import type { ConverterContext } from "./context.js";
import { baseDomain } from "./convert.js";
import type { Configure } from "./types.js";

type Spec = VirtualMachineInstance["spec"];
type DomainSpecIn = Spec["domain"];

/** newVmi({ domain: { memory: { guest: "128Mi" } } }) — KubeVirt's libvmi in miniature. */
export function newVmi(
  spec: Partial<Omit<Spec, "domain">> & { domain?: Partial<DomainSpecIn> } = {},
): VirtualMachineInstance {
  const { domain, ...rest } = spec;
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "testvmi", namespace: "ns", uid: "11111111-2222-4333-8444-555555555555" },
    spec: { ...rest, domain: { devices: {}, ...domain } },
  };
}

export function newContext(over: Partial<ConverterContext> = {}): ConverterContext {
  return {
    arch: "x86_64",
    kvm: false,
    volumes: {},
    interfaces: {},
    serialSocket: "/pod/sockets/serial0",
    serialLog: "/pod/serial0.log",
    vncSocket: "/pod/sockets/vnc",
    ...over,
  };
}

/** Runs one configurator over the base domain (optionally pre-modified). */
export function apply(
  configure: Configure,
  vmi: VirtualMachineInstance,
  ctx: ConverterContext = newContext(),
  pre: (d: Domain) => Domain = (d) => d,
): { dom: Domain; problems: StatusCause[]; fields: string[] } {
  const problems: StatusCause[] = [];
  const dom = configure({ vmi, ctx, problems }, pre(baseDomain(ctx)));
  return { dom, problems, fields: problems.map((p) => p.field ?? "") };
}
