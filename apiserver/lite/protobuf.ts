// Decoding of the protobuf request bodies kubectl sends for imperative `create namespace|configmap|secret|
// serviceaccount` and `auth can-i` (until apiserver/protobuf/ lands on main): the `k8s\0` envelope around a
// runtime.Unknown, and the few message types those commands use.
import { badRequest } from "../../lib/errors.js";

type Fields = Map<number, (Buffer | number | bigint)[]>;

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw badRequest("protobuf: truncated varint");
    const b = buf[pos++] as number;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
  throw badRequest("protobuf: varint too long");
}

function fields(buf: Buffer, depth = 0): Fields {
  if (depth > 32) throw badRequest("protobuf: nested too deeply");
  const out: Fields = new Map();
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const field = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    let v: Buffer | number | bigint;
    if (wire === 0) {
      const [n, p2] = readVarint(buf, pos);
      pos = p2;
      v = n;
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      const l = Number(len);
      if (l < 0 || p2 + l > buf.length) throw badRequest("protobuf: truncated field");
      v = buf.subarray(p2, p2 + l);
      pos = p2 + l;
    } else if (wire === 1) {
      if (pos + 8 > buf.length) throw badRequest("protobuf: truncated field");
      v = buf.readBigUInt64LE(pos);
      pos += 8;
    } else if (wire === 5) {
      if (pos + 4 > buf.length) throw badRequest("protobuf: truncated field");
      v = buf.readUInt32LE(pos);
      pos += 4;
    } else throw badRequest(`protobuf: unsupported wire type ${wire}`);
    const list = out.get(field) ?? [];
    list.push(v);
    out.set(field, list);
  }
  return out;
}

function str(f: Fields, n: number): string | undefined {
  const v = f.get(n)?.[0];
  return Buffer.isBuffer(v) ? v.toString("utf8") : undefined;
}
function sub(f: Fields, n: number, depth: number): Fields | undefined {
  const v = f.get(n)?.[0];
  return Buffer.isBuffer(v) ? fields(v, depth + 1) : undefined;
}
function bool(f: Fields, n: number): boolean | undefined {
  const v = f.get(n)?.[0];
  return typeof v === "bigint" ? v !== 0n : undefined;
}
function map(f: Fields, n: number, depth: number, bytes = false): Record<string, string> | undefined {
  const entries = f.get(n);
  if (!entries) return undefined;
  const out: Record<string, string> = {};
  for (const e of entries) {
    if (!Buffer.isBuffer(e)) continue;
    const kv = fields(e, depth + 1);
    const k = str(kv, 1) ?? "";
    const raw = kv.get(2)?.[0];
    const val = Buffer.isBuffer(raw) ? raw : Buffer.alloc(0);
    out[k] = bytes ? val.toString("base64") : val.toString("utf8");
  }
  return out;
}

function objectMeta(f: Fields | undefined, depth: number): Record<string, unknown> {
  const md: Record<string, unknown> = {};
  if (!f) return md;
  const set = (k: string, v: unknown): void => {
    if (v !== undefined && v !== "") md[k] = v;
  };
  set("name", str(f, 1));
  set("generateName", str(f, 2));
  set("namespace", str(f, 3));
  set("labels", map(f, 11, depth));
  set("annotations", map(f, 12, depth));
  const fin = f.get(14);
  if (fin) md.finalizers = fin.filter(Buffer.isBuffer).map((b) => b.toString("utf8"));
  return md;
}

function refs(f: Fields, n: number, depth: number): { name: string }[] | undefined {
  const list = f.get(n);
  if (!list) return undefined;
  return list.filter(Buffer.isBuffer).map((b) => ({ name: str(fields(b, depth + 1), 1) ?? "" }));
}

export const PROTOBUF_MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

/** Decodes a `application/vnd.kubernetes.protobuf` body into the JSON object it stands for. */
export function decodeProtobufBody(buf: Buffer): Record<string, unknown> {
  if (buf.length < 4 || !buf.subarray(0, 4).equals(PROTOBUF_MAGIC)) throw badRequest("protobuf: missing k8s envelope");
  const unknown = fields(buf.subarray(4));
  const typeMeta = sub(unknown, 1, 0);
  const apiVersion = typeMeta ? (str(typeMeta, 1) ?? "") : "";
  const kind = typeMeta ? (str(typeMeta, 2) ?? "") : "";
  const rawV = unknown.get(2)?.[0];
  const raw = fields(Buffer.isBuffer(rawV) ? rawV : Buffer.alloc(0), 1);
  const d = 2;
  const obj: Record<string, unknown> = { apiVersion, kind, metadata: objectMeta(sub(raw, 1, d), d) };
  switch (kind) {
    case "Namespace":
      break;
    case "ConfigMap": {
      const data = map(raw, 2, d);
      if (data) obj.data = data;
      const bin = map(raw, 3, d, true);
      if (bin) obj.binaryData = bin;
      const imm = bool(raw, 4);
      if (imm !== undefined) obj.immutable = imm;
      break;
    }
    case "Secret": {
      const data = map(raw, 2, d, true);
      if (data) obj.data = data;
      const type = str(raw, 3);
      if (type) obj.type = type;
      const sd = map(raw, 4, d);
      if (sd) obj.stringData = sd;
      const imm = bool(raw, 5);
      if (imm !== undefined) obj.immutable = imm;
      break;
    }
    case "ServiceAccount": {
      const s = refs(raw, 2, d);
      if (s) obj.secrets = s;
      const ips = refs(raw, 3, d);
      if (ips) obj.imagePullSecrets = ips;
      const am = bool(raw, 4);
      if (am !== undefined) obj.automountServiceAccountToken = am;
      break;
    }
    case "SelfSubjectAccessReview": {
      const spec = sub(raw, 2, d);
      const out: Record<string, unknown> = {};
      const ra = spec ? sub(spec, 1, d + 1) : undefined;
      if (ra) {
        const names = ["namespace", "verb", "group", "version", "resource", "subresource", "name"];
        const attrs: Record<string, string> = {};
        names.forEach((k, i) => {
          const v = str(ra, i + 1);
          if (v) attrs[k] = v;
        });
        out.resourceAttributes = attrs;
      }
      const nra = spec ? sub(spec, 2, d + 1) : undefined;
      if (nra) out.nonResourceAttributes = { path: str(nra, 1) ?? "", verb: str(nra, 2) ?? "" };
      obj.spec = out;
      break;
    }
    default:
      throw statusUnsupported(kind);
  }
  return obj;
}

function statusUnsupported(kind: string): Error {
  return badRequest(`protobuf: decoding ${kind || "this kind"} from protobuf is not supported; send application/json`);
}
