import type { ParseArgsConfig } from 'node:util';
import { KillpathError } from '@killpath/protocol';

/** Options every command that talks to a control plane accepts. */
export const CONNECTION_OPTIONS = {
  /** Repeatable, and each may be a comma-separated list: replicas of one control plane. */
  url: { type: 'string', multiple: true },
  token: { type: 'string' },
  'data-dir': { type: 'string' },
  ca: { type: 'string' },
  insecure: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** `parseArgs` in strict mode, with its errors turned into one clear `invalid_request` line. */
export function parse<const O extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: O,
  allowPositionals = false,
) {
  try {
    // getBuiltinModule, not an import: node:util's ESM facade loads much a command never uses.
    return process.getBuiltinModule('node:util').parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new KillpathError(
      'invalid_request',
      (err as Error).message.replace(/\. To specify a positional argument.*$/s, ''),
    );
  }
}

/** Parses a non-negative integer flag, naming the flag in the error. */
export function intFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new KillpathError('invalid_request', `--${name} must be a non-negative integer, got "${value}"`);
  return n;
}
