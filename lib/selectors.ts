// Label selectors as Kubernetes parses and matches them: the string form (`app=web,tier in (a,b),!canary`) and the
// LabelSelector object form (matchLabels/matchExpressions), plus the field-selector syntax. Dependency-free so the API
// server, the clients, controllers and the scheduler share one implementation. Parse errors are 400 BadRequest with
// apimachinery's messages.

import { badRequest } from "./errors.js";

export type LabelOperator = "=" | "==" | "!=" | "in" | "notin" | "exists" | "!" | "gt" | "lt";

export interface LabelRequirement {
  readonly key: string;
  readonly operator: LabelOperator;
  /** Sorted and de-duplicated, as apimachinery keeps them. Empty for exists / !. */
  readonly values: readonly string[];
}

export type Labels = Readonly<Record<string, string>> | undefined | null;

export interface LabelSelectorRequirementObject {
  key: string;
  operator: string;
  values?: string[];
}

export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirementObject[];
}

/** A parsed label selector; `requirements` are ANDed, an empty list matches everything. */
export interface LabelSelector {
  readonly requirements: readonly LabelRequirement[];
  /** Labels of an object (`metadata.labels`), possibly absent. */
  matches(labels: Labels): boolean;
  readonly empty: boolean;
  /** The canonical string form (requirements sorted by key), usable as `?labelSelector=`; `<none>` for `nothing`. */
  toString(): string;
}

// ---- validation (apimachinery util/validation) ----

const qualifiedNameFmt = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const qualifiedNameRe = new RegExp(`^${qualifiedNameFmt}$`);
const dns1123SubdomainFmt = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const dns1123SubdomainRe = new RegExp(`^${dns1123SubdomainFmt}$`);
const labelValueFmt = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const labelValueRe = new RegExp(`^${labelValueFmt}$`);

/** Returns apimachinery's IsQualifiedName messages (empty when valid). */
export function qualifiedNameErrors(value: string): string[] {
  const errs: string[] = [];
  const parts = value.split("/");
  let name: string;
  if (parts.length === 1) {
    name = parts[0] ?? "";
  } else if (parts.length === 2) {
    const prefix = parts[0] ?? "";
    name = parts[1] ?? "";
    if (prefix.length === 0) {
      errs.push("prefix part must be non-empty");
    } else {
      if (prefix.length > 253) errs.push("prefix part must be no more than 253 characters");
      if (!dns1123SubdomainRe.test(prefix)) {
        errs.push(
          "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', " +
            "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is " +
            `'${dns1123SubdomainFmt}')`,
        );
      }
    }
  } else {
    return [
      "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an " +
        "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is " +
        `'${qualifiedNameFmt}') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`,
    ];
  }
  if (name.length === 0) errs.push("name part must be non-empty");
  else if (name.length > 63) errs.push("name part must be no more than 63 characters");
  if (name.length > 0 && !qualifiedNameRe.test(name)) {
    errs.push(
      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an " +
        "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is " +
        `'${qualifiedNameFmt}')`,
    );
  }
  return errs;
}

/** Returns apimachinery's IsValidLabelValue messages (empty when valid). */
export function labelValueErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push("must be no more than 63 characters");
  if (!labelValueRe.test(value)) {
    errs.push(
      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start " +
        "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for " +
        `validation is '${labelValueFmt}')`,
    );
  }
  return errs;
}

class SelectorSyntaxError extends Error {}

// ---- lexer ----

type Tok = "id" | "in" | "notin" | "=" | "==" | "!=" | "!" | "(" | ")" | "," | ">" | "<" | "end" | "error";

interface Token {
  tok: Tok;
  lit: string;
}

const specials = new Set(["=", "!", "(", ")", ",", ">", "<"]);
const isWhitespace = (c: string) => c === " " || c === "\t" || c === "\r" || c === "\n";

