/**
 * Inline SVG charts for the drill report (`killpath drill --report`): drawn once at render time
 * in TypeScript, so the page needs no script, no font and no network to show them. Every number
 * that reaches an attribute goes through `n()`, so a chart never carries NaN or Infinity; every
 * string goes through `esc()`.
 */
import type { TimelinePoint } from '@killpath/protocol';

/** Escapes text for HTML and XML content and attribute values (both quote kinds). */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A number for an SVG attribute: at most two decimals, 0 for anything that is not finite. */
function n(v: number): string {
  return Number.isFinite(v) ? String(Math.round(v * 100) / 100) : '0';
}

/** Compact ms label for axis ticks: `0`, `250 ms`, `−1.5 s` (the minus sign is U+2212). */
export function tickMs(v: number): string {
  if (!Number.isFinite(v) || v === 0) return '0';
  const sign = v < 0 ? '\u2212' : '';
  const a = Math.abs(v);
  if (a >= 1000) return `${sign}${trim(a / 1000)} s`;
  return `${sign}${trim(a)} ms`;
}

function trim(v: number): string {
  return String(Number(v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toPrecision(2)));
}

/** The smallest 1-2-2.5-5 × 10^k step at least `raw` (raw > 0). */
export function niceStep(raw: number): number {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= raw * (1 - 1e-9)) return m * p;
  return 10 * p;
}

/** Ticks covering [lo, hi] with about `count` steps, on multiples of a nice step. */
function linearTicks(
  lo: number,
  hi: number,
  count: number,
  minStep = 0,
): { lo: number; hi: number; ticks: number[] } {
  let step = Math.max(minStep, niceStep((hi - lo) / Math.max(1, count) || 1));
  if (minStep >= 1) step = Math.ceil(step);
  const a = Math.floor(lo / step) * step;
  const b = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let v = a; v <= b + step / 2; v += step) ticks.push(Math.round(v / step) * step);
  return { lo: a, hi: b === a ? a + step : b, ticks };
}

/** A single-line legend: swatches with their labels, left to right from (x, y). */
function legend(x: number, y: number, items: { swatch: string; label: string }[]): string {
  let cx = x;
  const out: string[] = [];
  for (const it of items) {
    out.push(
      `<g transform="translate(${n(cx)},${n(y)})">${it.swatch}<text x="16" y="4" class="lg">${esc(it.label)}</text></g>`,
    );
    cx += 28 + it.label.length * 6.4;
  }
  return `<g class="legend">${out.join('')}</g>`;
}

const rect = (fill: string, extra = '') =>
  `<rect x="0" y="-5" width="12" height="10" fill="${fill}"${extra}/>`;

/** Opens an accessible SVG: `<title>` and `<desc>` referenced by aria-labelledby. */
function open(id: string, width: number, height: number, title: string, desc: string): string {
  return (
    `<svg class="chart" id="${esc(id)}" viewBox="0 0 ${n(width)} ${n(height)}" width="${n(width)}" height="${n(height)}" role="img" aria-labelledby="${esc(id)}-t ${esc(id)}-d">` +
    `<title id="${esc(id)}-t">${esc(title)}</title><desc id="${esc(id)}-d">${esc(desc)}</desc>` +
    `<rect width="${n(width)}" height="${n(height)}" fill="#fff"/>`
  );
}

/** One row of the signal-to-halt distribution chart. */
export interface LatencyRow {
  /** Short label at the left (a scenario id). */
  label: string;
  /** Longer text for the row's tooltip (the scenario's title). */
  title: string;
  samples: number[];
  p50: number;
  p99: number;
  /** The target to draw as a vertical line (null: none applies). */
  target: number | null;
}

/** Chart colours (Okabe-Ito, distinguishable in colour-blind vision and in grey print). */
export const COLORS = {
  sample: '#0072B2',
  target: '#C0392B',
  read: '#56B4E9',
  write: '#E69F00',
  irreversible: '#D55E00',
  refused: '#8C8C8C',
  aborted: '#CC79A7',
} as const;

/**
 * Strip plot of signal-to-halt samples, one row per entry on a shared ms axis: dots for the
 * samples, a line from min to max, ticks at p50 and p99, and the row's target as a red dashed
 * vertical line. The axis is logarithmic when the values span more than a factor of 30. Returns
 * null when no row has a finite sample.
 */
