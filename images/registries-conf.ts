// The registry list in the shape of containers-registries.conf(5) (version 2), read from a file or from the
// `registries.conf` key of the ConfigMap `kubevirt/tsvirt-registries`. A small TOML subset parser: tables, arrays of
// tables, strings, booleans, integers and arrays. Priority: mirrors first in file order (or by `priority`, lower
// first), then the primary `location`; an explicit `priority` on the [[registry]] entry places the location too.
import { readFile } from "node:fs/promises";
import { type ImageReference, isLoopbackHost } from "./reference.js";

export interface MirrorEntry {
  location: string;
  insecure: boolean;
  priority?: number;
}

export interface RegistryEntry {
  prefix: string;
  location: string;
  insecure: boolean;
  blocked: boolean;
  priority?: number;
  mirrors: MirrorEntry[];
}

export interface RegistriesConfig {
  unqualifiedSearchRegistries: string[];
  registries: RegistryEntry[];
  /** Hosts (host[:port]) reachable over plain HTTP / without certificate verification. */
  insecure: string[];
  blocked: string[];
}

/** One place to fetch an image from: a registry host and the repository name there. */
export interface ImageSource {
  registry: string;
  repository: string;
  insecure: boolean;
}

export function emptyRegistriesConfig(): RegistriesConfig {
  return { unqualifiedSearchRegistries: [], registries: [], insecure: [], blocked: [] };
}

type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
interface TomlTable {
  [k: string]: TomlValue;
}

/** Parses the TOML subset used by registries.conf. Throws with a line number on a syntax error. */
export function parseToml(text: string): TomlTable {
  const root: TomlTable = {};
  let current: TomlTable = root;
  let i = 0;
  let line = 1;
  const fail = (msg: string): never => {
    throw new Error(`registries.conf line ${line}: ${msg}`);
  };
  const skipWs = (newlines: boolean): void => {
    for (;;) {
      const c = text[i];
      if (c === " " || c === "\t" || c === "\r") i++;
      else if (c === "#") while (i < text.length && text[i] !== "\n") i++;
      else if (newlines && c === "\n") {
        i++;
        line++;
      } else return;
    }
  };
  const parseKey = (): string[] => {
    const parts: string[] = [];
    for (;;) {
      skipWs(false);
      const c = text[i];
      if (c === '"' || c === "'") parts.push(parseString());
      else {
        const m = /^[A-Za-z0-9_-]+/.exec(text.slice(i, i + 256));
        if (!m) fail("expected a key");
        parts.push(m![0]);
        i += m![0].length;
      }
      skipWs(false);
      if (text[i] === ".") i++;
      else return parts;
    }
  };
  const parseString = (): string => {
    const q = text[i];
    i++;
    let out = "";
    while (i < text.length && text[i] !== q) {
      const c = text[i]!;
      if (c === "\n") fail("newline in string");
      if (q === '"' && c === "\\") {
        const e = text[i + 1];
        const map: Record<string, string> = { n: "\n", t: "\t", r: "\r", '"': '"', "\\": "\\", b: "\b", f: "\f" };
        if (e !== undefined && map[e] !== undefined) {
          out += map[e];
          i += 2;
        } else if (e === "u" || e === "U") {
          const n = e === "u" ? 4 : 8;
          const hex = text.slice(i + 2, i + 2 + n);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) fail("bad unicode escape");
          out += String.fromCodePoint(Number.parseInt(hex, 16));
          i += 2 + n;
        } else fail("bad escape");
      } else {
        out += c;
        i++;
      }
    }
    if (text[i] !== q) fail("unterminated string");
    i++;
    return out;
  };
  const parseValue = (): TomlValue => {
    skipWs(false);
    const c = text[i];
    if (c === '"' || c === "'") return parseString();
    if (c === "[") {
      i++;
      const arr: TomlValue[] = [];
      for (;;) {
        skipWs(true);
        if (text[i] === "]") {
          i++;
          return arr;
        }
        arr.push(parseValue());
        skipWs(true);
        if (text[i] === ",") i++;
        else if (text[i] !== "]") fail("expected , or ] in array");
      }
    }
    if (c === "{") {
      i++;
      const t: TomlTable = {};
      for (;;) {
        skipWs(false);
        if (text[i] === "}") {
          i++;
          return t;
        }
        const k = parseKey();
        if (text[i] !== "=") fail("expected =");
        i++;
        setPath(t, k, parseValue());
        skipWs(false);
        if (text[i] === ",") i++;
      }
    }
    const m = /^(true|false|[+-]?\d[\d_]*)/.exec(text.slice(i, i + 64));
    if (!m) return fail("unsupported value");
    i += m[0].length;
    if (m[0] === "true") return true;
    if (m[0] === "false") return false;
    return Number.parseInt(m[0].replace(/_/g, ""), 10);
  };
  const setPath = (t: TomlTable, key: string[], v: TomlValue): void => {
    let o = t;
    for (const k of key.slice(0, -1)) {
      const next = o[k];
      if (next === undefined) o = o[k] = {};
      else if (typeof next === "object" && !Array.isArray(next)) o = next;
      else fail(`key ${key.join(".")} redefined`);
    }
    const last = key[key.length - 1]!;
    if (Object.hasOwn(o, last)) fail(`key ${key.join(".")} defined twice`);
    o[last] = v;
  };
  const tableAt = (key: string[], arrayOfTables: boolean): TomlTable => {
    let o = root;
    key.forEach((k, idx) => {
      const isLast = idx === key.length - 1;
      let next = o[k];
      if (isLast && arrayOfTables) {
        if (next === undefined) next = o[k] = [];
        if (!Array.isArray(next)) fail(`${key.join(".")} is not an array of tables`);
        const t: TomlTable = {};
        (next as TomlValue[]).push(t);
        o = t;
        return;
      }
      if (next === undefined) next = o[k] = {};
      if (Array.isArray(next)) {
        const lastT = next[next.length - 1];
        if (lastT === undefined || typeof lastT !== "object" || Array.isArray(lastT))
          fail(`bad table ${key.join(".")}`);
        o = lastT as TomlTable;
      } else if (typeof next === "object") o = next;
      else fail(`${key.join(".")} is not a table`);
    });
    return o;
  };
  for (;;) {
    skipWs(true);
    if (i >= text.length) break;
    if (text[i] === "[") {
      const aot = text[i + 1] === "[";
      i += aot ? 2 : 1;
      const key = parseKey();
      if (text.slice(i, i + (aot ? 2 : 1)) !== (aot ? "]]" : "]")) fail("expected ] after table name");
      i += aot ? 2 : 1;
      current = tableAt(key, aot);
    } else {
      const key = parseKey();
      if (text[i] !== "=") fail("expected =");
      i++;
      setPath(current, key, parseValue());
    }
    skipWs(false);
    if (i < text.length && text[i] !== "\n") fail("expected end of line");
  }
  return root;
}

