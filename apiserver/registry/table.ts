// Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): a Name column plus the kind's printer
// columns, date cells humanized by the server as kube-apiserver does.
import type { PrinterColumn } from "../../api/meta/v1/crd.js";
import type { ServedResource } from "./resources.js";

type Obj = Record<string, unknown>;

/** Evaluates the subset of JSONPath printer columns use: `.a.b`, `[0]`, `['k']`, `[?(@.x=='y')]`. */
export function evalJsonPath(obj: unknown, path: string): unknown[] {
  let cur: unknown[] = [obj];
  let i = 0;
  const p = path
    .trim()
    .replace(/^\{|\}$/g, "")
    .replace(/^\$/, "");
  while (i < p.length && cur.length) {
    const ch = p[i];
    if (ch === ".") {
      const m = /^\.([A-Za-z0-9_-]+)/.exec(p.slice(i));
      if (!m) return [];
      const key = m[1] as string;
      cur = cur.flatMap((c) => (c && typeof c === "object" && !Array.isArray(c) && key in c ? [(c as Obj)[key]] : []));
      i += m[0].length;
    } else if (ch === "[") {
      const end = p.indexOf("]", i);
      if (end < 0) return [];
      const inner = p.slice(i + 1, end).trim();
      i = end + 1;
      const mq = /^['"](.*)['"]$/.exec(inner);
      const mf = /^\?\(@\.([A-Za-z0-9_.-]+)\s*(==|!=)\s*['"]?([^'"]*)['"]?\)$/.exec(inner);
      if (/^-?\d+$/.test(inner)) {
        const n = Number(inner);
        cur = cur.flatMap((c) =>
          Array.isArray(c) ? [c[n < 0 ? c.length + n : n]].filter((x) => x !== undefined) : [],
        );
      } else if (inner === "*") {
        cur = cur.flatMap((c) => (Array.isArray(c) ? c : c && typeof c === "object" ? Object.values(c) : []));
      } else if (mq) {
        const key = mq[1] as string;
        cur = cur.flatMap((c) => (c && typeof c === "object" && key in c ? [(c as Obj)[key]] : []));
      } else if (mf) {
        const [, field, op, value] = mf;
        cur = cur.flatMap((c) =>
          Array.isArray(c)
            ? c.filter((el) => {
                const v = evalJsonPath(el, `.${field}`)[0];
                const eq = v !== undefined && String(v) === value;
                return op === "==" ? eq : !eq;
              })
            : [],
        );
      } else return [];
    } else return [];
  }
  return cur.filter((c) => c !== undefined);
}

/** apimachinery's duration.HumanDuration */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return "<invalid>";
  if (s < 0) return "0s";
  if (s < 60 * 2) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) {
    const rs = s % 60;
    return rs === 0 ? `${m}m` : `${m}m${rs}s`;
  }
  if (m < 60 * 3) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) {
    const rm = m % 60;
    return rm === 0 ? `${h}h` : `${h}h${rm}m`;
  }
  if (h < 48) return `${h}h`;
  if (h < 24 * 8) {
    const rh = h % 24;
    return rh === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${rh}h`;
  }
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24)}d`;
  if (h < 24 * 365 * 8) {
    const y = Math.floor(h / 24 / 365);
    const rd = Math.floor(h / 24) % 365;
    return rd === 0 ? `${y}y` : `${y}y${rd}d`;
  }
  return `${Math.floor(h / 24 / 365)}y`;
}

function count(v: unknown): number {
  return v && typeof v === "object" ? Object.keys(v).length : 0;
}

function str(v: unknown): string {
  return v === undefined || v === null ? "" : String(v);
}

/** Cells built-in kinds compute in code (kube-apiserver's TableConvertors), keyed "Kind/Column". */
const computed: Record<string, (o: Obj) => unknown> = {
  "Pod/Ready": (o) => {
    const specs = ((o.spec as Obj | undefined)?.containers as unknown[] | undefined) ?? [];
    const st = ((o.status as Obj | undefined)?.containerStatuses as Obj[] | undefined) ?? [];
    return `${st.filter((c) => c.ready === true).length}/${specs.length}`;
  },
  "Pod/Status": (o) => {
    const md = o.metadata as Obj;
    const status = (o.status as Obj | undefined) ?? {};
    if (md.deletionTimestamp && status.phase !== "Succeeded" && status.phase !== "Failed") return "Terminating";
    const waiting = ((status.containerStatuses as Obj[] | undefined) ?? [])
      .map((c) => ((c.state as Obj | undefined)?.waiting as Obj | undefined)?.reason)
      .find((r) => r);
    return str(waiting ?? status.reason ?? status.phase ?? "Pending");
  },
  "Pod/Restarts": (o) =>
    String(
      (((o.status as Obj | undefined)?.containerStatuses as Obj[] | undefined) ?? []).reduce(
        (n, c) => n + (typeof c.restartCount === "number" ? c.restartCount : 0),
        0,
      ),
    ),
  "Node/Status": (o) => {
    const conds = ((o.status as Obj | undefined)?.conditions as Obj[] | undefined) ?? [];
    const ready = conds.find((c) => c.type === "Ready");
    let s = ready?.status === "True" ? "Ready" : ready ? "NotReady" : "Unknown";
    if ((o.spec as Obj | undefined)?.unschedulable) s += ",SchedulingDisabled";
    return s;
  },
  "Node/Roles": (o) => {
    const labels = ((o.metadata as Obj).labels as Obj | undefined) ?? {};
    const roles = Object.keys(labels)
      .filter((k) => k.startsWith("node-role.kubernetes.io/"))
      .map((k) => k.slice("node-role.kubernetes.io/".length));
    return roles.length ? roles.sort().join(",") : "<none>";
  },
  "ConfigMap/Data": (o) => count(o.data) + count(o.binaryData),
  "Secret/Data": (o) => count(o.data),
  "ServiceAccount/Secrets": (o) => (Array.isArray(o.secrets) ? o.secrets.length : 0),
  "PersistentVolumeClaim/Access Modes": (o) => accessModes((o.spec as Obj | undefined)?.accessModes),
  "PersistentVolume/Access Modes": (o) => accessModes((o.spec as Obj | undefined)?.accessModes),
  "PersistentVolume/Claim": (o) => {
    const ref = (o.spec as Obj | undefined)?.claimRef as Obj | undefined;
    return ref ? `${str(ref.namespace)}/${str(ref.name)}` : "";
  },
  "Service/Port(s)": (o) =>
    (((o.spec as Obj | undefined)?.ports as Obj[] | undefined) ?? [])
      .map((p) => `${str(p.port)}/${str(p.protocol ?? "TCP")}`)
      .join(",") || "<none>",
  "Event/Object": (o) => {
    const io = (o.involvedObject as Obj | undefined) ?? {};
    return `${str(io.kind).toLowerCase()}/${str(io.name)}`;
  },
  "HorizontalPodAutoscaler/Reference": (o) => {
    const r = (o.spec as Obj | undefined)?.scaleTargetRef as Obj | undefined;
    return r ? `${str(r.kind)}/${str(r.name)}` : "";
  },
};

