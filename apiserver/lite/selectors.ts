// Label and field selector parsing and matching (until apiserver/selectors/ lands on main).
import { badRequest } from "../../lib/errors.js";

export type LabelRequirement =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "in" | "notin"; values: string[] }
  | { key: string; op: "exists" | "!" }
  | { key: string; op: ">" | "<"; value: number };

const keyRe =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const valueRe = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function checkKey(k: string, sel: string): string {
  if (!keyRe.test(k) || k.length > 317)
    throw badRequest(`unable to parse requirement: invalid label key "${k}" in "${sel}"`);
  return k;
}
function checkValue(v: string, sel: string): string {
  if (!valueRe.test(v) || v.length > 63)
    throw badRequest(`unable to parse requirement: invalid label value "${v}" in "${sel}"`);
  return v;
}

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

export function parseLabelSelector(sel: string): LabelRequirement[] {
  const s = sel.trim();
  if (!s) return [];
  const reqs: LabelRequirement[] = [];
  for (const partRaw of splitTop(s)) {
    const part = partRaw.trim();
    if (!part) throw badRequest(`unable to parse requirement: found '', expected: identifier in "${sel}"`);
    const mIn = /^([^\s!=<>(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part);
    const mNot = /^!\s*([^\s!=<>(),]+)$/.exec(part);
    const mEq = /^([^\s!=<>(),]+)\s*(==|=|!=)\s*([^\s!=<>(),]*)$/.exec(part);
    const mCmp = /^([^\s!=<>(),]+)\s*(<|>)\s*(-?\d+)$/.exec(part);
    const mKey = /^([^\s!=<>(),]+)$/.exec(part);
    if (mIn) {
      const values = (mIn[3] ?? "")
        .split(",")
        .map((v) => v.trim())
        .filter((v, _i, a) => v !== "" || a.length === 1);
      for (const v of values) checkValue(v, sel);
      reqs.push({ key: checkKey(mIn[1] ?? "", sel), op: mIn[2] as "in" | "notin", values });
    } else if (mNot) {
      reqs.push({ key: checkKey(mNot[1] ?? "", sel), op: "!" });
    } else if (mEq) {
      reqs.push({
        key: checkKey(mEq[1] ?? "", sel),
        op: mEq[2] === "!=" ? "!=" : "=",
        value: checkValue(mEq[3] ?? "", sel),
      });
    } else if (mCmp) {
      reqs.push({ key: checkKey(mCmp[1] ?? "", sel), op: mCmp[2] as "<" | ">", value: Number(mCmp[3]) });
    } else if (mKey) {
      reqs.push({ key: checkKey(mKey[1] ?? "", sel), op: "exists" });
    } else {
      throw badRequest(`unable to parse requirement: invalid selector "${sel}"`);
    }
  }
  return reqs;
}

export function matchLabels(reqs: LabelRequirement[], labels: Record<string, unknown> | undefined): boolean {
  const l = labels ?? {};
  for (const r of reqs) {
    const has = Object.hasOwn(l, r.key);
    const v = has ? String(l[r.key]) : undefined;
    switch (r.op) {
      case "=":
        if (v !== r.value) return false;
        break;
      case "!=":
        if (v === r.value) return false;
        break;
      case "in":
        if (v === undefined || !r.values.includes(v)) return false;
        break;
      case "notin":
        if (v !== undefined && r.values.includes(v)) return false;
        break;
      case "exists":
        if (!has) return false;
        break;
      case "!":
        if (has) return false;
        break;
      case ">":
      case "<": {
        const n = Number(v);
        if (v === undefined || !/^-?\d+$/.test(v)) return false;
        if (r.op === ">" ? !(n > r.value) : !(n < r.value)) return false;
        break;
      }
    }
  }
  return true;
}

export interface FieldRequirement {
  field: string;
  op: "=" | "!=";
  value: string;
}

function unescapeField(v: string): string {
  return v.replace(/\\([\\,=!])/g, "$1");
}

/** Parses `a=b,c!=d,e==f`; `allowed` names the selectable fields (anything else is a 400, as on a real cluster). */
export function parseFieldSelector(sel: string, allowed: (field: string) => boolean): FieldRequirement[] {
  const s = sel.trim();
  if (!s) return [];
  const out: FieldRequirement[] = [];
  for (const part of s.split(/(?<!\\),/)) {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${sel}'; can't understand '${part}'`);
    const field = m[1] ?? "";
    if (!allowed(field)) throw badRequest(`field label not supported: ${field}`);
    out.push({ field, op: m[2] === "!=" ? "!=" : "=", value: unescapeField(m[3] ?? "") });
  }
  return out;
}

function fieldValue(obj: Record<string, unknown>, path: string): string {
  let cur: unknown = obj;
  for (const seg of path.split(".")) {
    if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return "";
    cur = (cur as Record<string, unknown>)[seg];
  }
  if (cur === undefined || cur === null) return "";
  return typeof cur === "object" ? JSON.stringify(cur) : String(cur);
}

export function matchFields(reqs: FieldRequirement[], obj: Record<string, unknown>): boolean {
  for (const r of reqs) {
    const v = r.field === "source" ? fieldValue(obj, "source.component") : fieldValue(obj, r.field);
    if (r.op === "=" ? v !== r.value : v === r.value) return false;
  }
  return true;
}