function lex(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  for (;;) {
    while (i < s.length && isWhitespace(s[i]!)) i++;
    if (i >= s.length) {
      out.push({ tok: "end", lit: "" });
      return out;
    }
    const c = s[i]!;
    if (specials.has(c)) {
      const two = s.slice(i, i + 2);
      if (two === "==" || two === "!=") {
        out.push({ tok: two, lit: two });
        i += 2;
      } else {
        out.push({ tok: c as Tok, lit: c });
        i++;
      }
      continue;
    }
    let j = i;
    while (j < s.length && !isWhitespace(s[j]!) && !specials.has(s[j]!)) j++;
    const word = s.slice(i, j);
    i = j;
    if (word === "in") out.push({ tok: "in", lit: word });
    else if (word === "notin") out.push({ tok: "notin", lit: word });
    else out.push({ tok: "id", lit: word });
  }
}

// ---- parser (apimachinery labels.Parse grammar) ----

class Parser {
  private pos = 0;
  constructor(private readonly items: Token[]) {}

  /** In a values context `in`/`notin` are ordinary identifiers. */
  private peek(values: boolean): Token {
    const t = this.items[this.pos] ?? { tok: "end", lit: "" };
    return values && (t.tok === "in" || t.tok === "notin") ? { tok: "id", lit: t.lit } : t;
  }
  private next(values: boolean): Token {
    const t = this.peek(values);
    if (this.pos < this.items.length - 1) this.pos++;
    else this.pos = this.items.length - 1;
    return t;
  }

  parse(): LabelRequirement[] {
    const reqs: LabelRequirement[] = [];
    for (;;) {
      const t = this.peek(true);
      if (t.tok === "end") return reqs;
      if (t.tok !== "id" && t.tok !== "!") {
        throw new SelectorSyntaxError(`found '${t.lit}', expected: !, identifier, or 'end of string'`);
      }
      try {
        reqs.push(this.requirement());
      } catch (e) {
        if (e instanceof SelectorSyntaxError)
          throw new SelectorSyntaxError(`unable to parse requirement: ${e.message}`);
        throw e;
      }
      const after = this.next(true);
      if (after.tok === "end") return reqs;
      if (after.tok !== ",") throw new SelectorSyntaxError(`found '${after.lit}', expected: ',' or 'end of string'`);
      const t2 = this.peek(true);
      if (t2.tok !== "id" && t2.tok !== "!") {
        throw new SelectorSyntaxError(`found '${t2.lit}', expected: identifier after ','`);
      }
    }
  }

  private requirement(): LabelRequirement {
    let t = this.next(true);
    let notExists = false;
    if (t.tok === "!") {
      notExists = true;
      t = this.next(true);
    }
    if (t.tok !== "id") throw new SelectorSyntaxError(`found '${t.lit}', expected: identifier`);
    const key = t.lit;
    const keyErrs = qualifiedNameErrors(key);
    if (keyErrs.length) throw new SelectorSyntaxError(`invalid label key "${key}": ${keyErrs.join("; ")}`);
    // `!key` takes no operator; whatever follows is the caller's ',' or 'end of string' error.
    if (notExists) return makeRequirement(key, "!", []);
    const la = this.peek(true).tok;
    if (la === "end" || la === ",") return makeRequirement(key, "exists", []);
    const op = this.next(false);
    let operator: LabelOperator;
    switch (op.tok) {
      case "in":
      case "notin":
      case "=":
      case "==":
      case "!=":
        operator = op.tok;
        break;
      case ">":
        operator = "gt";
        break;
      case "<":
        operator = "lt";
        break;
      default:
        throw new SelectorSyntaxError(`found '${op.lit}', expected: in, notin, =, ==, !=, gt, lt`);
    }
    const values = operator === "in" || operator === "notin" ? this.setValues() : this.exactValue();
    return makeRequirement(key, operator, values);
  }

