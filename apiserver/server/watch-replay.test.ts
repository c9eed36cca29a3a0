import assert from "node:assert/strict";
import { test } from "node:test";
import type { EventType } from "../storage/store.js";
import { type LoggedEvent, replaySelected } from "./watch-replay.js";

interface O {
  name: string;
  sel: boolean;
}
const ev = (type: EventType, name: string, sel: boolean): LoggedEvent<O> => ({
  type,
  namespace: "ns",
  name,
  object: { name, sel },
});
const match = (o: O): boolean => o.sel;
const shown = (r: ReturnType<typeof replaySelected<O>>): string[] | string =>
  r === "expired" ? r : r.map((e) => `${e.type}:${e.object.name}`);

test("replaySelected: starts from each object's state at the revision and follows it through the log", () => {
  const asked: string[][] = [];
  const states = new Map([
    ["ns/held", { type: "MODIFIED" as EventType, object: { name: "held", sel: true } }],
    ["ns/out", { type: "ADDED" as EventType, object: { name: "out", sel: false } }],
  ]);
  const r = replaySelected(
    [
      ev("MODIFIED", "held", false), // the label went away while the client was disconnected
      ev("MODIFIED", "out", true), // the label came
      ev("MODIFIED", "out", true),
      ev("ADDED", "new", false),
      ev("MODIFIED", "new", true),
      ev("DELETED", "new", true),
      ev("MODIFIED", "held", true),
      ev("DELETED", "held", true),
    ],
    match,
    (keys) => {
      asked.push(keys);
      return states;
    },
  );
  assert.deepEqual(shown(r), [
    "DELETED:held",
    "ADDED:out",
    "MODIFIED:out",
    "ADDED:new",
    "DELETED:new",
    "ADDED:held",
    "DELETED:held",
  ]);
  assert.deepEqual(asked, [["ns/held", "ns/out"]], "one lookup, only of objects that existed at the revision");
});

test("replaySelected: an object deleted at the revision and created again starts outside the selection", () => {
  const r = replaySelected(
    [ev("MODIFIED", "x", true)],
    match,
    () => new Map([["ns/x", { type: "DELETED", object: { name: "x", sel: true } }]]),
  );
  assert.deepEqual(shown(r), ["ADDED:x"]);
});

test("replaySelected: expired when the log no longer tells an object's state at the revision", () => {
  assert.equal(
    replaySelected([ev("MODIFIED", "old", false)], match, () => new Map()),
    "expired",
  );
  // creations need no lookup
  let asked = false;
  const r = replaySelected([ev("ADDED", "n", true)], match, () => {
    asked = true;
    return new Map();
  });
  assert.deepEqual(shown(r), ["ADDED:n"]);
  assert.equal(asked, false);
});
