/**
 * Validates bodies and HTTP exchanges against the official OBL VRP Profile 4.0.0 OpenAPI
 * document, so tests judge wire shapes by the spec and not by eye.
 *
 * The spec lives outside the repo, in `../shared/conformance/` beside the repo root; it is
 * read once, registered whole with ajv under {@link SPEC_ID}, and fragments are compiled on
 * demand by JSON pointer (`spec.json#/components/schemas/OBDomesticVRPRequest`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsPlugin from 'ajv-formats';
import type { SandboxExchange } from '../../bank-sandbox/server.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SPEC_PATH = path.resolve(REPO_ROOT, '../shared/conformance/obie-vrp-openapi.json');
export const SPEC_ID = 'spec.json';
/** OBIE VRP 4.0: `servers[0].url`. */
export const SPEC_BASE_PATH = '/open-banking/v4.0/pisp';

/** One request and its response, as a server or client saw them (the sandbox's own record type). */
export type HttpExchange = SandboxExchange;

export interface ExchangeCheckOptions {
  /**
   * Headers the spec marks required that the caller knowingly does not send yet.
   * Default: `x-jws-signature` (message signing is a later issue).
   */
  ignoreHeaders?: readonly string[];
}

interface OpenApiOperation {
  parameters?: { $ref?: string; name?: string; in?: string; required?: boolean }[];
  requestBody?: { required?: boolean; content?: Record<string, unknown> };
  responses: Record<string, { $ref?: string }>;
}
type OpenApiDocument = {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: Record<string, Record<string, unknown>>;
};

const JSON_MEDIA_TYPE = 'application/json';
const DEFAULT_IGNORED_HEADERS: readonly string[] = ['x-jws-signature'];

let cached: { spec: OpenApiDocument; ajv: Ajv } | undefined;

export function loadSpec(): OpenApiDocument {
  return specAndAjv().spec;
}

function specAndAjv(): { spec: OpenApiDocument; ajv: Ajv } {
  if (cached) return cached;
  const spec = JSON.parse(readFileSync(SPEC_PATH, 'utf8')) as OpenApiDocument;
  // OpenAPI 3.0 schema objects carry `example`, `x-namespaced-enum` and free-text formats
  // ("Array of patch operations"): strict off ignores them; `nullable` is built into ajv 8.
  const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, logger: false });
  const addFormats = addFormatsPlugin as unknown as (ajv: Ajv) => Ajv;
  addFormats(ajv);
  // OBIE namespaced enumerations (`UK.OBIE.SCA`) may be extended by an ASPSP under its own
  // namespace; our own traffic must use the standard values only, so we hold it to the list.
  ajv.addKeyword({
    keyword: 'x-namespaced-enum',
    schemaType: 'array',
    validate: (values: readonly unknown[], data: unknown) => values.includes(data),
    errors: false,
  });
  ajv.addSchema(spec, SPEC_ID);
  cached = { spec, ajv };
  return cached;
}

function escapePointer(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

function compile(pointer: string): ValidateFunction {
  const { ajv } = specAndAjv();
  const validate = ajv.getSchema(`${SPEC_ID}#${pointer}`);
  if (!validate) throw new Error(`Cannot compile ${pointer}: not found in ${SPEC_PATH}`);
  return validate;
}

function runValidator(pointer: string, body: unknown): string[] {
  const validate = compile(pointer);
  if (validate(body)) return [];
  return (validate.errors ?? []).map(
    (error) => `${error.instancePath || '(root)'} ${error.message ?? 'is invalid'} ${JSON.stringify(error.params)}`,
  );
}

/** Errors of `body` against `#/components/schemas/<schemaName>`; empty when valid. */
export function validateSpecBody(schemaName: string, body: unknown): string[] {
  const { spec } = specAndAjv();
  if (!spec.components.schemas?.[schemaName]) throw new RangeError(`schemaName: ${schemaName} is not in the spec`);
  return runValidator(`/components/schemas/${escapePointer(schemaName)}`, body);
}

/** Finds the spec path template (`/domestic-vrps/{DomesticVRPId}`) a concrete URL path matches. */
export function matchSpecPath(urlPath: string): string | undefined {
  const pathOnly = urlPath.split('?')[0] ?? '';
  if (!pathOnly.startsWith(SPEC_BASE_PATH)) return undefined;
  const relative = pathOnly.slice(SPEC_BASE_PATH.length);
  return Object.keys(loadSpec().paths).find((template) => {
    const pattern = template.replace(/\{[^}]+\}/g, '[^/]+');
    return new RegExp(`^${pattern}$`).test(relative);
  });
}

function operation(specPath: string, method: string): OpenApiOperation {
  const found = loadSpec().paths[specPath]?.[method.toLowerCase()];
  if (!found) throw new RangeError(`method: ${method} ${specPath} is not an operation of the spec`);
  return found;
}