const str = (v: TomlValue | undefined, what: string): string => {
  if (typeof v !== "string") throw new Error(`registries.conf: ${what} must be a string`);
  return v;
};
const bool = (v: TomlValue | undefined, what: string): boolean => {
  if (v === undefined) return false;
  if (typeof v !== "boolean") throw new Error(`registries.conf: ${what} must be true or false`);
  return v;
};
const strList = (v: TomlValue | undefined, what: string): string[] => {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string"))
    throw new Error(`registries.conf: ${what} must be a list of strings`);
  return v as string[];
};
const optInt = (v: TomlValue | undefined, what: string): number | undefined => {
  if (v === undefined) return undefined;
  if (typeof v !== "number") throw new Error(`registries.conf: ${what} must be an integer`);
  return v;
};

function checkLocation(loc: string, what: string): string {
  const l = loc.replace(/\/+$/, "");
  if (!/^[A-Za-z0-9.\-[\]:]+(\/[a-z0-9._/-]+)?$/.test(l) || l.includes("..")) {
    throw new Error(`registries.conf: ${what} "${loc}" is not a registry location`);
  }
  return l;
}

/** Parses registries.conf text (a file, or the ConfigMap's data key) into a validated config. */
export function parseRegistriesConf(text: string): RegistriesConfig {
  const t = parseToml(text);
  const cfg = emptyRegistriesConfig();
  cfg.unqualifiedSearchRegistries = strList(t["unqualified-search-registries"], "unqualified-search-registries");
  const v1 = t["registries"];
  if (v1 !== undefined && typeof v1 === "object" && !Array.isArray(v1)) {
    for (const kind of ["insecure", "block"] as const) {
      const sec = v1[kind];
      if (sec && typeof sec === "object" && !Array.isArray(sec)) {
        const list = strList(sec["registries"], `registries.${kind}.registries`);
        if (kind === "insecure") cfg.insecure.push(...list);
        else cfg.blocked.push(...list);
      }
    }
  }
  const regs = t["registry"];
  if (regs !== undefined) {
    if (!Array.isArray(regs)) throw new Error("registries.conf: use [[registry]] tables");
    regs.forEach((r, n) => {
      if (typeof r !== "object" || Array.isArray(r)) throw new Error("registries.conf: bad [[registry]]");
      const what = `registry[${n}]`;
      const location =
        r["location"] === undefined ? "" : checkLocation(str(r["location"], `${what}.location`), `${what}.location`);
      const prefixRaw = r["prefix"] === undefined ? location : str(r["prefix"], `${what}.prefix`);
      if (prefixRaw === "") throw new Error(`registries.conf: ${what} needs a prefix or a location`);
      const mirrorsRaw = r["mirror"] ?? [];
      if (!Array.isArray(mirrorsRaw)) throw new Error(`registries.conf: ${what}.mirror must be [[registry.mirror]]`);
      const mirrors: MirrorEntry[] = mirrorsRaw.map((m, k) => {
        if (typeof m !== "object" || Array.isArray(m)) throw new Error(`registries.conf: bad ${what}.mirror[${k}]`);
        const me: MirrorEntry = {
          location: checkLocation(str(m["location"], `${what}.mirror[${k}].location`), `${what}.mirror[${k}].location`),
          insecure: bool(m["insecure"], `${what}.mirror[${k}].insecure`),
        };
        const p = optInt(m["priority"], `${what}.mirror[${k}].priority`);
        if (p !== undefined) me.priority = p;
        return me;
      });
      const e: RegistryEntry = {
        prefix: prefixRaw.replace(/\/+$/, ""),
        location: location || prefixRaw.replace(/\/+$/, ""),
        insecure: bool(r["insecure"], `${what}.insecure`),
        blocked: bool(r["blocked"], `${what}.blocked`),
        mirrors,
      };
      const p = optInt(r["priority"], `${what}.priority`);
      if (p !== undefined) e.priority = p;
      cfg.registries.push(e);
    });
  }
  return cfg;
}