  private setValues(): string[] {
    const open = this.next(true);
    if (open.tok !== "(") throw new SelectorSyntaxError(`found '${open.lit}' expected: '('`);
    const first = this.peek(true);
    if (first.tok === ")") {
      this.next(true);
      return [""];
    }
    if (first.tok !== "id" && first.tok !== ",") {
      throw new SelectorSyntaxError(`found '${first.lit}', expected: ',', ')' or identifier`);
    }
    const vals = new Set<string>();
    for (;;) {
      const t = this.next(true);
      if (t.tok === "id") {
        vals.add(t.lit);
        const la = this.peek(true);
        if (la.tok === ",") continue;
        if (la.tok === ")") break;
        throw new SelectorSyntaxError(`found '${la.lit}', expected: ',' or ')'`);
      }
      if (t.tok === ",") {
        if (vals.size === 0) vals.add("");
        const la = this.peek(true);
        if (la.tok === ")") {
          vals.add("");
          break;
        }
        if (la.tok === ",") {
          this.next(true);
          vals.add("");
        }
        continue;
      }
      throw new SelectorSyntaxError(`found '${t.lit}', expected: ',', or identifier`);
    }
    const close = this.next(true);
    if (close.tok !== ")") throw new SelectorSyntaxError(`found '${close.lit}', expected: ')'`);
    return [...vals];
  }

  private exactValue(): string[] {
    const la = this.peek(true);
    if (la.tok === "end" || la.tok === ",") return [""];
    const t = this.next(true);
    if (t.tok === "id") return [t.lit];
    throw new SelectorSyntaxError(`found '${t.lit}', expected: identifier`);
  }
}

function makeRequirement(key: string, operator: LabelOperator, values: string[]): LabelRequirement {
  const keyErrs = qualifiedNameErrors(key);
  if (keyErrs.length) throw new SelectorSyntaxError(`key: Invalid value: "${key}": ${keyErrs.join("; ")}`);
  switch (operator) {
    case "in":
    case "notin":
      if (values.length === 0) {
        throw new SelectorSyntaxError(
          `values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty`,
        );
      }
      break;
    case "=":
    case "==":
    case "!=":
      if (values.length !== 1) {
        throw new SelectorSyntaxError(
          `values: Invalid value: ${JSON.stringify(values)}: exact-match compatibility requires one single value`,
        );
      }
      break;
    case "exists":
    case "!":
      if (values.length !== 0) {
        throw new SelectorSyntaxError(
          `values: Invalid value: ${JSON.stringify(values)}: values set must be empty for exists and does not exist`,
        );
      }
      break;
    case "gt":
    case "lt":
      if (values.length !== 1 || !/^-?\d+$/.test(values[0] ?? "")) {
        throw new SelectorSyntaxError(
          `values: Invalid value: ${JSON.stringify(values)}: for 'Gt', 'Lt' operators, exactly one value is required and it must be an integer`,
        );
      }
      break;
  }
  if (operator !== "gt" && operator !== "lt") {
    values.forEach((v, i) => {
      const errs = labelValueErrors(v);
      if (errs.length) throw new SelectorSyntaxError(`values[${i}][${key}]: Invalid value: "${v}": ${errs.join("; ")}`);
    });
  }
  return { key, operator, values: [...new Set(values)].sort() };
}

// ---- matching ----

export function requirementMatches(r: LabelRequirement, labels: Labels): boolean {
  const has = labels != null && Object.hasOwn(labels, r.key);
  const v = has ? labels![r.key]! : undefined;
  switch (r.operator) {
    case "=":
    case "==":
    case "in":
      return has && r.values.includes(v!);
    case "!=":
    case "notin":
      return !has || !r.values.includes(v!);
    case "exists":
      return has;
    case "!":
      return !has;
    case "gt":
    case "lt": {
      if (!has || !/^-?\d+$/.test(v!)) return false;
      const lv = BigInt(v!);
      const rv = BigInt(r.values[0]!);
      return r.operator === "gt" ? lv > rv : lv < rv;
    }
  }
}

