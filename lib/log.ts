// One JSON line per event, with object identity as fields (KubeVirt's keys: kind, namespace, name, uid).

export type Level = "debug" | "info" | "warn" | "error";
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level?: Level;
  write?: (line: string) => void;
}

function serialize(v: unknown): unknown {
  if (v instanceof Error) return { message: v.message, name: v.name, stack: v.stack };
  return v;
}

export function createLogger(base: Record<string, unknown>, opts: LoggerOptions = {}): Logger {
  const min = order[opts.level ?? ((process.env.TSVIRT_LOG_LEVEL as Level | undefined) || "info")] ?? 20;
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (order[level] < min) return;
    const rec: Record<string, unknown> = { level, time: new Date().toISOString(), ...base, msg };
    if (fields) for (const [k, v] of Object.entries(fields)) rec[k] = serialize(v);
    write(`${JSON.stringify(rec)}\n`);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger({ ...base, ...fields }, opts),
  };
}

interface ObjLike {
  kind?: string;
  metadata?: { namespace?: string; name?: string; uid?: string };
}

export function forObject(log: Logger, o: ObjLike): Logger {
  return log.child({ kind: o.kind, namespace: o.metadata?.namespace, name: o.metadata?.name, uid: o.metadata?.uid });
}

export const nullLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => nullLogger,
};
