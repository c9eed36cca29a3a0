export {
  BOUND_DIRS,
  bindInstanceDirs,
  instanceLayout,
  prepareInstance,
  type RunningDaemon,
  saveGoldenCache,
  startDaemon,
} from "./daemon.js";
export { FakeHypervisor } from "./fake.js";
export { LibvirtHypervisor } from "./libvirt.js";
export { LibvirtError, RemoteConnection } from "./rpc.js";
export * from "./types.js";
export { parseDomstate, VirshHypervisor } from "./virsh.js";
