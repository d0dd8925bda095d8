import type { KillpathError } from '@killpath/protocol';

/**
 * A control plane error in the words of the CLI: the server names API fields (`breakGlass`,
 * a scope's tenant), the person at the terminal needs the flag to type (`--break-glass`,
 * `--tenant`). The message is otherwise the server's.
 */
export function inCliWords(err: KillpathError): string {
  let message = err.message;
  if (err.code === 'break_glass_required')
    message = message.replace('a breakGlass attestation', 'a break-glass attestation (--break-glass TEXT)');
  const details = err.details as { need?: unknown } | null | undefined;
  if (details?.need === 'tenant') message = message.replace('give its tenant', 'give --tenant');
  return message;
}
