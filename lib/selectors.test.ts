import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StatusError } from "./errors.js";
import { labelSelectorFromObject, labelSelectorMatches, parseLabelSelector, selectionEvent } from "./selectors.js";

type Change = "ADDED" | "MODIFIED" | "DELETED";

const web = { app: "web", tier: "frontend", version: "3" };

describe("parseLabelSelector matches as kube-apiserver does", () => {
  const cases: [string, Record<string, string> | undefined, boolean][] = [
    ["", web, true],
    ["app=web", web, true],
    ["app==web", web, true],
    ["app=db", web, false],
    ["app!=db", web, true],
    ["app!=web", web, false],
    ["missing!=x", web, true],
    ["app in (web,db)", web, true],
    ["app in (db)", web, false],
    ["app notin (db)", web, true],
    ["app notin (web)", web, false],
    ["missing notin (web)", web, true],
    ["missing in (web)", web, false],
    ["app", web, true],
    ["missing", web, false],
    ["!missing", web, true],
    ["!app", web, false],
    ["app=web,tier=frontend", web, true],
    ["app=web,tier=backend", web, false],
    ["app = web , tier in ( frontend ) ", web, true],
    ["version>2", web, true],
    ["version<3", web, false],
    ["app=web", undefined, false],
    ["!app", undefined, true],
    ["app notin (x)", {}, true],
    ["in in (in,notin)", { in: "notin" }, true],
    ["example.com/role=db", { "example.com/role": "db" }, true],
    ["empty=", { empty: "" }, true],
    ["x in (a,)", { x: "" }, true],
    ["x in ()", { x: "" }, true],
  ];
  for (const [sel, labels, want] of cases) {
    it(`${JSON.stringify(sel)} on ${JSON.stringify(labels)} → ${want}`, () => {
      assert.equal(parseLabelSelector(sel).matches(labels), want);
    });
  }

  it("canonical string sorts requirements by key", () => {
    assert.equal(parseLabelSelector("tier in (b,a),app=web,!x").toString(), "app=web,tier in (a,b),!x");
  });
});

describe("parseLabelSelector errors are 400 with apimachinery's messages", () => {
  const cases: [string, string | RegExp][] = [
    ["=a", "found '=', expected: !, identifier, or 'end of string'"],
    ["a=b,", "found '', expected: identifier after ','"],
    ["a=b c", "found 'c', expected: ',' or 'end of string'"],
    ["!", "unable to parse requirement: found '', expected: identifier"],
    ["!!", "unable to parse requirement: found '!', expected: identifier"],
    ["a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"],
    ["a in b", "unable to parse requirement: found 'b' expected: '('"],
    ["a in (b", "unable to parse requirement: found '', expected: ',' or ')'"],
    ["!a=b", "found '=', expected: ',' or 'end of string'"],
    ["a=@", /^unable to parse requirement: values\[0\]\[a\]: Invalid value: "@": a valid label must be/],
    ["@=b", /^unable to parse requirement: invalid label key "@": name part must consist of/],
    ["/a=b", /prefix part must be non-empty/],
    ["a>b", /for 'Gt', 'Lt' operators/],
  ];
  for (const [sel, msg] of cases) {
    it(JSON.stringify(sel), () => {
      assert.throws(
        () => parseLabelSelector(sel),
        (e: unknown) => {
          assert.ok(e instanceof StatusError);
          assert.equal(e.code, 400);
          assert.equal(e.reason, "BadRequest");
          if (typeof msg === "string") assert.equal(e.message, msg);
          else assert.match(e.message, msg);
          return true;
        },
      );
    });
  }
});

describe("LabelSelector objects", () => {
  const cases: [unknown, Record<string, string> | undefined, boolean][] = [
    [{}, web, true],
    [undefined, web, false],
    [null, web, false],
    [{ matchLabels: { app: "web" } }, web, true],
    [{ matchLabels: { app: "web", tier: "x" } }, web, false],
    [{ matchExpressions: [{ key: "app", operator: "In", values: ["web", "db"] }] }, web, true],
    [{ matchExpressions: [{ key: "app", operator: "NotIn", values: ["web"] }] }, web, false],
    [{ matchExpressions: [{ key: "app", operator: "Exists" }] }, web, true],
    [{ matchExpressions: [{ key: "app", operator: "DoesNotExist" }] }, web, false],
    [{ matchExpressions: [{ key: "gone", operator: "DoesNotExist" }] }, undefined, true],
    [
      { matchLabels: { app: "web" }, matchExpressions: [{ key: "tier", operator: "In", values: ["frontend"] }] },
      web,
      true,
    ],
  ];
  for (const [sel, labels, want] of cases) {
    it(`${JSON.stringify(sel)} → ${want}`, () => {
      assert.equal(labelSelectorMatches(sel as never, labels), want);
    });
  }
  it("rejects an unknown operator and In without values", () => {
    assert.throws(() => labelSelectorFromObject({ matchExpressions: [{ key: "a", operator: "Foo" }] }), /not a valid/);
    assert.throws(
      () => labelSelectorFromObject({ matchExpressions: [{ key: "a", operator: "In", values: [] }] }),
      /values set can't be empty/,
    );
  });
  it("renders the string form a client puts in ?labelSelector=", () => {
    const s = labelSelectorFromObject({
      matchLabels: { "kubevirt.io/vmReplicaSet": "rs1" },
      matchExpressions: [{ key: "x", operator: "NotIn", values: ["b", "a"] }],
    }).toString();
    assert.equal(s, "kubevirt.io/vmReplicaSet=rs1,x notin (a,b)");
    assert.equal(parseLabelSelector(s).toString(), s);
  });
});

describe("fuzz: random selector strings parse or fail with a 400", () => {
  it("3,000 strings over the selector alphabet", () => {
    const alphabet = [
      "a",
      "b",
      "=",
      "==",
      "!=",
      "!",
      "(",
      ")",
      ",",
      " ",
      "in",
      "notin",
      "x/y",
      ".",
      "-",
      "_",
      ">",
      "<",
      "1",
      "é",
      "\\",
    ];
    let s = 7;
    const r = (n: number) => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s % n;
    };
    for (let i = 0; i < 3000; i++) {
      const text = Array.from({ length: r(12) }, () => alphabet[r(alphabet.length)]).join("");
      try {
        const sel = parseLabelSelector(text);
        sel.matches({ a: "b" });
        assert.doesNotThrow(() => parseLabelSelector(sel.toString()), `round trip of ${JSON.stringify(text)}`);
      } catch (e) {
        assert.ok(e instanceof StatusError && e.code === 400, `${JSON.stringify(text)}: ${String(e)}`);
      }
    }
  });
});

it("selectionEvent: coming to match is ADDED, leaving is DELETED, staying out is nothing", () => {
  const cases: [Change, boolean, boolean, Change | undefined][] = [
    ["ADDED", false, true, "ADDED"],
    ["ADDED", false, false, undefined],
    ["MODIFIED", true, true, "MODIFIED"],
    ["MODIFIED", false, true, "ADDED"],
    ["MODIFIED", true, false, "DELETED"],
    ["MODIFIED", false, false, undefined],
    ["DELETED", true, false, "DELETED"],
    ["DELETED", false, false, undefined],
  ];
  for (const [type, before, now, want] of cases)
    assert.equal(selectionEvent(type, before, now), want, `${type} ${before}→${now}`);
});
