// The cluster's KubeVirt settings as components read them: the `kubevirt/kubevirt` object through an informer,
// merged over api/'s defaults (KubeVirt's virt-config ClusterConfig). Without the object (not created yet, or
// deleted) the defaults are in effect.
import type { effectiveConfiguration, KubeVirt, KubeVirtConfiguration } from "../api/index.js";
import { type Logger, nullLogger } from "../lib/log.js";
import { Informer } from "./informer.js";
import type { Client } from "./interface.js";
import { resources } from "./resources.js";
import type { KObject } from "./types.js";

type KubeVirtObject = KubeVirt & KObject;

/**
 * What ClusterConfig takes from api/, passed in by its users (which load api/ anyway): importing client/ must not
 * load every schema (virtctl starts once per command; api/ is most of its start-up).
 */
export interface KubeVirtDefaults {
  effectiveConfiguration: typeof effectiveConfiguration;
  KUBEVIRT_NAME: string;
  KUBEVIRT_NAMESPACE: string;
}

export class ClusterConfig {
  readonly informer: Informer<KubeVirtObject>;
  readonly #log: Logger;
  readonly #listeners: ((cfg: KubeVirtConfiguration) => void)[] = [];
  #rv: string | undefined;
  #current: KubeVirtConfiguration;
  readonly #api: KubeVirtDefaults;

  constructor(client: Client, api: KubeVirtDefaults, o: { log?: Logger } = {}) {
    this.#api = api;
    this.#current = api.effectiveConfiguration(undefined);
    const { KUBEVIRT_NAME, KUBEVIRT_NAMESPACE } = api;
    this.#log = o.log ?? nullLogger;
    this.informer = new Informer<KubeVirtObject>(client, resources.kubevirts, {
      namespace: KUBEVIRT_NAMESPACE,
      fieldSelector: `metadata.name=${KUBEVIRT_NAME}`,
      log: this.#log,
    });
    const changed = (): void => this.#refresh();
    this.informer.addEventHandler({ onAdd: changed, onUpdate: changed, onDelete: changed });
  }

  /** The configuration in effect now (defaulted; never undefined). */
  get current(): KubeVirtConfiguration {
    return this.#current;
  }

  /** Called with the new configuration after every change of the object. */
  onChange(fn: (cfg: KubeVirtConfiguration) => void): void {
    this.#listeners.push(fn);
  }

  start(): void {
    this.informer.start();
  }

  waitForSync(): Promise<void> {
    return this.informer.waitForSync();
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  #refresh(): void {
    const { effectiveConfiguration, KUBEVIRT_NAME, KUBEVIRT_NAMESPACE } = this.#api;
    const kv = this.informer.getByName(KUBEVIRT_NAMESPACE, KUBEVIRT_NAME);
    const rv = kv?.metadata.resourceVersion;
    if (rv === this.#rv) return;
    this.#rv = rv;
    this.#current = effectiveConfiguration(kv);
    this.#log.info("cluster configuration", {
      kind: "KubeVirt",
      ns: KUBEVIRT_NAMESPACE,
      name: KUBEVIRT_NAME,
      rv: rv ?? null,
    });
    for (const fn of this.#listeners) fn(this.#current);
  }
}
