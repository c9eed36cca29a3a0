export { pruneUnknownMeta } from "./prune.js";
export {
  type FieldValidation,
  strictDecodingError,
  unknownFieldWarnings,
  type ValidateOptions,
  type ValidationResult,
  validateObject,
} from "./validate.js";