function accessModes(v: unknown): string {
  const short: Record<string, string> = {
    ReadWriteOnce: "RWO",
    ReadOnlyMany: "ROX",
    ReadWriteMany: "RWX",
    ReadWriteOncePod: "RWOP",
  };
  return Array.isArray(v) ? v.map((m) => short[String(m)] ?? String(m)).join(",") : "";
}

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

function formatCell(type: string, v: unknown, nowMs: number): unknown {
  if (v === undefined || v === null) return null;
  if (type === "date" && typeof v === "string") {
    const t = Date.parse(v);
    return Number.isNaN(t) ? v : humanDuration(nowMs - t);
  }
  if (type === "string" && typeof v === "object") return JSON.stringify(v);
  return v;
}

/** Columns a built-in definition computes in code (ResourceDefinition.columns: the complete list, Name first). */
function definedColumns(
  r: ServedResource,
): { defs: ColumnDefinition[]; cells: (o: Obj, now: number) => unknown[] } | undefined {
  const cols = r.def.columns;
  if (!cols || cols.length === 0) return undefined;
  return {
    defs: cols.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? "",
      description: c.description ?? "",
      priority: c.priority ?? 0,
    })),
    cells: (o, now) =>
      cols.map((c) => {
        let v: unknown;
        try {
          v = c.cell(o);
        } catch {
          v = undefined;
        }
        return formatCell(c.type, v, now);
      }),
  };
}

export function tableColumns(r: ServedResource, version: string): { defs: ColumnDefinition[]; cols: PrinterColumn[] } {
  let cols = r.columns(version);
  if (cols.length === 0) cols = [{ name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }];
  const defs: ColumnDefinition[] = [
    {
      name: "Name",
      type: "string",
      format: "name",
      description:
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically.",
      priority: 0,
    },
  ];
  for (const c of cols) {
    defs.push({
      name: c.name,
      type: c.type === "date" ? "date" : c.type,
      format: c.format ?? "",
      description:
        c.description ??
        (c.name === "Age"
          ? "CreationTimestamp is a timestamp representing the server time when this object was created."
          : ""),
      priority: c.priority ?? 0,
    });
  }
  return { defs, cols };
}

export function tableCells(r: ServedResource, cols: PrinterColumn[], o: Obj, nowMs: number): unknown[] {
  const md = (o.metadata as Obj | undefined) ?? {};
  const cells: unknown[] = [str(md.name)];
  for (const c of cols) {
    const fn = computed[`${r.kind}/${c.name}`];
    let v: unknown = fn ? fn(o) : c.jsonPath ? evalJsonPath(o, c.jsonPath)[0] : undefined;
    if (v === undefined) v = null;
    else if (c.type === "date" && typeof v === "string") {
      const t = Date.parse(v);
      v = Number.isNaN(t) ? v : humanDuration(nowMs - t);
    } else if (c.type === "string" && typeof v === "object" && v !== null) v = JSON.stringify(v);
    cells.push(v);
  }
  return cells;
}

export function partialObjectMetadata(o: Obj): Obj {
  const md = { ...((o.metadata as Obj | undefined) ?? {}) };
  delete md.managedFields;
  return { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: md };
}

export function buildTable(
  r: ServedResource,
  version: string,
  items: Obj[],
  listMeta: Obj,
  opts: { includeObject?: string; noHeaders?: boolean } = {},
): Obj {
  const defined = definedColumns(r);
  const { defs, cols } = defined ? { defs: defined.defs, cols: [] } : tableColumns(r, version);
  const now = Date.now();
  const cellsOf = (o: Obj): unknown[] => (defined ? defined.cells(o, now) : tableCells(r, cols, o, now));
  const table: Obj = {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: listMeta,
    columnDefinitions: opts.noHeaders ? null : defs,
    rows: items.map((o) => {
      const row: Obj = { cells: cellsOf(o) };
      if (opts.includeObject === "None") return row;
      row.object = opts.includeObject === "Object" ? o : partialObjectMetadata(o);
      return row;
    }),
  };
  return table;
}
