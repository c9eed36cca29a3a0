// The pod network of one node: per-node namespace and bridge, per-pod namespaces with the masquerade binding, and
// the cluster fabric that routes every node's podCIDR between the node namespaces.
export { type Cidr, contains, formatCidr, gatewayOf, parseCidr, podRange } from "./cidr.js";
export { findDhcp, renderUdhcpdConfig } from "./dhcp.js";
export { connectFromNetns } from "./dial.js";
export { CommandError, type CommandResult, inNetns, type RunCommand, runCommand } from "./exec.js";
export {
  deleteFabric,
  diffRoutes,
  ensureFabric,
  FABRIC_PROTO,
  type FabricRoute,
  type NodeCidr,
  parseRoutes,
  planFabricRoutes,
} from "./fabric.js";
export { HostLocalIpam, IpExhaustedError } from "./ipam.js";
export {
  FABRIC_BRIDGE,
  FABRIC_NODE_IFACE,
  fabricNetns,
  fabricPeer,
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
export {
  masqueradeRules,
  migrationRules,
  type PodAttachment,
  PodNetwork,
  type PodNetworkOptions,
} from "./pod-network.js";
export { FabricRouteSync } from "./route-sync.js";
