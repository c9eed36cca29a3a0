// libvirt's migration calls as data: the typed parameters and flags of virDomainMigratePerform3Params (what
// virDomainMigrateToURI3 sends for a peer-to-peer migration) and the decoding of virDomainGetJobStats. Pure.
// Names and values: include/libvirt/libvirt-domain.h (VIR_MIGRATE_*, VIR_MIGRATE_PARAM_*, VIR_DOMAIN_JOB_*).
import { type DomainRef, readTypedParams, type TypedParam, writeDomain, writeTypedParams } from "./rpc.js";
import type { JobStats, JobType, MigrateOptions } from "./types.js";
import type { XdrReader, XdrWriter } from "./xdr.js";

export const MigrateFlag = {
  Live: 1 << 0,
  PeerToPeer: 1 << 1,
  PersistDest: 1 << 3,
  UndefineSource: 1 << 4,
  NonSharedInc: 1 << 7,
  Unsafe: 1 << 9,
  AutoConverge: 1 << 13,
  PostCopy: 1 << 15,
  Parallel: 1 << 17,
} as const;

/**
 * KubeVirt's flags (generateMigrationFlags): live, peer to peer, persistent on the destination; incremental copy
 * of the listed disks (only the top of each backing chain: a containerDisk's base exists on the target);
 * auto-converge, post-copy and multifd when asked. Not UNDEFINE_SOURCE: the source's definition dies with its pod,
 * and until then its Shutoff(Migrated) domain keeps the completed job's statistics (QEMU's measured downtime).
 */
export function migrationCall(opts: MigrateOptions): { params: TypedParam[]; flags: number } {
  let flags = MigrateFlag.Live | MigrateFlag.PeerToPeer | MigrateFlag.PersistDest;
  const params: TypedParam[] = [
    { field: "migrate_uri", type: "string", value: opts.migrateUri },
    { field: "destination_xml", type: "string", value: opts.destinationXml },
    { field: "persistent_xml", type: "string", value: opts.destinationXml },
  ];
  if (opts.listenAddress) params.push({ field: "listen_address", type: "string", value: opts.listenAddress });
  if (opts.bandwidthMiBps && opts.bandwidthMiBps > 0) {
    params.push({ field: "bandwidth", type: "ullong", value: opts.bandwidthMiBps });
  }
  if (opts.copyDisks.length > 0) {
    flags |= MigrateFlag.NonSharedInc;
    for (const d of opts.copyDisks) params.push({ field: "migrate_disks", type: "string", value: d });
    if (opts.disksUri) params.push({ field: "disks_uri", type: "string", value: opts.disksUri });
  }
  if (opts.autoConverge) flags |= MigrateFlag.AutoConverge;
  if (opts.postCopy) flags |= MigrateFlag.PostCopy;
  if (opts.parallelConnections && opts.parallelConnections > 1) {
    flags |= MigrateFlag.Parallel;
    params.push({ field: "parallel.connections", type: "int", value: opts.parallelConnections });
  }
  return { params, flags };
}

/** remote_domain_migrate_perform3_params_args: dom, dconnuri, params, cookie_in (empty), flags. */
export function writePerform3Params(w: XdrWriter, dom: DomainRef, opts: MigrateOptions): XdrWriter {
  const { params, flags } = migrationCall(opts);
  writeDomain(w, dom).optString(opts.destinationUri);
  writeTypedParams(w, params);
  return w.opaque(Buffer.alloc(0)).uint(flags);
}

const JOB_TYPES: readonly JobType[] = ["none", "bounded", "unbounded", "completed", "failed", "cancelled"];

/** remote_domain_get_job_stats_ret: type, then typed parameters (time_elapsed, data_*, downtime, errmsg …). */
export function readJobStats(r: XdrReader): JobStats {
  const type = JOB_TYPES[r.int()] ?? "none";
  const out: JobStats = { type };
  for (const p of readTypedParams(r)) {
    if (p.field === "errmsg" && typeof p.value === "string") out.errorMessage = p.value;
    const key = NUMERIC_FIELDS[p.field];
    if (key && typeof p.value === "number") out[key] = p.value;
  }
  return out;
}

const NUMERIC_FIELDS: Readonly<Record<string, Exclude<keyof JobStats, "type" | "errorMessage">>> = {
  operation: "operation",
  time_elapsed: "timeElapsedMs",
  data_total: "dataTotal",
  data_processed: "dataProcessed",
  data_remaining: "dataRemaining",
  downtime: "downtimeMs",
  memory_iteration: "memoryIteration",
};
