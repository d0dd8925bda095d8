/**
 * The launcher's process control, per backend (`npm run bench:launcher`): kill → last process
 * gone (an agent ignoring SIGTERM with two children, one in a session of its own; SIGKILL at
 * once), and freeze → the agent's last instruction (it writes CLOCK_MONOTONIC to a file in a
 * tight loop; the last value written is its last instruction, compared with the freeze call).
 * p50 / max over TRIALS (default 20). The floor beside the kill: spawn → a process gone after a
 * plain `process.kill(pid, 'SIGKILL')` of one child, measured the same way in the same run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CgroupProcessBackend, LocalProcessBackend, cgroupSupport, type ProcessBackend } from '@killpath/cli';

const TRIALS = Number(process.env.TRIALS ?? '20');
const AGENT = fileURLToPath(new URL('../packages/cli/test/launcher/fixtures/agent.mjs', import.meta.url));
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
const alive = (pid: number) => {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(s.slice(s.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
};
const q = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const fmt = (xs: number[]) =>
  `p50 ${q(xs, 0.5).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (n=${xs.length})`;

async function killTrial(backend: ProcessBackend): Promise<number> {
  const agent = backend.start({
    command: process.execPath,
    args: [AGENT, 'stubborn'],
    env: process.env,
    stdio: 'pipe',
  });
  const line = await new Promise<string>((ok) => createInterface({ input: agent.stdout! }).once('line', ok));
  const pids = [agent.pid, ...((JSON.parse(line) as { children: number[] }).children ?? [])];
  const t0 = performance.now();
  void agent.terminate(0);
  while (pids.some(alive)) await sleep(0.5);
  const ms = performance.now() - t0;
  await agent.terminate(0);
  return ms;
}

async function floorTrial(): Promise<number> {
  const p = spawn(
    process.execPath,
    ['-e', "process.on('SIGTERM',()=>{});console.log(1);setInterval(()=>{},1000)"],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  await new Promise((ok) => p.stdout.once('data', ok));
  const t0 = performance.now();
  p.kill('SIGKILL');
  while (alive(p.pid!)) await sleep(0.5);
  return performance.now() - t0;
}

async function freezeTrial(
  backend: ProcessBackend,
  dir: string,
  i: number,
): Promise<{ lastUs: number; confirmedUs: number }> {
  const file = join(dir, `t${i}`);
  const code = `const fs=require('node:fs');const fd=fs.openSync(${JSON.stringify(file)},'w');console.log('up');const b=Buffer.alloc(24);for(;;){b.fill(32);b.write(String(process.hrtime.bigint()));fs.writeSync(fd,b,0,24,0);}`;
  const agent = backend.start({
    command: process.execPath,
    args: ['-e', code],
    env: process.env,
    stdio: 'pipe',
  });
  await new Promise((ok) => agent.stdout!.once('data', ok));
  await sleep(50);
  const t0 = process.hrtime.bigint();
  await agent.freeze();
  const t1 = process.hrtime.bigint();
  await sleep(20);
  const last = BigInt(readFileSync(file, 'utf8').trim());
  await agent.terminate(0);
  return { lastUs: Number(last - t0) / 1000, confirmedUs: Number(t1 - t0) / 1000 };
}

const support = cgroupSupport();
const backends: [string, ProcessBackend][] = [
  ['process-group', new LocalProcessBackend({ orphanPolicy: 'keep' })],
];
if (support.ok)
  backends.unshift(['cgroup', new CgroupProcessBackend({ parent: support.parent, orphanPolicy: 'keep' })]);
else console.log(`# cgroup backend unavailable here: ${support.why}`);
const dir = mkdtempSync(join(tmpdir(), 'killpath-bench-launcher-'));
try {
  const floor: number[] = [];
  for (let i = 0; i < TRIALS; i++) floor.push(await floorTrial());
  console.log(`floor: one process, SIGKILL → gone: ${fmt(floor)}`);
  for (const [name, backend] of backends) {
    const kill: number[] = [];
    for (let i = 0; i < TRIALS; i++) kill.push(await killTrial(backend));
    console.log(
      `${name}: kill (3 processes, SIGTERM ignored, one setsid) → last process gone: ${fmt(kill)} (${(q(kill, 0.5) / q(floor, 0.5)).toFixed(1)}× the floor's p50)`,
    );
    const last: number[] = [];
    const confirmed: number[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const r = await freezeTrial(backend, dir, i);
      last.push(r.lastUs / 1000);
      confirmed.push(r.confirmedUs / 1000);
    }
    console.log(
      `${name}: freeze call → the agent's last instruction (last monotonic time it wrote): ${fmt(last)}; call → kernel confirmed frozen: ${fmt(confirmed)}`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
