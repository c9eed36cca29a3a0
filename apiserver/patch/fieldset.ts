// Field sets in Kubernetes' FieldsV1 shape: a tree whose keys are path elements — `f:<field>`, `k:<json of the list
// map keys>`, `v:<json value>` (set element), `i:<index>` — where `{}` or a `".": {}` entry marks the node itself as
// a member.

export class FieldSet {
  member = false;
  readonly children = new Map<string, FieldSet>();

  static fromFieldsV1(v: unknown): FieldSet {
    const s = new FieldSet();
    if (v === null || typeof v !== "object" || Array.isArray(v)) return s;
    const entries = Object.entries(v as Record<string, unknown>);
    for (const [k, child] of entries) {
      if (k === ".") s.member = true;
      else {
        const c = FieldSet.fromFieldsV1(child);
        if (child !== null && typeof child === "object" && Object.keys(child as object).length === 0) c.member = true;
        if (!c.empty) s.children.set(k, c);
      }
    }
    return s;
  }

  toFieldsV1(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    if (this.member && this.children.size > 0) out["."] = {};
    for (const k of [...this.children.keys()].sort()) {
      const c = this.children.get(k)!;
      if (c.empty) continue;
      out[k] = c.toFieldsV1();
    }
    return out;
  }

  get empty(): boolean {
    if (this.member) return false;
    for (const c of this.children.values()) if (!c.empty) return false;
    return true;
  }

  child(pe: string): FieldSet {
    let c = this.children.get(pe);
    if (!c) {
      c = new FieldSet();
      this.children.set(pe, c);
    }
    return c;
  }

  insert(path: readonly string[]): void {
    let cur: FieldSet = this;
    for (const pe of path) cur = cur.child(pe);
    cur.member = true;
  }

  has(path: readonly string[]): boolean {
    let cur: FieldSet | undefined = this;
    for (const pe of path) {
      cur = cur.children.get(pe);
      if (!cur) return false;
    }
    return cur.member;
  }

  /** True when the path or anything below it is a member. */
  hasPrefix(path: readonly string[]): boolean {
    let cur: FieldSet | undefined = this;
    for (const pe of path) {
      cur = cur.children.get(pe);
      if (!cur) return false;
    }
    return !cur.empty;
  }

  clone(): FieldSet {
    const s = new FieldSet();
    s.member = this.member;
    for (const [k, c] of this.children) s.children.set(k, c.clone());
    return s;
  }

  union(o: FieldSet): FieldSet {
    const s = this.clone();
    s.member ||= o.member;
    for (const [k, c] of o.children) s.children.set(k, s.children.has(k) ? s.children.get(k)!.union(c) : c.clone());
    return s;
  }

  difference(o: FieldSet): FieldSet {
    const s = new FieldSet();
    s.member = this.member && !o.member;
    for (const [k, c] of this.children) {
      const oc = o.children.get(k);
      const d = oc ? c.difference(oc) : c.clone();
      if (!d.empty) s.children.set(k, d);
    }
    return s;
  }

  intersection(o: FieldSet): FieldSet {
    const s = new FieldSet();
    s.member = this.member && o.member;
    for (const [k, c] of this.children) {
      const oc = o.children.get(k);
      if (!oc) continue;
      const i = c.intersection(oc);
      if (!i.empty) s.children.set(k, i);
    }
    return s;
  }

  /** Every member path, parents before children, siblings sorted. */
  paths(prefix: string[] = []): string[][] {
    const out: string[][] = [];
    if (this.member) out.push(prefix);
    for (const k of [...this.children.keys()].sort()) out.push(...this.children.get(k)!.paths([...prefix, k]));
    return out;
  }

  /** Removes a whole subtree (used for fields that are never tracked). */
  removeSubtree(path: readonly string[]): void {
    if (path.length === 0) {
      this.member = false;
      this.children.clear();
      return;
    }
    const [head, ...rest] = path;
    const c = this.children.get(head!);
    if (!c) return;
    if (rest.length === 0) this.children.delete(head!);
    else c.removeSubtree(rest);
  }
}

/** `.spec.containers[name="x"].image`: a member path as kube-apiserver prints it in conflict messages. */
export function pathString(path: readonly string[]): string {
  let out = "";
  for (const pe of path) {
    const kind = pe.slice(0, 2);
    const rest = pe.slice(2);
    if (kind === "f:") out += `.${rest}`;
    else if (kind === "k:") {
      const keys = JSON.parse(rest) as Record<string, unknown>;
      out += `[${Object.keys(keys)
        .sort()
        .map((k) => `${k}=${JSON.stringify(keys[k])}`)
        .join(",")}]`;
    } else if (kind === "v:") out += `[=${rest}]`;
    else if (kind === "i:") out += `[${rest}]`;
    else out += `.${pe}`;
  }
  return out;
}
