import type { VirtualMachineInstance } from "../../api/index.js";
import type { StatusCause } from "../../lib/errors.js";
import type { Domain } from "../domain/index.js";
import type { ConverterContext } from "./context.js";

/** What every configurator reads. `problems` collects the fields we cannot honour (reported all at once). */
export interface ConvertInput {
  vmi: VirtualMachineInstance;
  ctx: ConverterContext;
  problems: StatusCause[];
}

/** One step of the conversion: returns the next domain (never mutates its input domain). */
export type Configure = (input: ConvertInput, dom: Domain) => Domain;

export function unsupported(input: ConvertInput, field: string, message = "not supported by tsvirt"): void {
  input.problems.push({ type: "FieldValueNotSupported", field, message });
}

export function invalidField(input: ConvertInput, field: string, message: string): void {
  input.problems.push({ type: "FieldValueInvalid", field, message });
}

export function required(input: ConvertInput, field: string, message: string): void {
  input.problems.push({ type: "FieldValueRequired", field, message });
}