export function latencyStripChart(
  id: string,
  rows: LatencyRow[],
  opts: { width?: number; caption?: string } = {},
): string | null {
  const clean = rows
    .map((r) => ({ ...r, samples: r.samples.filter((v) => Number.isFinite(v) && v >= 0) }))
    .filter((r) => r.samples.length > 0);
  if (clean.length === 0) return null;
  const width = opts.width ?? 900;
  const left = 132;
  const right = 24;
  const top = 34;
  const rowH = 30;
  const bottom = 46;
  const height = top + rowH * clean.length + bottom;
  const values = clean
    .flatMap((r) => [...r.samples, r.p50, r.p99, ...(r.target !== null ? [r.target] : [])])
    .filter((v) => Number.isFinite(v) && v >= 0);
  const vmax = Math.max(...values);
  const positive = values.filter((v) => v > 0);
  const vmin = positive.length ? Math.min(...positive) : 0;
  const log = vmin > 0 && vmax / vmin > 30;
  const plotW = width - left - right;
  let x: (v: number) => number;
  let ticks: number[];
  if (log) {
    const a = Math.floor(Math.log10(vmin));
    const b = Math.ceil(Math.log10(vmax));
    const span = Math.max(1, b - a);
    x = (v) => left + ((Math.log10(Math.max(v, 10 ** a)) - a) / span) * plotW;
    ticks = [];
    for (let k = a; k <= b; k++)
      for (const m of span > 4 ? [1] : [1, 2, 5]) if (m * 10 ** k <= 10 ** b) ticks.push(m * 10 ** k);
  } else {
    const t = linearTicks(0, (vmax || 1) * 1.04, 6);
    x = (v) => left + (v / t.hi) * plotW;
    ticks = t.ticks;
  }
  const out: string[] = [
    open(id, width, height, opts.caption ?? 'signal-to-halt per scenario', describeRows(clean, log)),
  ];
  out.push(
    legend(left, 14, [
      {
        swatch: `<circle cx="6" cy="0" r="3.5" fill="${COLORS.sample}" fill-opacity="0.6"/>`,
        label: 'sample (one worker)',
      },
      { swatch: `<rect x="4" y="-7" width="3" height="14" fill="#111"/>`, label: 'p50' },
      {
        swatch: `<rect x="4" y="-7" width="3" height="14" fill="#fff" stroke="#111" stroke-width="1.2"/>`,
        label: 'p99',
      },
      {
        swatch: `<line x1="6" y1="-7" x2="6" y2="7" stroke="${COLORS.target}" stroke-width="2" stroke-dasharray="3 2"/>`,
        label: 'target',
      },
    ]),
  );
  const plotBottom = top + rowH * clean.length;
  for (const v of ticks) {
    out.push(`<line x1="${n(x(v))}" y1="${n(top)}" x2="${n(x(v))}" y2="${n(plotBottom)}" class="grid"/>`);
    out.push(
      `<text x="${n(x(v))}" y="${n(plotBottom + 14)}" class="tick" text-anchor="middle">${esc(tickMs(v))}</text>`,
    );
  }
  out.push(
    `<line x1="${n(left)}" y1="${n(plotBottom)}" x2="${n(width - right)}" y2="${n(plotBottom)}" class="axis"/>`,
  );
  out.push(
    `<text x="${n(left + plotW / 2)}" y="${n(height - 8)}" class="axlabel" text-anchor="middle">signal-to-halt, flip → worker settled (ms${log ? ', log scale' : ''})</text>`,
  );
  clean.forEach((r, i) => {
    const cy = top + rowH * i + rowH / 2;
    const lo = Math.min(...r.samples);
    const hi = Math.max(...r.samples);
    const tip = `${r.label} ${r.title}: n=${r.samples.length}, p50 ${tickMs(r.p50)}, p99 ${tickMs(r.p99)}, max ${tickMs(hi)}${r.target !== null ? `, target ${tickMs(r.target)}` : ', no target'}`;
    out.push(`<g class="row"><title>${esc(tip)}</title>`);
    if (i % 2 === 0)
      out.push(
        `<rect x="${n(left)}" y="${n(cy - rowH / 2)}" width="${n(plotW)}" height="${n(rowH)}" fill="#f4f6f8"/>`,
      );
    out.push(
      `<text x="${n(left - 8)}" y="${n(cy + 4)}" class="rowlabel" text-anchor="end">${esc(clip(r.label, 18))}</text>`,
    );
    out.push(
      `<line x1="${n(x(lo))}" y1="${n(cy)}" x2="${n(x(hi))}" y2="${n(cy)}" stroke="#555" stroke-width="1"/>`,
    );
    r.samples.forEach((v, j) => {
      const jitter = (((j * 7919) % 11) / 10 - 0.5) * (rowH * 0.5);
      out.push(
        `<circle cx="${n(x(v))}" cy="${n(cy + jitter)}" r="3" fill="${COLORS.sample}" fill-opacity="0.55"/>`,
      );
    });
    out.push(`<rect x="${n(x(r.p50) - 1.5)}" y="${n(cy - 10)}" width="3" height="20" fill="#111"/>`);
    out.push(
      `<rect x="${n(x(r.p99) - 1.5)}" y="${n(cy - 10)}" width="3" height="20" fill="#fff" stroke="#111" stroke-width="1.2"/>`,
    );
    if (r.target !== null && Number.isFinite(r.target)) {
      out.push(
        `<line x1="${n(x(r.target))}" y1="${n(cy - rowH / 2 + 1)}" x2="${n(x(r.target))}" y2="${n(cy + rowH / 2 - 1)}" stroke="${COLORS.target}" stroke-width="2" stroke-dasharray="3 2"/>`,
      );
    }
    out.push('</g>');
  });
  out.push('</svg>');
  return out.join('');
}

