/**
 * `npm run fuzz [-- RUNS [SEED]]`: many more generated requests than the test suite sends
 * (default 50 000), the counts printed; exit 1 if any answer was a 5xx, lacked the wire error
 * shape, or a body above the limit was not refused with 413.
 */
import { fuzzHttp } from './fuzz-http.ts';

const runs = Number(process.argv[2] ?? 50_000);
const seed = process.argv[3] === undefined ? Date.now() % 2 ** 31 : Number(process.argv[3]);
const started = performance.now();
const c = await fuzzHttp({ runs, seed });
const s = ((performance.now() - started) / 1000).toFixed(1);
console.log(
  `fuzz: ${c.requests} requests to ${c.routes} routes as ${c.roles} roles in ${s} s (seed ${seed})`,
);
console.log(
  `  by status: ${Object.entries(c.byStatus)
    .map(([k, v]) => `${k}×${v}`)
    .join(' ')}`,
);
console.log(`  5xx or throws: ${c.serverErrors}; error answers without the wire shape: ${c.badShapes}`);
console.log(
  `  bodies above the limit: ${c.oversized}, answered 413: ${c.oversized413}; heap growth ${c.heapGrowthMb} MB`,
);
for (const f of c.failures) console.log(`  FAIL ${f}`);
process.exitCode = c.failures.length === 0 && c.serverErrors === 0 && c.badShapes === 0 ? 0 : 1;
