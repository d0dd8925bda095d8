import { accessSync, constants, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KillpathError } from '@killpath/protocol';

/**
 * Makes sure a report can be written to `path` before the work that produces it starts: creates
 * its folder (as `mkdir -p` does) and checks it is writable. A drill runs for minutes; finding
 * out at the end that its report has nowhere to go loses the whole run.
 *
 * @throws KillpathError `invalid_request` naming the folder when it cannot be created or written.
 */
export function prepareReportPath(path: string, flag: string): void {
  const dir = dirname(resolve(path));
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (err) {
    throw new KillpathError(
      'invalid_request',
      `${flag} ${path}: cannot write into ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}