/** Reads and parses a registries.conf file. */
export async function loadRegistriesConf(path: string): Promise<RegistriesConfig> {
  return parseRegistriesConf(await readFile(path, "utf8"));
}

function prefixMatches(prefix: string, full: string): boolean {
  if (prefix.startsWith("*.")) {
    const host = full.split("/")[0] ?? "";
    return host.endsWith(prefix.slice(1));
  }
  return (
    full === prefix || full.startsWith(`${prefix}/`) || full.startsWith(`${prefix}:`) || full.startsWith(`${prefix}@`)
  );
}

function splitLocation(loc: string): { registry: string; path: string } {
  const slash = loc.indexOf("/");
  return slash < 0 ? { registry: loc, path: "" } : { registry: loc.slice(0, slash), path: loc.slice(slash + 1) };
}

function hostInsecure(cfg: RegistriesConfig, host: string): boolean {
  if (cfg.insecure.includes(host)) return true;
  return cfg.registries.some(
    (r) => r.insecure && splitLocation(r.location).registry === host && r.prefix === r.location,
  );
}

/**
 * The ordered list of places to fetch `ref` from (pure). The entry with the longest matching prefix wins; its
 * mirrors come first (by priority, then file order), then its location. Without a matching entry: the ref's own
 * registry. A blocked entry throws.
 */
export function resolveSources(ref: ImageReference, cfg: RegistriesConfig): ImageSource[] {
  const full = `${ref.registry}/${ref.repository}`;
  let best: RegistryEntry | undefined;
  for (const r of cfg.registries) {
    if (prefixMatches(r.prefix, full) && (best === undefined || r.prefix.length > best.prefix.length)) best = r;
  }
  if (best === undefined) {
    if (cfg.blocked.includes(ref.registry)) throw new Error(`registry ${ref.registry} is blocked in registries.conf`);
    return [{ registry: ref.registry, repository: ref.repository, insecure: hostInsecure(cfg, ref.registry) }];
  }
  if (best.blocked) throw new Error(`registry ${best.prefix} is blocked in registries.conf`);
  const wildcard = best.prefix.startsWith("*.");
  const rest = full.slice(best.prefix.length);
  const toSource = (loc: string, insecure: boolean, primary: boolean): ImageSource => {
    // A wildcard entry has no location of its own: its primary is the ref's registry; mirrors get the whole path.
    const target = wildcard ? (primary ? full : `${loc}/${ref.repository}`) : `${loc}${rest}`;
    const { registry, path } = splitLocation(target);
    return { registry, repository: path.replace(/^\/+/, ""), insecure: insecure || cfg.insecure.includes(registry) };
  };
  const ranked = best.mirrors.map((m, idx) => ({ p: m.priority ?? idx, src: toSource(m.location, m.insecure, false) }));
  ranked.push({ p: best.priority ?? best.mirrors.length, src: toSource(best.location, best.insecure, true) });
  ranked.sort((a, b) => a.p - b.p);
  const out: ImageSource[] = [];
  for (const { src } of ranked) {
    if (!out.some((o) => o.registry === src.registry && o.repository === src.repository)) out.push(src);
  }
  return out;
}

/** Plain HTTP is allowed only for loopback registries and for hosts the configuration marks insecure. */
export function allowsPlainHttp(src: ImageSource): boolean {
  return src.insecure || isLoopbackHost(src.registry);
}
