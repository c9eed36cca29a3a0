// Label selectors: the string form (`a=b,c!=d,e in (x,y),!f,g`) parsed into requirements, and matching. Used by the
// fake client, the informer's client-side checks and the scheduler's node selector predicate.

export interface Requirement {
  key: string;
  op: "=" | "!=" | "in" | "notin" | "exists" | "!";
  values: string[];
}

export function parseSelector(s: string | undefined): Requirement[] {
  const out: Requirement[] = [];
  if (!s) return out;
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts) {
    const p = raw.trim();
    if (!p) continue;
    let m = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(p);
    if (m) {
      out.push({
        key: m[1]!,
        op: m[2] as "in" | "notin",
        values: m[3]!
          .split(",")
          .map((v) => v.trim())
          .filter(Boolean),
      });
      continue;
    }
    m = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(p);
    if (m) {
      out.push({ key: m[1]!, op: m[2] === "!=" ? "!=" : "=", values: [m[3]!] });
      continue;
    }
    if (p.startsWith("!")) out.push({ key: p.slice(1).trim(), op: "!", values: [] });
    else out.push({ key: p, op: "exists", values: [] });
  }
  return out;
}

export function matchesSelector(labels: Record<string, string> | undefined, reqs: Requirement[]): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case "=":
        return has && v === r.values[0];
      case "!=":
        return !has || v !== r.values[0];
      case "in":
        return has && r.values.includes(v!);
      case "notin":
        return !has || !r.values.includes(v!);
      case "exists":
        return has;
      case "!":
        return !has;
    }
    return false;
  });
}

/** `matchLabels` as a selector string. */
export function selectorFromLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}
