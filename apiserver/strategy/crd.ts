// CustomResourceDefinitions: the checks that make a definition servable; every stored change re-syncs the registry.
import { invalid, type StatusCause } from "../../lib/errors.js";
import { isObject as isPlainObject, rec } from "../../lib/json.js";
import { dns1123Label, type Strategy } from "./types.js";

export const crdStrategy: Strategy = {
  generation: true,
  servesDefinitions: true,
  validate(o, ctx) {
    const spec = rec(o.spec);
    const names = rec(spec.names);
    const causes: StatusCause[] = [];
    if (typeof spec.group !== "string" || !spec.group.includes(".")) {
      causes.push({
        type: "FieldValueInvalid",
        field: "spec.group",
        message: "Invalid value: should be a domain with at least one dot",
      });
    }
    if (typeof names.plural !== "string" || !dns1123Label.test(names.plural)) {
      causes.push({ type: "FieldValueRequired", field: "spec.names.plural", message: "Required value" });
    }
    if (typeof names.kind !== "string" || !names.kind) {
      causes.push({ type: "FieldValueRequired", field: "spec.names.kind", message: "Required value" });
    }
    if (spec.scope !== "Namespaced" && spec.scope !== "Cluster") {
      causes.push({
        type: "FieldValueNotSupported",
        field: "spec.scope",
        message: 'Unsupported value: supported values: "Cluster", "Namespaced"',
      });
    }
    const versions = Array.isArray(spec.versions) ? spec.versions : [];
    if (versions.length === 0 || !versions.every((v) => isPlainObject(v) && typeof v.name === "string")) {
      causes.push({
        type: "FieldValueRequired",
        field: "spec.versions",
        message: "Required value: must have exactly one version marked as storage version",
      });
    } else if (versions.filter((v) => isPlainObject(v) && v.storage === true).length !== 1) {
      causes.push({
        type: "FieldValueInvalid",
        field: "spec.versions",
        message: "Invalid value: must have exactly one version marked as storage version",
      });
    }
    if (causes.length === 0 && o.metadata.name !== `${names.plural}.${spec.group}`) {
      causes.push({
        type: "FieldValueInvalid",
        field: "metadata.name",
        message: `Invalid value: "${o.metadata.name}": must be spec.names.plural+"."+spec.group`,
      });
    }
    if (causes.length === 0) {
      const existing = ctx.registry.byKey(`${spec.group}/${names.plural}`);
      if (existing && !ctx.store.get("apiextensions.k8s.io/customresourcedefinitions", "", o.metadata.name ?? "")) {
        causes.push({
          type: "FieldValueInvalid",
          field: "spec.names.plural",
          message: "Invalid value: this resource is built in",
        });
      }
    }
    if (causes.length)
      throw invalid({ group: "apiextensions.k8s.io", kind: "CustomResourceDefinition" }, o.metadata.name ?? "", causes);
  },
};
