// The node agent's view of images: pull (or find cached) and pin an image for a VMI; release a VMI's pins. The
// registry list and credentials are read per pull, so a changed ConfigMap or Secret needs no restart.
import type { Logger } from "../lib/log.js";
import { ImageCache } from "./cache.js";
import type { Credentials } from "./client.js";
import { type PulledDisk, type PullPolicy, pullContainerDisk } from "./pull.js";
import type { RegistriesConfig } from "./registries-conf.js";

export interface NodeImagePullerOptions {
  cacheDir: string;
  /** The current registry list (e.g. parsed from the ConfigMap kubevirt/tsvirt-registries). */
  registries: () => RegistriesConfig | Promise<RegistriesConfig>;
  /** Credentials for this pull (from the Secrets the list names, or the volume's imagePullSecret). */
  credentials?: (image: string) => Credentials | Promise<Credentials>;
  pullPolicy?: (image: string) => PullPolicy | undefined;
  log?: Logger;
}

export interface NodeImagePuller {
  /**
   * Pulls (or finds cached) and pins the image for the VMI; rejects with ErrImagePull naming every registry tried.
   * `pullPolicy` and `credentials` (e.g. from the volume's imagePullSecret; they win over the list's for the same
   * host) apply to this pull only. The pin is a file named by the VMI uid and the digest, so an agent restarted at
   * any point releases exactly the VMI's pins.
   */
  pull(
    image: string,
    vmiUid: string,
    opts?: { pullPolicy?: PullPolicy; credentials?: Credentials; signal?: AbortSignal },
  ): Promise<{ path: string; digest: string; pulled: PulledDisk }>;
  /** Unpins all images pinned for the VMI. */
  release(vmiUid: string): Promise<void>;
  /** Unpins the images of every VMI not in `keep` (e.g. VMIs deleted while the agent was down); returns their uids. */
  releaseExcept(keep: ReadonlySet<string>): Promise<string[]>;
}

export function nodeImagePuller(o: NodeImagePullerOptions): NodeImagePuller {
  const cache = ImageCache.open(o.cacheDir);
  return {
    async pull(image, vmiUid, opts = {}) {
      const { signal } = opts;
      for (let attempt = 0; ; attempt++) {
        const policy = opts.pullPolicy ?? o.pullPolicy?.(image);
        const pulled = await pullContainerDisk(image, {
          cacheDir: o.cacheDir,
          registries: await o.registries(),
          credentials: { ...(o.credentials ? await o.credentials(image) : {}), ...opts.credentials },
          ...(signal ? { signal } : {}),
          ...(policy ? { pullPolicy: policy } : {}),
          ...(o.log ? { log: o.log } : {}),
        });
        await cache.pin(vmiUid, pulled.manifestDigest);
        // A GC between the pull and the pin could have removed it: pinned now, so look once more.
        if ((await cache.getDisk(pulled.manifestDigest, false)) || attempt > 0) {
          return { path: pulled.diskPath, digest: pulled.manifestDigest, pulled };
        }
      }
    },
    async release(vmiUid) {
      await cache.unpin(vmiUid);
    },
    async releaseExcept(keep) {
      await cache.init();
      const gone = [...(await cache.pins()).keys()].filter((uid) => !keep.has(uid));
      for (const uid of gone) await cache.unpin(uid);
      return gone;
    },
  };
}
