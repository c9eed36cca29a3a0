// `tsvirt image build|push|pull|verify|gc`: node-side containerDisk tools (registry traffic is not an API call).
// Loaded lazily by cmd/commands.ts. Results are JSON on stdout; progress goes to stderr (a bar on a TTY).
import { readFile } from "node:fs/promises";
import { Command, Option } from "commander";
import {
  buildContainerDisk,
  type Credentials,
  emptyRegistriesConfig,
  gcImages,
  loadRegistriesConf,
  type PullPolicy,
  type PushResult,
  parseDockerConfigJson,
  progressSink,
  pullContainerDisk,
  pushImage,
  type RegistriesConfig,
  resolveCached,
  verifyImage,
} from "../images/index.js";
import { isStatusError } from "../lib/errors.js";
import { createLogger } from "../lib/log.js";

const log = createLogger({ component: "tsvirt-image" });

function defaultCacheDir(): string {
  return process.env.TSVIRT_IMAGE_CACHE ?? "/var/lib/tsvirt/images";
}

interface CommonOpts {
  cacheDir: string;
  registriesConf?: string;
  authfile?: string;
}

async function common(o: CommonOpts): Promise<{ registries: RegistriesConfig; credentials: Credentials }> {
  const registries = o.registriesConf ? await loadRegistriesConf(o.registriesConf) : emptyRegistriesConfig();
  const credentials = o.authfile ? parseDockerConfigJson(await readFile(o.authfile, "utf8")) : {};
  return { registries, credentials };
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

function withCommon(c: Command): Command {
  return c
    .option("--cache-dir <dir>", "the node's image cache", defaultCacheDir())
    .option("--registries-conf <file>", "registry list in containers-registries.conf(5) form")
    .option("--authfile <file>", "credentials (docker config.json / auth.json)");
}

export function imageCommand(): Command {
  const image = new Command("image").description("build, push and pull containerDisk images").exitOverride();
  withCommon(image.command("build"))
    .description("build a containerDisk image (one layer with /disk/disk.qcow2, owner 107:107) and push it")
    .requiredOption("--disk <file>", "qcow2 or raw disk file (format detected from its header)")
    .option("--push <ref>", "push to this reference (repeatable)", collect, [])
    .addOption(
      new Option("--compression <kind>", "layer compression").choices(["gzip", "zstd", "none"]).default("gzip"),
    )
    .action(async (o: CommonOpts & { disk: string; push: string[]; compression: "gzip" | "zstd" | "none" }) => {
      const built = await buildContainerDisk(o.disk, { cacheDir: o.cacheDir, compression: o.compression });
      log.info("built", { digest: built.manifestDigest, layer: built.layerDigest });
      const pushed = o.push.length ? await push(built.manifestDigest, o.push, o) : [];
      process.stdout.write(
        `${JSON.stringify({ manifestDigest: built.manifestDigest, layerDigest: built.layerDigest, pushed })}\n`,
      );
      failIfAnyFailed(pushed);
    });
  withCommon(image.command("push"))
    .description("push a cached image (manifest digest or a reference pulled before) to one or more references")
    .argument("<source>", "sha256:… or a reference in the cache")
    .argument("<dest...>", "destination references")
    .action(async (source: string, dest: string[], o: CommonOpts) => {
      const digest = await resolveCached(o.cacheDir, source);
      const pushed = await push(digest, dest, o);
      process.stdout.write(`${JSON.stringify({ manifestDigest: digest, pushed })}\n`);
      failIfAnyFailed(pushed);
    });
  withCommon(image.command("verify"))
    .description("check that every registry the list names for REF (mirrors and primary) holds the same digest")
    .argument("<ref>", "image reference")
    .action(async (ref: string, o: CommonOpts) => {
      const { registries, credentials } = await common(o);
      const res = await verifyImage(ref, { registries, credentials });
      process.stdout.write(`${JSON.stringify(res)}\n`);
      if (!res.consistent) {
        const why = res.sources.map((s) => `${s.source}: ${s.digest ?? `${s.error?.kind}: ${s.error?.message}`}`);
        process.stderr.write(`Error: registries disagree on ${res.ref}: ${why.join("; ")}\n`);
        process.exitCode = 1;
      }
    });
  withCommon(image.command("pull"))
    .description("pull a containerDisk image into the node cache (registry list with failover)")
    .argument("<ref>", "image reference")
    .addOption(new Option("--pull-policy <policy>", "imagePullPolicy").choices(["Always", "IfNotPresent", "Never"]))
    .option("--stall-timeout <ms>", "fail over when a registry sends nothing for this long", (v) =>
      Number.parseInt(v, 10),
    )
    .action(async (ref: string, o: CommonOpts & { pullPolicy?: PullPolicy; stallTimeout?: number }) => {
      const { registries, credentials } = await common(o);
      const bar = progressSink(`pull ${ref}`, process.stderr, log);
      let last = { c: 0, t: 0 };
      const res = await pullContainerDisk(ref, {
        cacheDir: o.cacheDir,
        registries,
        credentials,
        log,
        ...(o.pullPolicy ? { pullPolicy: o.pullPolicy } : {}),
        ...(o.stallTimeout ? { stallTimeoutMs: o.stallTimeout } : {}),
        onProgress: (p) => {
          if (p.phase === "downloading") {
            last = { c: p.completedBytes, t: p.totalBytes };
            bar.update(p.completedBytes, p.totalBytes);
          }
        },
      });
      if (last.t > 0) {
        bar.update(last.c, last.t);
        bar.finish();
      }
      process.stdout.write(`${JSON.stringify(res)}\n`);
    });
  image
    .command("gc")
    .description("garbage-collect the node cache down to a size (pinned images are kept)")
    .option("--cache-dir <dir>", "the node's image cache", defaultCacheDir())
    .requiredOption("--max-bytes <n>", "size bound", (v) => Number.parseInt(v, 10))
    .action(async (o: { cacheDir: string; maxBytes: number }) => {
      process.stdout.write(`${JSON.stringify(await gcImages(o.cacheDir, o.maxBytes))}\n`);
    });
  return image;
}

type PushOutcome = PushResult | { ref: string; manifestDigest: string; error: { reason: string; message: string } };

/** Pushes to each destination in turn; one registry's failure does not stop the others: every result is reported. */
async function push(digest: string, refs: string[], o: CommonOpts): Promise<PushOutcome[]> {
  const { registries, credentials } = await common(o);
  const bars = new Map<string, ReturnType<typeof progressSink>>();
  const out: PushOutcome[] = [];
  for (const ref of refs) {
    try {
      const [res] = await pushImage(digest, [ref], {
        cacheDir: o.cacheDir,
        registries,
        credentials,
        log,
        onProgress: (p) => {
          let b = bars.get(p.ref);
          if (!b) {
            b = progressSink(`push ${p.ref}`, process.stderr, log);
            bars.set(p.ref, b);
          }
          b.update(p.completedBytes, p.totalBytes);
        },
      });
      if (res) out.push(res);
    } catch (e) {
      const reason = isStatusError(e) ? (e.status.reason ?? "ErrImagePush") : "ErrImagePush";
      out.push({ ref, manifestDigest: digest, error: { reason, message: (e as Error).message } });
    }
  }
  for (const b of bars.values()) b.finish();
  return out;
}

function failIfAnyFailed(pushed: PushOutcome[]): void {
  const failed = pushed.filter((p) => "error" in p);
  if (failed.length === 0) return;
  for (const f of failed) if ("error" in f) process.stderr.write(`Error: ${f.error.message}\n`);
  process.exitCode = 1;
}

/** Runs `tsvirt image …` with the arguments after `image`. */
export async function runImage(args: string[]): Promise<void> {
  try {
    await imageCommand().parseAsync(args, { from: "user" });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "commander.helpDisplayed" || code === "commander.help" || code === "commander.version") return;
    if (typeof code === "string" && code.startsWith("commander.")) {
      process.exitCode = 2;
      return;
    }
    const msg = isStatusError(e) ? e.status.message : (e as Error).message;
    process.stderr.write(`Error: ${msg}\n`);
    if (isStatusError(e) && e.status.details?.causes) {
      for (const c of e.status.details.causes) process.stderr.write(`  ${c.field}: ${c.type}: ${c.message}\n`);
    }
    process.exitCode = 1;
  }
}
