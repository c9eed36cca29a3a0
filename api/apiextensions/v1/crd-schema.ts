// apiextensions.k8s.io/v1 CustomResourceDefinition as an API object (the TS interface lives in meta/v1/crd.ts).
// openAPIV3Schema is JSONSchemaProps, recursive: kept as sent.
import { Condition, TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Enum, Int32, ListOf, Preserve, Str, Struct } from "../../meta/v1/schema.js";

const Column = Struct({ name: Str, type: Str, format: Str, description: Str, priority: Int32, jsonPath: Str }, [
  "name",
  "type",
  "jsonPath",
]);
export const CustomResourceDefinitionSchema = Struct(
  {
    ...TypeMeta,
    spec: Struct(
      {
        group: Str,
        names: Struct(
          {
            plural: Str,
            singular: Str,
            shortNames: ListOf(Str),
            kind: Str,
            listKind: Str,
            categories: ListOf(Str),
          },
          ["plural", "kind"],
        ),
        scope: Enum(["Namespaced", "Cluster"] as const),
        versions: ListOf(
          Struct(
            {
              name: Str,
              served: Bool,
              storage: Bool,
              deprecated: Bool,
              deprecationWarning: Str,
              schema: Struct({ openAPIV3Schema: Preserve() }),
              subresources: Struct({
                status: Preserve(),
                scale: Struct({ specReplicasPath: Str, statusReplicasPath: Str, labelSelectorPath: Str }, [
                  "specReplicasPath",
                  "statusReplicasPath",
                ]),
              }),
              additionalPrinterColumns: ListOf(Column),
              selectableFields: ListOf(Struct({ jsonPath: Str }, ["jsonPath"])),
            },
            ["name", "served", "storage"],
          ),
        ),
        conversion: Preserve(),
        preserveUnknownFields: Bool,
      },
      ["group", "names", "scope", "versions"],
    ),
    status: Struct({
      conditions: ListOf(Condition),
      acceptedNames: Preserve(),
      storedVersions: ListOf(Str),
    }),
  },
  ["spec"],
);
