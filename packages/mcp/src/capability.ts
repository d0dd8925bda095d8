import { EFFECT_CLASSES, KillpathError, isIdentifier } from '@killpath/protocol';
import type { EffectClass } from '@killpath/protocol';

/**
 * Effect classes of an MCP server's tools, by tool name. A tool not named takes `default`
 * (`write` when unset: the safe assumption, a permit per call and aborted on a halt).
 */
export interface ToolClasses {
  /** Class per tool name. */
  readonly tools?: Readonly<Record<string, EffectClass>>;
  /** Class of any other tool. Default `write`. */
  readonly default?: EffectClass;
}

/** Characters a capability part may not hold, replaced by `_`. */
const NOT_ID = /[^A-Za-z0-9._:@-]/g;

/**
 * The capability of one MCP tool: `mcp:<server>/<tool>`. MCP tool names are 1–128 letters,
 * digits and `_-.` (the spec's recommendation); any other character of a legacy name is
 * replaced by `_` and the name cut to 128 characters, so every tool has a capability.
 * @throws KillpathError `invalid_request` when `server` is not an identifier
 */
export function mcpCapability(server: string, tool: string): string {
  if (!isIdentifier(server)) {
    throw new KillpathError(
      'invalid_request',
      `MCP server name "${server}" must be 1-128 letters, digits or ._:@-`,
    );
  }
  const part = tool.replace(NOT_ID, '_').slice(0, 128) || '_';
  return `mcp:${server}/${part}`;
}

/** The class of `tool` under `classes`. */
export function toolClass(classes: ToolClasses | undefined, tool: string): EffectClass {
  return classes?.tools?.[tool] ?? classes?.default ?? 'write';
}

/**
 * Reads a tool class mapping from JSON text: `{ "default": "write", "tools": { "search": "read" } }`
 * or the short form `{ "search": "read", "delete_repo": "irreversible" }` (a key `"*"` is the default).
 * @throws KillpathError `invalid_request` naming the first bad entry
 */
export function parseToolClasses(text: string, source = 'tool classes'): ToolClasses {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new KillpathError('invalid_request', `${source} is not valid JSON`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(raw)) throw new KillpathError('invalid_request', `${source} must be a JSON object`);
  const cls = (v: unknown, where: string): EffectClass => {
    if (typeof v === 'string' && (EFFECT_CLASSES as readonly string[]).includes(v)) return v as EffectClass;
    throw new KillpathError(
      'invalid_request',
      `${source}: ${where} must be one of ${EFFECT_CLASSES.join(', ')}, not ${JSON.stringify(v)}`,
    );
  };
  const long = Object.keys(raw).every((k) => k === 'tools' || k === 'default') && isObject(raw.tools ?? {});
  const entries = long
    ? Object.entries((raw.tools as Record<string, unknown> | undefined) ?? {})
    : Object.entries(raw);
  const tools: Record<string, EffectClass> = {};
  let fallback: EffectClass | undefined =
    long && raw.default !== undefined ? cls(raw.default, '"default"') : undefined;
  for (const [name, v] of entries) {
    if (!long && name === '*') fallback = cls(v, '"*"');
    else tools[name] = cls(v, `tool "${name}"`);
  }
  return Object.freeze({
    tools: Object.freeze(tools),
    ...(fallback === undefined ? {} : { default: fallback }),
  });
}
