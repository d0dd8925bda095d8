// Runs before anything else of the CLI, so it must parse and run on any Node: plain JavaScript,
// no imports of the CLI's own code.

/**
 * The one line to print when `version` (e.g. process.versions.node) is older than the `>=X.Y`
 * range in the CLI's engines field, or null when it is recent enough (or the range is not of
 * that form).
 * @param {string} version
 * @param {string | undefined} range
 * @returns {string | null}
 */
export function nodeTooOld(version, range) {
  const need = /^>=\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/.exec(range ?? '');
  if (!need) return null;
  const have = version.replace(/^v/, '').split('.').map(Number);
  const want = [Number(need[1]), Number(need[2] ?? 0), Number(need[3] ?? 0)];
  for (let i = 0; i < 3; i++) {
    if ((have[i] ?? 0) > want[i]) return null;
    if ((have[i] ?? 0) < want[i])
      return (
        `killpath needs Node ${range} and this is Node ${version.replace(/^v?/, 'v')}: ` +
        `inside the project run \`npx killpath …\` (it uses the pinned Node ${want[0]}), ` +
        `or install Node ${want[0]} (for example \`nvm install ${want[0]}\`)`
      );
  }
  return null;
}
