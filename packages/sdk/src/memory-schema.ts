/**
 * A JSON Schema subset for memory values: `type` (one or a list of `string`, `number`,
 * `integer`, `boolean`, `object`, `array`, `null`), `enum`, `const`, `properties`, `required`,
 * `additionalProperties` (boolean), `items`, `minLength`, `maxLength`, `pattern`, `minimum`,
 * `maximum`, `minItems`, `maxItems`. Other keywords are ignored.
 */
export interface JsonSchema {
  type?: JsonType | JsonType[];
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean;
  items?: JsonSchema;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
}

/** A JSON type name. */
export type JsonType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'null';

/**
 * The schema memory writes of an agent's runs must follow, checked by `run.stage` before a
 * write is staged: either a function (return `true`/`null`/`undefined` when the write is fine,
 * `false` or a message when not; plug in any validator here), or a map from key to
 * {@link JsonSchema}, where a key ending in `*` matches every key with that prefix and a key
 * matching no entry is a violation (the schema names every key the agent may write).
 */
export type MemorySchema =
  | ((key: string, value: unknown) => boolean | string | null | undefined)
  | Readonly<Record<string, JsonSchema>>;

/** Why `value` under `key` violates `schema`, or `null` when it does not. */
export function memoryViolation(schema: MemorySchema, key: string, value: unknown): string | null {
  if (typeof schema === 'function') {
    let r: boolean | string | null | undefined;
    try {
      r = schema(key, value);
    } catch (err) {
      return `validator threw: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (r === true || r === null || r === undefined) return null;
    return r === false ? 'rejected by the memory schema' : r;
  }
  let spec: JsonSchema | undefined = Object.hasOwn(schema, key) ? schema[key] : undefined;
  if (spec === undefined) {
    let best = -1;
    for (const [pattern, s] of Object.entries(schema)) {
      if (pattern.endsWith('*') && key.startsWith(pattern.slice(0, -1)) && pattern.length > best) {
        spec = s;
        best = pattern.length;
      }
    }
  }
  if (spec === undefined) return `no schema for key "${key}"`;
  return check(spec, value, key);
}

function typeOf(v: unknown): JsonType | 'other' {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'number':
      return Number.isFinite(v) ? 'number' : 'other';
    case 'boolean':
      return 'boolean';
    case 'object':
      return 'object';
    default:
      return 'other';
  }
}

function check(s: JsonSchema, v: unknown, at: string): string | null {
  const t = typeOf(v);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const ok = types.some(
      (want) =>
        want === t ||
        (want === 'integer' && t === 'number' && Number.isInteger(v)) ||
        (want === 'number' && t === 'number'),
    );
    if (!ok) return `${at}: expected ${types.join(' or ')}, got ${t}`;
  }
  if (s.const !== undefined && JSON.stringify(s.const) !== JSON.stringify(v))
    return `${at}: must be ${JSON.stringify(s.const)}`;
  if (s.enum !== undefined && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v)))
    return `${at}: must be one of ${JSON.stringify(s.enum)}`;
  if (t === 'string') {
    const str = v as string;
    if (s.minLength !== undefined && str.length < s.minLength) return `${at}: shorter than ${s.minLength}`;
    if (s.maxLength !== undefined && str.length > s.maxLength) return `${at}: longer than ${s.maxLength}`;
    if (s.pattern !== undefined && !new RegExp(s.pattern, 'u').test(str))
      return `${at}: does not match ${s.pattern}`;
  }
  if (t === 'number') {
    const n = v as number;
    if (s.minimum !== undefined && n < s.minimum) return `${at}: below ${s.minimum}`;
    if (s.maximum !== undefined && n > s.maximum) return `${at}: above ${s.maximum}`;
  }
  if (t === 'array') {
    const a = v as unknown[];
    if (s.minItems !== undefined && a.length < s.minItems) return `${at}: fewer than ${s.minItems} items`;
    if (s.maxItems !== undefined && a.length > s.maxItems) return `${at}: more than ${s.maxItems} items`;
    if (s.items !== undefined) {
      for (let i = 0; i < a.length; i++) {
        const e = check(s.items, a[i], `${at}[${i}]`);
        if (e !== null) return e;
      }
    }
  }
  if (t === 'object') {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!Object.hasOwn(o, r)) return `${at}: missing ${r}`;
    for (const [k, val] of Object.entries(o)) {
      const p = s.properties !== undefined && Object.hasOwn(s.properties, k) ? s.properties[k] : undefined;
      if (p !== undefined) {
        const e = check(p, val, `${at}.${k}`);
        if (e !== null) return e;
      } else if (s.additionalProperties === false) {
        return `${at}: unexpected property ${k}`;
      }
    }
  }
  return null;
}
