// The registry list the node agent pulls containerDisks through: the `registries.conf` key of the ConfigMap
// `kubevirt/tsvirt-registries` (containers-registries.conf(5) text) when that ConfigMap exists, followed live by an
// informer on that one object; otherwise the list given by `--registries-conf` (or none). A ConfigMap whose text
// does not parse is ignored with an error in the log (the flag's list applies), the same before and after a restart.
import type { ConfigMap } from "../api/index.js";
import { type Client, Informer, type KObject, type ResourceRef } from "../client/index.js";
import { emptyRegistriesConfig, parseRegistriesConf, type RegistriesConfig } from "../images/index.js";
import { type Logger, nullLogger } from "../lib/log.js";

export const REGISTRIES_CONFIGMAP = { namespace: "kubevirt", name: "tsvirt-registries", key: "registries.conf" };

type ConfigMapObject = KObject & Pick<ConfigMap, "data">;
const configMaps: ResourceRef = {
  group: "",
  version: "v1",
  resource: "configmaps",
  namespaced: true,
  kind: "ConfigMap",
};

/** Pure: the list in force given the ConfigMap (if any) and the flag's list; `error` when the ConfigMap is bad. */
export function registriesFrom(
  cm: Pick<ConfigMap, "data"> | undefined,
  fallback: RegistriesConfig | undefined,
): { config: RegistriesConfig; source: "configmap" | "flag" | "none"; error?: string } {
  const orFallback = fallback
    ? { config: fallback, source: "flag" as const }
    : { config: emptyRegistriesConfig(), source: "none" as const };
  if (!cm) return orFallback;
  const text = cm.data?.[REGISTRIES_CONFIGMAP.key];
  const where = `ConfigMap ${REGISTRIES_CONFIGMAP.namespace}/${REGISTRIES_CONFIGMAP.name}`;
  if (text === undefined) return { ...orFallback, error: `${where} has no key "${REGISTRIES_CONFIGMAP.key}"` };
  try {
    return { config: parseRegistriesConf(text), source: "configmap" };
  } catch (e) {
    return { ...orFallback, error: `${where}: ${(e as Error).message}` };
  }
}

export interface RegistriesSourceOptions {
  client: Client;
  /** The `--registries-conf` list, used while the ConfigMap does not exist. */
  fallback?: RegistriesConfig;
  log?: Logger;
}

/** The live registry list: `current()` resolves once the ConfigMap's informer has synced, then follows it. */
export class RegistriesSource {
  readonly #informer: Informer<ConfigMapObject>;
  readonly #fallback: RegistriesConfig | undefined;
  readonly #log: Logger;
  #last = "";

  constructor(o: RegistriesSourceOptions) {
    this.#fallback = o.fallback;
    this.#log = o.log ?? nullLogger;
    this.#informer = new Informer<ConfigMapObject>(o.client, configMaps, {
      namespace: REGISTRIES_CONFIGMAP.namespace,
      fieldSelector: `metadata.name=${REGISTRIES_CONFIGMAP.name}`,
      ...(o.log ? { log: o.log } : {}),
    });
    const changed = (): void => void this.#report();
    this.#informer.addEventHandler({ onAdd: changed, onUpdate: changed, onDelete: changed });
  }

  start(): void {
    this.#informer.start();
  }

  async stop(): Promise<void> {
    await this.#informer.stop();
  }

  async current(): Promise<RegistriesConfig> {
    await this.#informer.waitForSync();
    return this.#state().config;
  }

  #state(): ReturnType<typeof registriesFrom> {
    const cm = this.#informer.getByName(REGISTRIES_CONFIGMAP.namespace, REGISTRIES_CONFIGMAP.name);
    return registriesFrom(cm, this.#fallback);
  }

  // one log line per change of the list in force (or of its error)
  #report(): void {
    const s = this.#state();
    const line = JSON.stringify([s.source, s.error, s.config]);
    if (line === this.#last) return;
    this.#last = line;
    if (s.error) this.#log.error("registry list: ignoring the ConfigMap", { error: s.error, using: s.source });
    else this.#log.info("registry list in force", { source: s.source, registries: s.config.registries.length });
  }
}
