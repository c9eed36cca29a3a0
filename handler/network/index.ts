// The pod network of one node: per-node namespace and bridge, per-pod namespaces with the masquerade binding.
export { type Cidr, contains, formatCidr, gatewayOf, parseCidr, podRange } from "./cidr.js";
export { findDhcp, renderUdhcpdConfig } from "./dhcp.js";
export { CommandError, type CommandResult, inNetns, type RunCommand, runCommand } from "./exec.js";
export { HostLocalIpam, IpExhaustedError } from "./ipam.js";
export {
  MASQ_BRIDGE,
  MASQ_GATEWAY,
  MASQ_GUEST,
  MASQ_TAP,
  NODE_BRIDGE,
  nodeNetns,
  podNetns,
  podVeth,
  validateNodeName,
  validateUid,
} from "./names.js";
export { masqueradeRules, type PodAttachment, PodNetwork, type PodNetworkOptions } from "./pod-network.js";