function describeRows(rows: LatencyRow[], log: boolean): string {
  const parts = rows.map(
    (r) =>
      `${r.label}: ${r.samples.length} samples, p50 ${tickMs(r.p50)}, p99 ${tickMs(r.p99)}${r.target !== null ? `, target ${tickMs(r.target)}` : ''}`,
  );
  return `Strip plot on a ${log ? 'logarithmic' : 'linear'} ms axis. ${parts.join('; ')}.`;
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

type Series = 'read' | 'write' | 'irreversible' | 'refused' | 'aborted';
const UP: Series[] = ['read', 'write', 'irreversible'];
const DOWN: Series[] = ['refused', 'aborted'];

/** Bin width for a span of `spanMs`: a nice step giving at most ~40 bins, at least 1 ms. */
export function binWidth(spanMs: number): number {
  return Math.max(1, niceStep(Math.max(spanMs, 1) / 40));
}

/**
 * Effects around the flip, binned over time (t relative to the flip): effects that started,
 * stacked by class above the zero line; refused and aborted effects stacked below it; a vertical
 * line at t = 0 labelled "flip". Returns null when there is no finite point.
 */
export function effectsTimelineChart(
  id: string,
  points: TimelinePoint[],
  opts: { width?: number; caption?: string } = {},
): string | null {
  const pts = points.filter((p) => Number.isFinite(p.t));
  if (pts.length === 0) return null;
  const width = opts.width ?? 900;
  const left = 58;
  const right = 20;
  const top = 40;
  const plotH = 190;
  const bottom = 44;
  const height = top + plotH + bottom;
  const ts = pts.map((p) => p.t);
  const tmin = Math.min(0, ...ts);
  const tmax = Math.max(0, ...ts);
  const bin = binWidth(tmax - tmin);
  const b0 = Math.floor(tmin / bin);
  const b1 = Math.floor(tmax / bin);
  const bins = new Map<number, Record<Series, number>>();
  for (let b = b0; b <= b1; b++) bins.set(b, { read: 0, write: 0, irreversible: 0, refused: 0, aborted: 0 });
  for (const p of pts) {
    const c = bins.get(Math.floor(p.t / bin));
    if (!c) continue;
    if (p.outcome === 'started') c[p.class]++;
    else c[p.outcome]++;
  }
  const sum = (c: Record<Series, number>, s: Series[]) => s.reduce((a, k) => a + c[k], 0);
  const upMax = Math.max(0, ...[...bins.values()].map((c) => sum(c, UP)));
  const downMax = Math.max(0, ...[...bins.values()].map((c) => sum(c, DOWN)));
  const yTicks = linearTicks(0, Math.max(upMax, downMax, 1), 4, 1);
  const upTop = upMax > 0 ? yTicks.hi : 0;
  const downBottom = downMax > 0 ? yTicks.hi : 0;
  const perUnit = plotH / (upTop + downBottom || 1);
  const zeroY = top + upTop * perUnit;
  const y = (count: number) => zeroY - count * perUnit;
  const t0 = b0 * bin;
  const t1 = (b1 + 1) * bin;
  const plotW = width - left - right;
  const x = (t: number) => left + ((t - t0) / (t1 - t0 || 1)) * plotW;

  const totals = { read: 0, write: 0, irreversible: 0, refused: 0, aborted: 0 };
  for (const c of bins.values()) for (const k of [...UP, ...DOWN]) totals[k] += c[k];
  const desc = `Effects per ${tickMs(bin)} bin from ${tickMs(t0)} to ${tickMs(t1)} around the flip. Started: ${totals.read} read, ${totals.write} write, ${totals.irreversible} irreversible; refused ${totals.refused}; aborted ${totals.aborted}.`;
  const out: string[] = [open(id, width, height, opts.caption ?? 'effects over time around the flip', desc)];
  out.push(
    legend(left, 14, [
      { swatch: rect(COLORS.read), label: 'read started' },
      { swatch: rect(COLORS.write), label: 'write started' },
      { swatch: rect(COLORS.irreversible), label: 'irreversible started' },
      { swatch: rect(COLORS.refused), label: 'refused (below)' },
      { swatch: rect(COLORS.aborted), label: 'aborted (below)' },
    ]),
  );
  // Grid and y ticks: counts above the zero line (started) and below it (refused, aborted).
  const yt = new Set<string>();
  for (const v of yTicks.ticks) {
    for (const [count, show] of [
      [v, upTop > 0 && v <= upTop],
      [-v, downBottom > 0 && v <= downBottom && v > 0],
    ] as const) {
      if (!show || yt.has(String(count))) continue;
      yt.add(String(count));
      out.push(
        `<line x1="${n(left)}" y1="${n(y(count))}" x2="${n(width - right)}" y2="${n(y(count))}" class="grid"/>`,
      );
      out.push(
        `<text x="${n(left - 6)}" y="${n(y(count) + 4)}" class="tick" text-anchor="end">${esc(Math.abs(count))}</text>`,
      );
    }
  }
  for (const [b, c] of bins) {
    const bx = x(b * bin);
    const bw = Math.max(1, x((b + 1) * bin) - bx - 1);
    const tip = `${tickMs(b * bin)} to ${tickMs((b + 1) * bin)}: started ${c.read} read, ${c.write} write, ${c.irreversible} irreversible; refused ${c.refused}; aborted ${c.aborted}`;
    const parts: string[] = [];
    let acc = 0;
    for (const k of UP) {
      if (c[k] === 0) continue;
      parts.push(
        `<rect x="${n(bx)}" y="${n(y(acc + c[k]))}" width="${n(bw)}" height="${n(c[k] * perUnit)}" fill="${COLORS[k]}"/>`,
      );
      acc += c[k];
    }
    acc = 0;
    for (const k of DOWN) {
      if (c[k] === 0) continue;
      parts.push(
        `<rect x="${n(bx)}" y="${n(y(-acc))}" width="${n(bw)}" height="${n(c[k] * perUnit)}" fill="${COLORS[k]}"/>`,
      );
      acc += c[k];
    }
    if (parts.length) out.push(`<g class="bin"><title>${esc(tip)}</title>${parts.join('')}</g>`);
  }
  out.push(`<line x1="${n(left)}" y1="${n(zeroY)}" x2="${n(width - right)}" y2="${n(zeroY)}" class="axis"/>`);
  out.push(`<line x1="${n(left)}" y1="${n(top)}" x2="${n(left)}" y2="${n(top + plotH)}" class="axis"/>`);
  const xt = linearTicks(t0, t1, 8);
  for (const v of xt.ticks) {
    if (v < t0 || v > t1) continue;
    out.push(
      `<line x1="${n(x(v))}" y1="${n(top + plotH)}" x2="${n(x(v))}" y2="${n(top + plotH + 4)}" class="axis"/>`,
    );
    out.push(
      `<text x="${n(x(v))}" y="${n(top + plotH + 16)}" class="tick" text-anchor="middle">${esc(tickMs(v))}</text>`,
    );
  }
  out.push(
    `<line x1="${n(x(0))}" y1="${n(top - 6)}" x2="${n(x(0))}" y2="${n(top + plotH)}" stroke="#111" stroke-width="1.5" stroke-dasharray="5 3"/>`,
  );
  out.push(`<text x="${n(x(0) + 4)}" y="${n(top - 6)}" class="flip">flip</text>`);
  out.push(
    `<text x="${n(left + plotW / 2)}" y="${n(height - 8)}" class="axlabel" text-anchor="middle">time relative to the flip (${esc(tickMs(bin))} bins)</text>`,
  );
  out.push(
    `<text transform="translate(14,${n(top + plotH / 2)}) rotate(-90)" class="axlabel" text-anchor="middle">effects per bin</text>`,
  );
  out.push('</svg>');
  return out.join('');
}