/** core/v1 NodeSelectorTerm shapes (matchExpressions on labels, matchFields on metadata.name). */
export interface NodeSelectorRequirementObject {
  key: string;
  operator: string;
  values?: readonly string[];
}
export interface NodeSelectorTermObject {
  matchExpressions?: readonly NodeSelectorRequirementObject[];
  matchFields?: readonly NodeSelectorRequirementObject[];
}

const NODE_OPERATORS: Record<string, LabelOperator> = {
  In: "in",
  NotIn: "notin",
  Exists: "exists",
  DoesNotExist: "!",
  Gt: "gt",
  Lt: "lt",
};

function nodeRequirementMatches(r: NodeSelectorRequirementObject, labels: Labels): boolean {
  const operator = NODE_OPERATORS[r.operator];
  return operator !== undefined && requirementMatches({ key: r.key, operator, values: [...(r.values ?? [])] }, labels);
}

/** A node selector term against a node's labels and name; an empty term matches nothing (as in Kubernetes). */
export function nodeSelectorTermMatches(term: NodeSelectorTermObject, labels: Labels, nodeName: string): boolean {
  const exprs = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  if (exprs.length === 0 && fields.length === 0) return false;
  return (
    exprs.every((r) => nodeRequirementMatches(r, labels)) &&
    fields.every((r) => nodeRequirementMatches(r, { "metadata.name": nodeName }))
  );
}

function requirementString(r: LabelRequirement): string {
  switch (r.operator) {
    case "exists":
      return r.key;
    case "!":
      return `!${r.key}`;
    case "in":
    case "notin":
      return `${r.key} ${r.operator} (${r.values.join(",")})`;
    case "gt":
      return `${r.key}>${r.values[0]}`;
    case "lt":
      return `${r.key}<${r.values[0]}`;
    default:
      return `${r.key}${r.operator}${r.values[0]}`;
  }
}

function byKey(a: LabelRequirement, b: LabelRequirement): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export function selectorFromRequirements(reqs: readonly LabelRequirement[]): LabelSelector {
  const requirements = [...reqs].sort(byKey);
  return {
    requirements,
    empty: requirements.length === 0,
    matches: (labels) => requirements.every((r) => requirementMatches(r, labels)),
    toString: () => requirements.map(requirementString).join(","),
  };
}

/** A selector that matches every object. */
export const everything: LabelSelector = selectorFromRequirements([]);

/** A selector that matches no object (a nil LabelSelector object in apimachinery's LabelSelectorAsSelector). */
export const nothing: LabelSelector = {
  requirements: [],
  empty: false,
  matches: () => false,
  toString: () => "<none>",
};

/**
 * Parses the string form used by `?labelSelector=` and `kubectl -l`.
 * Throws a 400 BadRequest StatusError with apimachinery's message on a syntax or validation error.
 */
export function parseLabelSelector(s: string | undefined | null): LabelSelector {
  if (s == null || s.trim() === "") return everything;
  try {
    return selectorFromRequirements(new Parser(lex(s)).parse());
  } catch (e) {
    if (e instanceof SelectorSyntaxError) throw badRequest(e.message);
    throw e;
  }
}

/**
 * Converts a metav1.LabelSelector object to a matcher, as LabelSelectorAsSelector does: `undefined`/`null` matches
 * nothing, `{}` matches everything. Invalid operators or values throw a 400 StatusError.
 */
export function labelSelectorFromObject(sel: LabelSelectorObject | undefined | null): LabelSelector {
  if (sel == null) return nothing;
  const reqs: LabelRequirement[] = [];
  try {
    for (const [k, v] of Object.entries(sel.matchLabels ?? {})) reqs.push(makeRequirement(k, "=", [String(v)]));
    for (const expr of sel.matchExpressions ?? []) {
      const values = [...(expr.values ?? [])];
      let op: LabelOperator;
      switch (expr.operator) {
        case "In":
          op = "in";
          break;
        case "NotIn":
          op = "notin";
          break;
        case "Exists":
          op = "exists";
          break;
        case "DoesNotExist":
          op = "!";
          break;
        default:
          throw new SelectorSyntaxError(`"${expr.operator}" is not a valid label selector operator`);
      }
      reqs.push(makeRequirement(expr.key, op, values));
    }
  } catch (e) {
    if (e instanceof SelectorSyntaxError) throw badRequest(e.message);
    throw e;
  }
  return selectorFromRequirements(reqs);
}

