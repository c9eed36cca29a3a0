// One upload's timeline for bench:storage (BENCH_UPLOAD_TIMELINE=1): ms since `virtctl image-upload` was spawned of
// virtctl's own lines (its start, the DV created, UploadReady seen, the upload sent and answered — the upload
// server answers only once the bytes are fsynced and verified) and of what the API shows (DV phases, the upload
// pod's phase/readiness and its progress annotation: first and last byte as the worker reports them).
import { spawn } from "node:child_process";
import { type KObject, type RestClient, resources } from "../client/index.js";

interface Obj extends KObject {
  status?: { phase?: string; conditions?: { type: string; status: string }[] };
}

export interface Timeline {
  /** Spawns virtctl with `args` (stdout lines stamped, and given to `onLine`); rejects on a non-zero exit. */
  virtctl(file: string, args: string[], env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Promise<void>;
  /** The stamps so far, one line, in order. */
  text(): string;
  stop(): void;
}

export function uploadTimeline(client: RestClient, ns: string, dv: string, t0 = performance.now()): Timeline {
  const marks: [number, string][] = [];
  const seen = new Set<string>();
  const mark = (what: string, once = true): void => {
    if (once && seen.has(what)) return;
    seen.add(what);
    marks.push([performance.now() - t0, what]);
  };
  const dvw = client.watch<Obj>(resources.datavolumes, ns, { fieldSelector: `metadata.name=${dv}` }, (ev) => {
    if (ev.type === "ADDED" || ev.type === "MODIFIED") mark(`dv ${(ev.object as Obj).status?.phase ?? "created"}`);
  });
  const podw = client.watch<Obj>(resources.pods, ns, {}, (ev) => {
    const p = ev.object as Obj;
    if (!p.metadata.name?.startsWith(`cdi-upload-${dv}`)) return;
    if (ev.type === "DELETED") return mark("pod deleted");
    mark(`pod ${p.status?.phase ?? "created"}`);
    if (p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")) mark("pod Ready");
    const progress = p.metadata.annotations?.["cdi.kubevirt.io/storage.progress"];
    if (progress && progress !== "0.0%" && progress !== "N/A") {
      mark("first progress");
      if (progress === "100.0%") mark("progress 100%");
    }
  });
  dvw.done.catch(() => {});
  podw.done.catch(() => {});
  return {
    virtctl(file, args, env, onLine) {
      mark("virtctl spawned");
      return runLines(file, args, env, (line) => {
        onLine?.(line);
        if (line && !line.includes("Uploading  ") && !/\d+(\.\d+)? ?[KMG]i?B/.test(line))
          mark(`virtctl: ${line.slice(0, 48)}`, false);
      }).finally(() => mark("virtctl exited"));
    },
    text: () =>
      marks
        .sort((a, b) => a[0] - b[0])
        .map(([t, w]) => `${Math.round(t)} ${w}`)
        .join(" | "),
    stop() {
      dvw.stop();
      podw.stop();
    },
  };
}

/** Spawns `file args`, giving each stdout line (as it arrives) to `onLine`; resolves at exit 0, else rejects. */
export function runLines(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  onLine: (line: string) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i).replace(/\r/g, "").trim();
        buf = buf.slice(i + 1);
        onLine(line);
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${args[1] ?? file} exited ${code}: ${err.trim().slice(0, 500)}`));
    });
  });
}