/** JSON pointer of the JSON request body schema of an operation, or undefined if it has none. */
export function requestSchemaPointer(specPath: string, method: string): string | undefined {
  const op = operation(specPath, method);
  if (!op.requestBody?.content?.[JSON_MEDIA_TYPE]) return undefined;
  const opPointer = `/paths/${escapePointer(specPath)}/${method.toLowerCase()}`;
  return `${opPointer}/requestBody/content/${escapePointer(JSON_MEDIA_TYPE)}/schema`;
}

/** The response object of an operation for a status, with `$ref` to components followed. */
function responseObject(specPath: string, method: string, status: number) {
  const op = operation(specPath, method);
  const entry = op.responses[String(status)];
  if (!entry) return undefined;
  const pointer = entry.$ref
    ? entry.$ref.slice(1)
    : `/paths/${escapePointer(specPath)}/${method.toLowerCase()}/responses/${status}`;
  const name = entry.$ref?.split('/').pop();
  const resolved = (name ? loadSpec().components.responses?.[name] : entry) as
    | { content?: Record<string, unknown>; headers?: Record<string, { required?: boolean }> }
    | undefined;
  return { pointer, resolved };
}

/** JSON pointer of the JSON response body schema for a status, or undefined if it has no body. */
export function responseSchemaPointer(specPath: string, method: string, status: number): string | undefined {
  const found = responseObject(specPath, method, status);
  if (!found?.resolved?.content?.[JSON_MEDIA_TYPE]) return undefined;
  return `${found.pointer}/content/${escapePointer(JSON_MEDIA_TYPE)}/schema`;
}

/** The operation's header parameters, each with the JSON pointer of its schema. */
function headerParameters(specPath: string, method: string, op: OpenApiOperation): { name: string; required: boolean; schemaPointer: string }[] {
  const parameters = loadSpec().components.parameters ?? {};
  return (op.parameters ?? []).flatMap((p, index) => {
    const componentName = p.$ref?.split('/').pop();
    const resolved = componentName ? (parameters[componentName] as typeof p | undefined) : p;
    if (resolved?.in !== 'header' || !resolved.name) return [];
    const schemaPointer = componentName
      ? `/components/parameters/${escapePointer(componentName)}/schema`
      : `/paths/${escapePointer(specPath)}/${method.toLowerCase()}/parameters/${index}/schema`;
    return [{ name: resolved.name.toLowerCase(), required: resolved.required === true, schemaPointer }];
  });
}

/** Checks the request half of an exchange: required headers and the JSON body. */
export function validateRequest(exchange: HttpExchange, options: ExchangeCheckOptions = {}): string[] {
  const specPath = matchSpecPath(exchange.url);
  if (!specPath) return [`request: ${exchange.url} is not a path of the spec`];
  const op = operation(specPath, exchange.method);
  const ignored = options.ignoreHeaders ?? DEFAULT_IGNORED_HEADERS;
  const errors: string[] = [];
  for (const header of headerParameters(specPath, exchange.method, op)) {
    const value = exchange.requestHeaders[header.name];
    if (value === undefined) {
      if (header.required && !ignored.includes(header.name)) errors.push(`request: header ${header.name} is required`);
      continue;
    }
    // A header's value is held to its schema too (OBIE VRP 4.0: x-idempotency-key maxLength 40, pattern).
    errors.push(...runValidator(header.schemaPointer, value).map((e) => `request: header ${header.name} ${e}`));
  }
  const pointer = requestSchemaPointer(specPath, exchange.method);
  if (pointer) errors.push(...runValidator(pointer, exchange.requestBody).map((e) => `request body: ${e}`));
  return errors;
}

/** Checks the response half of an exchange: status listed, required headers, JSON body. */
export function validateResponse(exchange: HttpExchange, options: ExchangeCheckOptions = {}): string[] {
  const specPath = matchSpecPath(exchange.url);
  if (!specPath) return [`response: ${exchange.url} is not a path of the spec`];
  const found = responseObject(specPath, exchange.method, exchange.statusCode);
  if (!found?.resolved) return [`response: status ${exchange.statusCode} is not listed for ${exchange.method} ${specPath}`];
  const ignored = options.ignoreHeaders ?? DEFAULT_IGNORED_HEADERS;
  const errors = Object.entries(found.resolved.headers ?? {})
    .filter(([name, header]) => header.required === true && !ignored.includes(name.toLowerCase()))
    .filter(([name]) => exchange.responseHeaders[name.toLowerCase()] === undefined)
    .map(([name]) => `response: header ${name} is required`);
  const pointer = responseSchemaPointer(specPath, exchange.method, exchange.statusCode);
  if (pointer) errors.push(...runValidator(pointer, exchange.responseBody).map((e) => `response body: ${e}`));
  return errors;
}

/** Both halves; empty when the exchange conforms to the spec. */
export function validateExchange(exchange: HttpExchange, options: ExchangeCheckOptions = {}): string[] {
  return [...validateRequest(exchange, options), ...validateResponse(exchange, options)];
}
