/**
 * Bare SSE stream clients for the fan-out floor of `npm run bench`: opens COUNT plain
 * `node:http` streams (one connection each, Nagle off, as the SDK's stream) to URL and prints, as
 * JSON lines, the wall-clock instant each stream received each complete event (`\n\n` seen)
 * and the event's rev (the first `"rev":N` in it, which the bench matches on). Nothing else
 * happens here: no parsing past the frame end, no apply, no report. Started by bench/run.ts;
 * not meant to be run by hand.
 *
 * Lines are written once per event-loop turn, as bench/load-worker.ts does.
 */
import { request } from 'node:http';

const count = Number(process.env.COUNT);
const url = new URL(process.env.FLOOR_URL!);

let lines: string[] = [];
function emit(line: string): void {
  if (lines.length === 0) setImmediate(flush);
  lines.push(line);
}
function flush(): void {
  const text = lines.join('');
  lines = [];
  process.stdout.write(text);
}

let open = 0;
for (let i = 0; i < count; i++) {
  const req = request({ hostname: url.hostname, port: url.port, path: '/', agent: false });
  req.on('socket', (s) => s.setNoDelay(true));
  req.on('response', (res) => {
    res.setEncoding('utf8');
    let tail = '';
    let first = true;
    res.on('data', (chunk: string) => {
      const at = performance.timeOrigin + performance.now();
      let text = tail + chunk;
      let end = text.indexOf('\n\n');
      while (end !== -1) {
        if (first) {
          first = false;
          if (++open === count) process.stdout.write(`${JSON.stringify({ k: 'ready', count })}\n`);
        } else {
          // The frame's rev is what the bench matches arrivals on.
          const rev = /"rev":(\d+)/.exec(text.slice(0, end))?.[1];
          emit(`${JSON.stringify({ k: 'got', rev: Number(rev), wall: at })}\n`);
        }
        text = text.slice(end + 2);
        end = text.indexOf('\n\n');
      }
      tail = text;
    });
  });
  req.end();
}
process.once('SIGTERM', () => process.exit(0));
