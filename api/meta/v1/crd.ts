// The CRD shape (apiextensions.k8s.io/v1) that every served kind is described by: kubevirt kinds come from the
// generated deploy/crds/*.yaml, core kinds are registered in the same shape, and a CRD created through the API is
// served by the same code. Discovery, OpenAPI, Table columns and validation all read from it.

export type JSONSchemaProps = Record<string, unknown>;

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  format?: string;
  priority?: number;
}

export interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  deprecated?: boolean;
  deprecationWarning?: string;
  schema?: { openAPIV3Schema: JSONSchemaProps };
  subresources?: {
    status?: Record<string, never>;
    scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
  };
  additionalPrinterColumns?: PrinterColumn[];
  selectableFields?: { jsonPath: string }[];
}

export interface CrdNames {
  kind: string;
  listKind?: string;
  plural: string;
  singular?: string;
  shortNames?: string[];
  categories?: string[];
}

export interface CustomResourceDefinition {
  apiVersion: "apiextensions.k8s.io/v1";
  kind: "CustomResourceDefinition";
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    group: string;
    names: CrdNames;
    scope: "Namespaced" | "Cluster";
    versions: CrdVersion[];
    preserveUnknownFields?: boolean;
  };
}

/**
 * A served kind as the API server's registry sees it: the CRD plus facts a CRD cannot express for built-in kinds
 * (extra subresources such as pods/log and pods/binding, strategic merge support, built-in field selectors).
 */
export interface ResourceDefinition {
  crd: CustomResourceDefinition;
  /** Built-in kinds accept strategic merge patch; custom kinds answer 415. */
  builtin: boolean;
  /** Subresources beyond status/scale, e.g. "log", "binding" for pods. */
  extraSubresources?: string[];
  /** Field selectors beyond metadata.name/metadata.namespace and the CRD's selectableFields (built-in kinds). */
  fieldSelectors?: string[];
  /**
   * Table columns for kinds whose cells are computed (pods' READY "1/2", STATUS, RESTARTS; nodes' STATUS, ROLES).
   * When present the server uses this list INSTEAD of the CRD's additionalPrinterColumns, and it is the complete
   * list, including the leading Name column (format "name"). Each cell returns the raw value; the server formats
   * it by `type` exactly as for additionalPrinterColumns (a "date" cell returns an RFC 3339 timestamp and is shown
   * as an age such as "5m"; undefined/null shows as "<none>" for strings). priority 1 = shown only with -o wide.
   */
  columns?: TableColumn[];
}

export interface TableColumn {
  name: string;
  type: PrinterColumn["type"];
  format?: string;
  priority?: number;
  description?: string;
  cell: (obj: Record<string, unknown>) => unknown;
}
