// The job a data-mover pod's process reads (<pod dir>/job.json): written by the node agent (handler/workers) from
// the API, read by `tsvirt importer` (which has no API access). Secret material never sits in job.json itself: it
// is in 0600 files beside it, named here. Shared by the importer, upload and clone shapes.
import { readFile } from "node:fs/promises";
import type { RegistriesConfig } from "../../images/index.js";

/** Where the data goes: the volume's disk.img (Filesystem) or its loop device (Block), never grown past sizeBytes. */
export interface JobTarget {
  path: string;
  block: boolean;
  /** The claim's size in bytes (disk.img's size): an image larger than this is ImageTooLarge. */
  sizeBytes: number;
}

export interface HttpJobSource {
  kind: "http";
  url: string;
  /** CDI's `checksum` ("<algorithm>:<hex>", algorithm md5|sha1|sha256|sha512) of the bytes as served. */
  checksum?: string;
  /** 0600 file: {"username":…,"password":…} (CDI's secretRef keys accessKeyId / secretKey). */
  authFile?: string;
  /** PEM CA bundle (certConfigMap) to trust for https. */
  caFile?: string;
}

export interface RegistryJobSource {
  kind: "registry";
  /** The image reference (docker:// stripped). */
  image: string;
  /** The node's registry list in force when the job was written (failover order). */
  registries: RegistriesConfig;
  /** 0600 file: {"username":…,"password":…} for every registry of the list (CDI's secretRef). */
  authFile?: string;
  caFile?: string;
}

/** A source the node agent could not turn into a job: the worker fails with InvalidSource (fatal) and this message. */
export interface InvalidJobSource {
  kind: "invalid";
  message: string;
}

/** An upload: the bytes come from the upload server's socket (storage/upload), not from a source to fetch. */
export interface UploadJobSource {
  kind: "upload";
}

/**
 * A clone (DataVolume source.pvc, storage/clone): the source volume on this node (read directly), or the clone-source
 * pod on another node (its pod IP and port; the token is the target DV's uid, which the source pod serves only).
 */
export interface PvcJobSource {
  kind: "pvc";
  local?: { path: string; block: boolean };
  remote?: { host: string; port: number; token: string };
}

export type JobSource =
  | { kind: "blank" }
  | HttpJobSource
  | RegistryJobSource
  | PvcJobSource
  | InvalidJobSource
  | UploadJobSource;

export interface WorkerJob {
  version: 1;
  /** The owner DataVolume (for log lines only: the process never calls the API). */
  owner: { namespace: string; name: string; uid: string };
  target: JobTarget;
  source: JobSource;
  /** The egress proxy's socket and the host:ports it lets through (absent: the process needs no network). */
  egress?: { socket: string; allow: string[] };
  /** Where the process reports progress ("45.2%") and its last words (one JSON line). */
  progressFile: string;
  terminationLog: string;
  /** A directory of the pod's own for scratch files (never the target's directory). */
  scratchDir: string;
}

export const JOB_FILE = "job.json";

/** Reads and sanity-checks a job file (written by the node agent; a bad one is InvalidSource, fatal). */
export async function readJob(path: string): Promise<WorkerJob> {
  const job = JSON.parse(await readFile(path, "utf8")) as WorkerJob;
  if (job?.version !== 1 || !job.target?.path || !job.source?.kind || !job.terminationLog || !job.progressFile) {
    throw new Error(`${path}: not a version 1 worker job`);
  }
  return job;
}