/** Convenience: does this LabelSelector object select these labels? (`undefined` selector selects nothing.) */
export function labelSelectorMatches(sel: LabelSelectorObject | undefined | null, labels: Labels): boolean {
  return labelSelectorFromObject(sel).matches(labels);
}

/** The string form of a LabelSelector object (for `?labelSelector=` on a client's list/watch). */
export function labelSelectorToString(sel: LabelSelectorObject | undefined | null): string {
  return labelSelectorFromObject(sel).toString();
}

// ---- field selectors: the syntax only (which fields a kind allows, and their getters, are the API server's) ----

export type FieldOperator = "=" | "!=";

export interface FieldTerm {
  readonly field: string;
  readonly operator: FieldOperator;
  readonly value: string;
}

function splitTerms(s: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\") {
      i++;
      continue;
    }
    if (s[i] === ",") {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out;
}

const termOperators = ["!=", "==", "="] as const;

function splitTerm(term: string): [string, (typeof termOperators)[number], string] | undefined {
  for (let i = 0; i < term.length; i++) {
    if (term[i] === "\\") {
      i++;
      continue;
    }
    for (const op of termOperators) {
      if (term.startsWith(op, i)) return [term.slice(0, i), op, term.slice(i + op.length)];
    }
  }
  return undefined;
}

function unescapeValue(v: string): string {
  if (!v.includes("\\") && !v.includes(",") && !v.includes("=")) return v;
  let out = "";
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === "\\") {
      const n = v[i + 1];
      if (n === "\\" || n === "," || n === "=") {
        out += n;
        i++;
        continue;
      }
      throw badRequest(`invalid field selector: invalid escape sequence: ${v.slice(i, i + 2)}`);
    }
    if (c === "," || c === "=") throw badRequest(`invalid field selector: unescaped character ${JSON.stringify(c)}`);
    out += c;
  }
  return out;
}

/** Terms in the wire form, values escaped. */
export function fieldTermsToString(terms: readonly FieldTerm[]): string {
  return terms.map((t) => `${t.field}${t.operator}${escapeValue(t.value)}`).join(",");
}

function escapeValue(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/,/g, "\\,").replace(/=/g, "\\=");
}

/** Parses without checking field names (apimachinery fields.ParseSelector). Syntax errors are 400 BadRequest. */
export function parseFieldSelectorTerms(s: string | undefined | null): FieldTerm[] {
  if (s == null || s === "") return [];
  const parts = splitTerms(s).sort();
  const terms: FieldTerm[] = [];
  for (const part of parts) {
    if (part === "") continue;
    const split = splitTerm(part);
    if (!split) throw badRequest(`invalid selector: '${s}'; can't understand '${part}'`);
    const [field, op, raw] = split;
    terms.push({ field, operator: op === "!=" ? "!=" : "=", value: unescapeValue(raw) });
  }
  return terms;
}

/**
 * What a watch with a selector sends for one change of an object, given whether it matched before and after
 * (Kubernetes' semantics): coming to match is ADDED, ceasing to match is DELETED, a change outside is nothing.
 */
export function selectionEvent(
  type: "ADDED" | "MODIFIED" | "DELETED",
  before: boolean,
  now: boolean,
): "ADDED" | "MODIFIED" | "DELETED" | undefined {
  if (type === "ADDED") return now ? "ADDED" : undefined;
  if (type === "DELETED") return before ? "DELETED" : undefined;
  if (before && now) return "MODIFIED";
  if (now) return "ADDED";
  if (before) return "DELETED";
  return undefined;
}
