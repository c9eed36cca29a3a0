import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MigrateFlag, migrationCall, readJobStats, writePerform3Params } from "./migrate.js";
import { readTypedParams, writeTypedParams } from "./rpc.js";
import { XdrReader, XdrWriter } from "./xdr.js";

const dom = { name: "default_vm", uuid: Buffer.alloc(16, 7), id: 3 };
const base = {
  destinationUri: "qemu+tcp://10.244.1.5:49152/system",
  migrateUri: "tcp://10.244.1.5:49153",
  destinationXml: "<domain/>",
  copyDisks: [] as string[],
};

describe("libvirt migration calls (XDR)", () => {
  it("encodes virDomainMigratePerform3Params as remote_protocol.x lays it out", () => {
    const buf = writePerform3Params(new XdrWriter(), dom, {
      ...base,
      listenAddress: "10.244.1.5",
      copyDisks: ["vda", "vdb"],
      disksUri: "tcp://10.244.1.5:49154",
      bandwidthMiBps: 64,
      parallelConnections: 4,
      autoConverge: true,
    }).toBuffer();
    const r = new XdrReader(buf);
    assert.equal(r.string(), "default_vm");
    assert.deepEqual(r.fixedOpaque(16), dom.uuid);
    assert.equal(r.int(), 3);
    assert.equal(r.optString(), base.destinationUri); // dconnuri: remote_string
    const params = readTypedParams(r);
    assert.deepEqual(
      params.map((p) => [p.field, p.type, p.value]),
      [
        ["migrate_uri", "string", "tcp://10.244.1.5:49153"],
        ["destination_xml", "string", "<domain/>"],
        ["persistent_xml", "string", "<domain/>"],
        ["listen_address", "string", "10.244.1.5"],
        ["bandwidth", "ullong", 64],
        ["migrate_disks", "string", "vda"],
        ["migrate_disks", "string", "vdb"],
        ["disks_uri", "string", "tcp://10.244.1.5:49154"],
        ["parallel.connections", "int", 4],
      ],
    );
    assert.equal(r.opaque().length, 0); // cookie_in
    const flags = r.uint();
    assert.equal(r.remaining, 0);
    assert.equal(
      flags,
      MigrateFlag.Live |
        MigrateFlag.PeerToPeer |
        MigrateFlag.PersistDest |
        MigrateFlag.NonSharedInc |
        MigrateFlag.AutoConverge |
        MigrateFlag.Parallel,
    );
    assert.equal(flags, 1 | 2 | 8 | 128 | 8192 | 131072); // the numbers of libvirt-domain.h
  });

  it("shared disks only: no copy flag, no disk parameters; 0 bandwidth means unlimited", () => {
    const { params, flags } = migrationCall({ ...base, bandwidthMiBps: 0, parallelConnections: 1, postCopy: true });
    assert.equal(flags, MigrateFlag.Live | MigrateFlag.PeerToPeer | MigrateFlag.PersistDest | MigrateFlag.PostCopy);
    assert.deepEqual(
      params.map((p) => p.field),
      ["migrate_uri", "destination_xml", "persistent_xml"],
    );
  });

  it("decodes virDomainGetJobStats (every typed-parameter type) and round-trips typed parameters", () => {
    const w = new XdrWriter().int(1); // VIR_DOMAIN_JOB_BOUNDED
    writeTypedParams(w, [
      { field: "operation", type: "int", value: 3 },
      { field: "time_elapsed", type: "ullong", value: 1234 },
      { field: "data_total", type: "ullong", value: 2 ** 40 + 5 },
      { field: "data_processed", type: "ullong", value: 1000 },
      { field: "data_remaining", type: "ullong", value: 500 },
      { field: "downtime", type: "ullong", value: 42 },
      { field: "memory_iteration", type: "ullong", value: 2 },
      { field: "compression_cache", type: "llong", value: -1 },
      { field: "something", type: "double", value: 0.5 },
      { field: "flag", type: "boolean", value: true },
      { field: "count", type: "uint", value: 9 },
      { field: "errmsg", type: "string", value: "boom" },
    ]);
    const st = readJobStats(new XdrReader(w.toBuffer()));
    assert.deepEqual(st, {
      type: "bounded",
      operation: 3,
      timeElapsedMs: 1234,
      dataTotal: 2 ** 40 + 5,
      dataProcessed: 1000,
      dataRemaining: 500,
      downtimeMs: 42,
      memoryIteration: 2,
      errorMessage: "boom",
    });
    assert.deepEqual(readJobStats(new XdrReader(new XdrWriter().int(5).uint(0).toBuffer())), { type: "cancelled" });
    assert.throws(() => readTypedParams(new XdrReader(new XdrWriter().uint(1).string("x").int(99).toBuffer())), /99/);
  });
});
