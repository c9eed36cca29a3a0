import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nullLogger } from "../lib/log.js";
import { parseDockerConfigJson } from "./client.js";
import { errImagePull, RegistryError, toRegistryError, tripsBreaker } from "./errors.js";
import { progressSink } from "./progress.js";

describe("ErrImagePull", () => {
  it("is a Status with one cause per registry tried", () => {
    const e = errImagePull("r.example/a:1", [
      { source: "m.example/a", kind: "serverError", message: "manifest: server error (503)" },
      { source: "r.example/a", kind: "notFound", message: "manifest: not found (404)" },
    ]);
    assert.equal(e.status.reason, "ErrImagePull");
    assert.equal(e.status.code, 502);
    assert.deepEqual(e.status.details?.causes, [
      { type: "serverError", field: "m.example/a", message: "manifest: server error (503)" },
      { type: "notFound", field: "r.example/a", message: "manifest: not found (404)" },
    ]);
    assert.match(
      e.message,
      /^Failed to pull image "r\.example\/a:1": m\.example\/a: manifest: server error \(503\); r\.example/,
    );
    assert.equal(errImagePull("x", [{ source: "s", kind: "notFound", message: "m" }]).status.code, 404);
  });
  it("classifies network errors and decides what trips the breaker", () => {
    assert.equal(toRegistryError(Object.assign(new Error("x"), { code: "ECONNREFUSED" })).kind, "unreachable");
    assert.equal(toRegistryError(Object.assign(new Error("x"), { name: "AbortError" })).kind, "aborted");
    assert.equal(
      toRegistryError(Object.assign(new Error("x"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" })).kind,
      "protocol",
    );
    const keep = new RegistryError("throttled", "429", 5000);
    assert.equal(toRegistryError(keep), keep);
    assert.ok(tripsBreaker("serverError") && tripsBreaker("digestMismatch") && tripsBreaker("stalled"));
    assert.ok(!tripsBreaker("notFound") && !tripsBreaker("unauthorized") && !tripsBreaker("aborted"));
  });
});

describe("parseDockerConfigJson", () => {
  it("reads auth, username/password and identity tokens per host", () => {
    const creds = parseDockerConfigJson(
      JSON.stringify({
        auths: {
          "https://index.docker.io/v1/": { auth: Buffer.from("u1:p:w").toString("base64") },
          "harbor.example:8443": { username: "robot$x", password: "tok" },
          "quay.io": { identitytoken: "id-tok" },
        },
      }),
    );
    assert.deepEqual(creds, {
      "docker.io": { username: "u1", password: "p:w" },
      "harbor.example:8443": { username: "robot$x", password: "tok" },
      "quay.io": { identityToken: "id-tok" },
    });
  });
});

describe("progressSink", () => {
  it("redraws one bar line on a terminal", () => {
    let out = "";
    let now = 0;
    const tty = {
      isTTY: true,
      columns: 120,
      write: (s: string) => {
        out += s;
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    const sink = progressSink("pull x", tty, nullLogger, { everyMs: 100, now: () => now });
    now = 1000;
    sink.update(1024 * 1024, 4 * 1024 * 1024);
    now = 1050;
    sink.update(2 * 1024 * 1024, 4 * 1024 * 1024); // throttled
    sink.finish();
    const lines = out.split("\r").filter(Boolean);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^pull x \[#+\.+\] 1\.0 MiB \/ 4\.0 MiB {2}1\.0 MiB\/s {2}ETA 3s$/);
    assert.match(lines[1]!, /2\.0 MiB \/ 4\.0 MiB .*\n$/);
  });
  it("logs progress lines off a terminal", () => {
    const logged: Record<string, unknown>[] = [];
    const log = { ...nullLogger, info: (msg: string, f?: Record<string, unknown>) => logged.push({ msg, ...f }) };
    const pipe = { isTTY: false, write: () => true } as unknown as NodeJS.WriteStream;
    let now = 0;
    const sink = progressSink("push y", pipe, log, { everyMs: 2000, now: () => now });
    now = 2000;
    sink.update(50, 100);
    sink.finish();
    assert.deepEqual(
      logged.map((l) => [l.msg, l.completedBytes, l.totalBytes, l.etaSeconds]),
      [
        ["transfer progress", 50, 100, 2],
        ["transfer done", 50, 100, 2],
      ],
    );
  });
});
