// Registry auth and TLS in front of a real docker-registry: the Bearer token flow (with credentials and anonymous),
// Basic auth, redirects to blob storage (credentials stay with their origin) and HTTPS with a custom CA.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { promisify } from "node:util";
import { buildContainerDisk, pullContainerDisk, pushImage, RegistryHealth } from "../../images/index.js";
import { type FaultProxy, startFaultProxy } from "../../images/testing/fault-proxy.js";
import { startRegistry, type TestRegistry } from "../../images/testing/registry.js";
import { isStatusError } from "../../lib/errors.js";
import { requirePrereqs } from "../lib/prereqs.js";

const run = promisify(execFile);
requirePrereqs("docker-registry", "openssl", "qemu-img");

describe("registry auth and TLS", { timeout: 300_000 }, () => {
  let work: string;
  let reg: TestRegistry;
  let P: FaultProxy;
  let Q: FaultProxy;
  let T: FaultProxy;
  let ca: string;
  let disk: Buffer;
  let digest: string;
  let n = 0;
  const cacheDir = async () => mkdtemp(join(work, `c${n++}-`));
  const pullOpts = async () => ({ cacheDir: await cacheDir(), health: new RegistryHealth(), stallTimeoutMs: 5000 });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "tsvirt-images-auth-"));
    reg = await startRegistry();
    // a CA and a server certificate for 127.0.0.1
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await run("openssl", [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      join(work, "ca.key"),
      "-out",
      join(work, "ca.crt"),
      "-days",
      "1",
      "-subj",
      "/CN=tsvirt test CA",
    ]);
    await run("openssl", [
      "req",
      ...ec,
      "-keyout",
      join(work, "srv.key"),
      "-out",
      join(work, "srv.csr"),
      "-subj",
      "/CN=127.0.0.1",
    ]);
    await writeFile(
      join(work, "ext.cnf"),
      "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      join(work, "srv.csr"),
      "-CA",
      join(work, "ca.crt"),
      "-CAkey",
      join(work, "ca.key"),
      "-CAcreateserial",
      "-out",
      join(work, "srv.crt"),
      "-days",
      "1",
      "-extfile",
      join(work, "ext.cnf"),
    ]);
    ca = await readFile(join(work, "ca.crt"), "utf8");
    [P, Q, T] = await Promise.all([
      startFaultProxy(reg.host),
      startFaultProxy(reg.host),
      startFaultProxy(reg.host, {
        tls: {
          key: await readFile(join(work, "srv.key"), "utf8"),
          cert: await readFile(join(work, "srv.crt"), "utf8"),
        },
      }),
    ]);
    disk = randomBytes(512 * 1024);
    await writeFile(join(work, "disk.img"), disk);
    const built = await buildContainerDisk(join(work, "disk.img"), { cacheDir: join(work, "build") });
    digest = built.manifestDigest;
  });
  after(async () => {
    await Promise.allSettled([P?.close(), Q?.close(), T?.close()]);
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });
  beforeEach(() => {
    for (const p of [P, Q, T]) {
      p.reset();
      p.auth = undefined;
      p.redirectBlobsTo = undefined;
    }
  });

  it("pushes and pulls through the Bearer token flow with credentials; no credentials is ErrImagePull (unauthorized)", async () => {
    P.auth = { kind: "bearer", user: "alice", password: "s3cret", token: randomBytes(16).toString("hex") };
    const credentials = { [P.host]: { username: "alice", password: "s3cret" } };
    await pushImage(digest, [`${P.host}/auth/disk:v1`], { cacheDir: join(work, "build"), credentials });
    P.reset();
    const res = await pullContainerDisk(`${P.host}/auth/disk:v1`, { ...(await pullOpts()), credentials });
    assert.deepEqual(await readFile(res.diskPath), disk);
    assert.equal(P.tokenRequests, 1, "one token serves the manifest and every blob");
    await assert.rejects(pullContainerDisk(`${P.host}/auth/disk:v1`, await pullOpts()), (e: unknown) => {
      assert.ok(isStatusError(e) && e.reason === "ErrImagePull");
      assert.deepEqual(
        e.status.details?.causes?.map((c) => [c.field, c.type]),
        [[`${P.host}/auth/disk`, "unauthorized"]],
      );
      return true;
    });
  });

  it("pulls anonymously through a Bearer challenge", async () => {
    P.auth = { kind: "bearer", token: "anonymous-token" };
    const res = await pullContainerDisk(`${P.host}/auth/disk:v1`, await pullOpts());
    assert.deepEqual(await readFile(res.diskPath), disk);
    assert.equal(P.tokenRequests, 1);
  });

  it("answers a Basic challenge with credentials; a wrong password is unauthorized", async () => {
    Q.auth = { kind: "basic", user: "bob", password: "pw" };
    const res = await pullContainerDisk(`${Q.host}/auth/disk:v1`, {
      ...(await pullOpts()),
      credentials: { [Q.host]: { username: "bob", password: "pw" } },
    });
    assert.equal(res.manifestDigest, digest);
    await assert.rejects(
      pullContainerDisk(`${Q.host}/auth/disk:v1`, {
        ...(await pullOpts()),
        credentials: { [Q.host]: { username: "bob", password: "nope" } },
      }),
      (e: unknown) => isStatusError(e) && e.status.details?.causes?.[0]?.type === "unauthorized",
    );
  });

  it("follows a redirect to blob storage without sending credentials to the other origin", async () => {
    P.auth = { kind: "bearer", user: "alice", password: "s3cret", token: "tok-redirect" };
    P.redirectBlobsTo = `http://${Q.host}`;
    const res = await pullContainerDisk(`${P.host}/auth/disk:v1`, {
      ...(await pullOpts()),
      credentials: { [P.host]: { username: "alice", password: "s3cret" } },
    });
    assert.deepEqual(await readFile(res.diskPath), disk);
    assert.ok(P.blobAuthHeaders.length >= 2 && P.blobAuthHeaders.every((h) => h === "Bearer tok-redirect"));
    assert.ok(Q.blobs.size >= 2, "the blobs came from the redirect target");
    assert.ok(
      Q.blobAuthHeaders.every((h) => h === ""),
      "no credentials went to the redirect target",
    );
  });

  it("pulls over HTTPS with a custom CA and refuses the registry without it (no plain-HTTP fallback)", async () => {
    const res = await pullContainerDisk(`${T.host}/auth/disk:v1`, { ...(await pullOpts()), tls: { ca } });
    assert.deepEqual(await readFile(res.diskPath), disk);
    assert.ok(T.requests > 0);
    const before = T.requests;
    await assert.rejects(pullContainerDisk(`127.0.0.1:${T.port}/auth/disk:v2`, await pullOpts()), (e: unknown) => {
      assert.ok(isStatusError(e) && e.reason === "ErrImagePull");
      assert.equal(e.status.details?.causes?.[0]?.type, "protocol");
      assert.match(e.message, /certificate|self.signed|verify/i);
      return true;
    });
    assert.equal(T.requests, before, "nothing was requested without a verified certificate");
  });
});
