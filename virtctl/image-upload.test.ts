import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { FakeClient, resources } from "../client/index.js";
import { noteLoadedModules } from "../tests/lib/modules.js";
import {
  checkFlags,
  checkImage,
  IMMEDIATE_BIND,
  parseTarget,
  sizeBytes,
  uploadDataVolume,
  uploadFile,
  waitForPhase,
  warnWhileWaiting,
} from "./image-upload.js";
import { runVirtctl } from "./testing.js";

describe("virtctl image-upload", () => {
  let dir = "";
  const qcow2 = (): Buffer => {
    const b = Buffer.alloc(4096);
    b.write("QFI\xfb", 0, "latin1");
    b.writeUInt32BE(3, 4);
    b.writeBigUInt64BE(BigInt(2 ** 31), 24);
    return b;
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "virtctl-upload-"));
    await writeFile(join(dir, "notes.txt"), "hello, this is not a disk\n");
    await writeFile(join(dir, "disk.raw"), Buffer.alloc(1 << 20, 1));
    await writeFile(join(dir, "random.bin"), Buffer.alloc(300_000, 7));
    await writeFile(join(dir, "disk.qcow2"), qcow2());
    await writeFile(join(dir, "disk.raw.gz"), gzipSync(Buffer.alloc(1 << 20, 1)));
    await writeFile(join(dir, "notes.gz"), gzipSync(Buffer.from("just some text\n".repeat(100))));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("parses dv/pvc NAME, sizes and flags as KubeVirt's does", () => {
    assert.deepEqual(parseTarget("dv", "disk1"), { kind: "dv", name: "disk1" });
    assert.deepEqual(parseTarget("PVC", "disk1"), { kind: "pvc", name: "disk1" });
    assert.throws(() => parseTarget("vm", "x"), /use dv or pvc/);
    assert.throws(() => parseTarget("dv", undefined), /expecting two args/);
    assert.throws(() => parseTarget("dv", "Bad_Name"), /invalid name/);
    assert.equal(sizeBytes("512Mi"), 512 << 20);
    assert.equal(sizeBytes("1G"), 1e9);
    assert.throws(() => sizeBytes("lots"), /invalid --size/);
    assert.throws(() => checkFlags({ waitSecs: "300" }), /--image-path is required/);
    assert.throws(() => checkFlags({ imagePath: "x", waitSecs: "300" }), /size must be specified/);
    assert.deepEqual(checkFlags({ imagePath: "x", waitSecs: "300", noCreate: true }), { waitSecs: 300 });
    assert.throws(() => checkFlags({ imagePath: "x", size: "1Gi", waitSecs: "0" }), /--wait-secs/);
    assert.throws(() => checkFlags({ imagePath: "x", size: "1Gi", waitSecs: "9", accessMode: "RWX" }), /access-mode/);
    assert.throws(() => checkFlags({ imagePath: "x", size: "1Gi", waitSecs: "9", volumeMode: "tape" }), /volume-mode/);
  });

  it("the DataVolume asks for an upload and immediate binding, with the claim settings given", () => {
    const dv = uploadDataVolume(
      "ns1",
      "d1",
      { size: "1Gi", waitSecs: "1", accessMode: "ReadWriteOnce", volumeMode: "block", storageClass: "tsvirt-local" },
      1 << 30,
    );
    assert.deepEqual(dv, {
      apiVersion: "cdi.kubevirt.io/v1beta1",
      kind: "DataVolume",
      metadata: { name: "d1", namespace: "ns1", annotations: { [IMMEDIATE_BIND]: "true" } },
      spec: {
        source: { upload: {} },
        storage: {
          resources: { requests: { storage: "1Gi" } },
          accessModes: ["ReadWriteOnce"],
          volumeMode: "Block",
          storageClassName: "tsvirt-local",
        },
      },
    });
  });

  it("knows a disk image from its head, inside gzip too", async () => {
    assert.deepEqual(await checkImage(join(dir, "disk.raw")), {
      format: "raw",
      compression: "none",
      fileBytes: 1 << 20,
      virtualSize: 1 << 20,
    });
    const q = await checkImage(join(dir, "disk.qcow2"));
    assert.equal(q.format, "qcow2");
    assert.equal(q.virtualSize, 2 ** 31);
    assert.equal((await checkImage(join(dir, "disk.raw.gz"))).compression, "gzip");
    await assert.rejects(checkImage(join(dir, "notes.txt")), /is not a disk image/);
    await assert.rejects(checkImage(join(dir, "notes.gz")), /is not a disk image/);
    await assert.rejects(checkImage(join(dir, "nope")), /no such file/);
  });

  it("refuses a file that is not a disk image before creating anything", async () => {
    const r = await runVirtctl(["image-upload", "dv", "d1", "--size", "1Gi", "--image-path", join(dir, "notes.txt")]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^Error: .*notes\.txt is not a disk image/);
    assert.deepEqual(
      r.client.actions.filter((a) => a.verb !== "get"),
      [],
    );
  });

  it("refuses a raw file of a partial sector (the upload server would) before creating anything", async () => {
    await assert.rejects(checkImage(join(dir, "random.bin")), /300000 bytes, not a whole number of 512-byte sectors/);
    const r = await runVirtctl(["image-upload", "dv", "d1", "--size", "1Gi", "--image-path", join(dir, "random.bin")]);
    assert.equal(r.code, 1);
    assert.match(r.err, /^Error: .*random\.bin is 300000 bytes, not a whole number of 512-byte sectors/);
    assert.deepEqual(r.client.actions, []);
  });

  it("while it waits, prints each new Warning of the DataVolume and its claim once (a claim no node can hold)", async (t) => {
    const client = new FakeClient();
    const event = (n: string, kind: string, name: string, type: string, message: string) =>
      client.create(resources.events, "ns1", {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name: n, namespace: "ns1" },
        involvedObject: { kind, name, namespace: "ns1" },
        type,
        reason: "ProvisioningFailed",
        message,
      } as never);
    await event("e1", "PersistentVolumeClaim", "d1", "Warning", "supports ReadWriteOnce only");
    await event("e2", "PersistentVolumeClaim", "other", "Warning", "not ours");
    await event("e3", "PersistentVolumeClaim", "d1", "Normal", "just news");
    let err = "";
    const stop = warnWhileWaiting(client, "ns1", "d1", { out: () => {}, err: (s) => (err += s) }, 10);
    let stopped = false;
    t.after(() => stopped || stop());
    // bounded waits for what a user would see, several looks each (each line is printed once)
    const seen = async (re: RegExp) => {
      for (let i = 0; i < 500 && !re.test(err); i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 50));
    };
    await seen(/ReadWriteOnce only/);
    await event("e4", "DataVolume", "d1", "Warning", "fits no node");
    await seen(/fits no node/);
    // a watch the server ends (expired, or a plain close) is opened again, and prints nothing twice
    client.endWatches(true);
    await event("e5", "PersistentVolumeClaim", "d1", "Warning", "still no room");
    await seen(/still no room/);
    client.endWatches(false);
    await event("e6", "DataVolume", "d1", "Warning", "nor now");
    await seen(/nor now/);
    assert.equal(client.watcherCount(), 1, "one watch at a time");
    stop();
    stopped = true;
    assert.equal(
      err,
      "Warning: PersistentVolumeClaim d1: ProvisioningFailed: supports ReadWriteOnce only\n" +
        "Warning: DataVolume d1: ProvisioningFailed: fits no node\n" +
        "Warning: PersistentVolumeClaim d1: ProvisioningFailed: still no room\n" +
        "Warning: DataVolume d1: ProvisioningFailed: nor now\n",
    );
    // a watch selected by the server, not a list of the namespace's events every few seconds; nothing left open
    const reads = client.actions.filter((a) => a.resource === "events" && a.verb !== "create");
    assert.ok(reads.length >= 3 && reads.every((a) => a.verb === "watch"), JSON.stringify(reads.map((a) => a.verb)));
    assert.deepEqual(
      [...new Set(reads.map((a) => (a as { options?: { fieldSelector?: string } }).options?.fieldSelector))],
      ["involvedObject.name=d1,type=Warning"],
    );
    assert.equal(client.watcherCount(), 0, "stop() ends the watch");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(client.watcherCount(), 0, "and none is opened again after it");
  });

  it("waits for a DataVolume phase on a watch: the change as it happens, bounded, nothing left open", async () => {
    const client = new FakeClient();
    const dv = (phase: string, extra: object = {}) => ({
      apiVersion: "cdi.kubevirt.io/v1beta1",
      kind: "DataVolume",
      metadata: { name: "d1", namespace: "ns1" },
      spec: { source: { upload: {} } },
      status: { phase, ...extra },
    });
    await client.create(resources.datavolumes, "ns1", dv("UploadReady") as never);
    const timedOut = (p: string) => new Error(`timed out in ${p}`);
    const succeeded = (p: string) => p === "Succeeded";
    const waiting = waitForPhase(client, "ns1", "d1", succeeded, Date.now() + 5_000, timedOut);
    await new Promise((r) => setTimeout(r, 20));
    const changed = Date.now();
    await client.updateStatus(resources.datavolumes, dv("Succeeded") as never);
    assert.equal((await waiting).status?.phase, "Succeeded");
    assert.ok(Date.now() - changed < 50, "no poll interval between the change and the answer");
    assert.deepEqual(
      client.actions.filter((a) => a.resource === "datavolumes" && a.verb !== "updateStatus").map((a) => a.verb),
      ["create", "watch"],
      "one watch, no GET every few ms",
    );
    assert.equal(client.watcherCount(), 0);
    // bounded: the deadline says the phase it saw last; the watch goes with it
    await client.updateStatus(resources.datavolumes, dv("UploadScheduled") as never);
    await assert.rejects(
      waitForPhase(client, "ns1", "d1", succeeded, Date.now() + 30, timedOut),
      /timed out in UploadScheduled/,
    );
    assert.equal(client.watcherCount(), 0);
    // Failed (with the Running condition's reason and message), and a deleted DV, end the wait
    const failing = assert.rejects(
      waitForPhase(client, "ns1", "d1", succeeded, Date.now() + 5_000, timedOut),
      /DataVolume ns1\/d1 failed: NotADiskImage: not a disk/,
    );
    await client.updateStatus(
      resources.datavolumes,
      dv("Failed", {
        conditions: [{ type: "Running", status: "False", reason: "NotADiskImage", message: "not a disk" }],
      }) as never,
    );
    await failing;
    await client.updateStatus(resources.datavolumes, dv("UploadReady") as never);
    const deleting = assert.rejects(
      waitForPhase(client, "ns1", "d1", succeeded, Date.now() + 5_000, timedOut),
      /DataVolume ns1\/d1 was deleted/,
    );
    await new Promise((r) => setTimeout(r, 10));
    await client.delete(resources.datavolumes, "ns1", "d1");
    await deleting;
    assert.equal(client.watcherCount(), 0);
  });

  it("virtctl's start loads neither storage/importer nor images/: only image-upload does, when it checks the file", async () => {
    // a resolve hook notes each module the process loads (tsx's own resolution included)
    const index = new URL("./index.ts", import.meta.url).href;
    const code = `
      ${noteLoadedModules()}
      await import(${JSON.stringify(index)});
      setTimeout(() => {
        console.log(JSON.stringify(urls.filter((u) => u.includes("/storage/") || u.includes("/images/"))));
        process.exit(0);
      }, 200);`;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], (e, stdout, stderr) =>
        e ? reject(new Error(`${e.message}: ${stderr}`)) : resolve(stdout),
      ),
    );
    assert.deepEqual(JSON.parse(out), []);
  });

  it("refuses an image larger than --size before creating anything", async () => {
    const r = await runVirtctl(["image-upload", "dv", "d1", "--size", "1Gi", "--image-path", join(dir, "disk.qcow2")]);
    assert.equal(r.code, 1);
    assert.match(r.err, /larger than the requested --size 1Gi/);
    assert.deepEqual(r.client.actions, []);
  });

  it("creates the DataVolume, then waits for UploadReady (bounded by --wait-secs)", async () => {
    const r = await runVirtctl([
      "image-upload",
      "dv",
      "d2",
      "-n",
      "ns2",
      "--size",
      "1Gi",
      "--image-path",
      join(dir, "disk.raw"),
      "--wait-secs",
      "1",
      "--force-bind",
    ]);
    assert.equal(r.code, 1);
    assert.match(r.out, /DataVolume ns2\/d2 created\nWaiting for PVC d2 upload pod to be ready\.\.\.\n/);
    assert.match(r.err, /timed out waiting for the condition: .*--wait-secs 1 \(phase Pending\)/);
    const created = r.client.actions.find((a) => a.verb === "create");
    assert.equal(created?.resource, "datavolumes");
    assert.equal(created?.namespace, "ns2");
  });

  it("--no-create needs an existing DataVolume", async () => {
    const r = await runVirtctl(["image-upload", "dv", "d3", "--no-create", "--image-path", join(dir, "disk.raw")]);
    assert.equal(r.code, 1);
    assert.match(r.err, /DataVolume default\/d3 not found \(--no-create\)/);
  });

  describe("the upload's POST", () => {
    const listen = async (s: Server): Promise<string> => {
      await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
      return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    };
    const body = (req: IncomingMessage): Promise<number> =>
      new Promise((resolve) => {
        let n = 0;
        req.on("data", (c: Buffer) => {
          n += c.length;
        });
        req.on("end", () => resolve(n));
      });
    const quiet = { update() {}, finish() {} };

    it("follows the proxy's redirect to the node agent before sending a byte, and the file goes there", async (t) => {
      const seen: string[] = [];
      const agent = createServer(async (req, res) => {
        seen.push(`agent ${req.url} ${req.headers.authorization ?? "no token"} ${await body(req)}`);
        res.end('{"ok":true}');
      });
      const agentUrl = await listen(agent);
      // a proxy that answers before the body (as the API server does with Expect: 100-continue)
      const proxy = createServer((req, res) => {
        seen.push(`proxy ${req.headers["x-tsvirt-upload-redirect"]} ${req.headers.expect}`);
        res.writeHead(307, { location: `${agentUrl}/upload/ns/pod`, connection: "close" });
        res.end();
      });
      proxy.on("checkContinue", (req, res) => proxy.emit("request", req, res));
      const proxyUrl = await listen(proxy);
      t.after(() => {
        agent.close();
        proxy.close();
      });
      const r = await uploadFile(proxyUrl, "tok", join(dir, "disk.raw"), 1 << 20, {}, quiet);
      assert.equal(r.status, 200);
      assert.deepEqual(seen, ["proxy allowed 100-continue", `agent /upload/ns/pod no token ${1 << 20}`]);
    });

    it("--wait-secs runs out while the proxy holds the upload: KubeVirt's timed-out error, not a byte sent, the DataVolume kept", async (t) => {
      // tsvirt's proxy holds the first POST (Expect: 100-continue) until the upload pod is ready; this one is not
      // ready before 1.5 s, when it takes whatever came and says "not ready" (a late go would take the rest)
      let received = 0;
      const proxy = createServer((req, res) => {
        req.on("data", (c: Buffer) => {
          received += c.length;
        });
        setTimeout(() => {
          res.writeHead(503, { "content-type": "application/json", connection: "close" });
          res.end('{"kind":"Status","message":"upload pod not ready yet: UploadScheduled"}');
        }, 1_500);
      });
      proxy.on("checkContinue", (req, res) => proxy.emit("request", req, res));
      const proxyUrl = await listen(proxy);
      t.after(() => {
        proxy.closeAllConnections();
        proxy.close();
      });
      const client = new FakeClient();
      await client.create(resources.cdiconfigs, undefined, {
        apiVersion: "cdi.kubevirt.io/v1beta1",
        kind: "CDIConfig",
        metadata: { name: "config" },
        status: { uploadProxyURL: proxyUrl },
      } as never);
      client.prependReactor("create", "uploadtokenrequests", (a) => ({
        result: { ...(a.object as object), status: { token: "tok" } },
      }));
      const args = "image-upload dv d9 --size 1Gi --wait-secs 1 --image-path".split(" ");
      const started = Date.now();
      const r = await runVirtctl([...args, join(dir, "disk.raw")], client);
      const took = Date.now() - started;
      assert.equal(r.code, 1);
      assert.match(r.err, /^Error: timed out waiting for the condition: the upload pod of DataVolume default\/d9 /);
      assert.match(r.err, /nothing was sent, the DataVolume is kept/);
      assert.doesNotMatch(r.out, /Uploading/, "no progress bar, no 'Uploading data to'");
      assert.ok(took < 1_450, `the command ends at the deadline, not at the proxy's answer (${took} ms)`);
      await new Promise((res) => setTimeout(res, 200)); // (past the proxy's answer: nothing came late either)
      assert.equal(received, 0, "not a byte of the file was sent");
      assert.deepEqual(
        r.client.actions.filter((a) => a.verb === "delete").map((a) => a.resource),
        [],
        "the DataVolume stays for a later --no-create",
      );
    });

    it("goes through the proxy after all when the redirect's address is not reachable from here", async (t) => {
      const closed = createServer();
      const gone = await listen(closed);
      await new Promise<void>((r) => closed.close(() => r()));
      const seen: string[] = [];
      const proxy = createServer(async (req, res) => {
        if (req.headers["x-tsvirt-upload-redirect"]) {
          res.writeHead(307, { location: `${gone}/upload/ns/pod`, connection: "close" });
          res.end();
          return;
        }
        seen.push(`proxy ${req.headers.authorization} ${await body(req)}`);
        res.end('{"ok":true}');
      });
      proxy.on("checkContinue", (req, res) => proxy.emit("request", req, res));
      const proxyUrl = await listen(proxy);
      t.after(() => proxy.close());
      const r = await uploadFile(proxyUrl, "tok", join(dir, "disk.raw"), 1 << 20, {}, quiet);
      assert.equal(r.status, 200);
      assert.deepEqual(seen, [`proxy Bearer tok ${1 << 20}`]);
    });
  });
});
