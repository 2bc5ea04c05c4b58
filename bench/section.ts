/**
 * What a benchmark section hands back to bench/run.ts, and the shared printer and
 * statistics. A section is a module exporting `run(): Promise<Section | void>`: it returns a
 * Section to be printed here (tables, targets, notes), or prints its own report and returns
 * nothing. Sections run inside the sandbox that run.ts entered.
 */

export interface Table {
  head: string[];
  rows: string[][];
}

export interface Target {
  /** What is compared, and how the figure was computed ("mean of #491–#500 / mean of #6–#15"). */
  what: string;
  /** The measured figure, formatted ("×23.4"). */
  value: string;
  met: boolean;
}

export interface Section {
  name: string;
  title: string;
  /** Lines printed under the title: setup, what is timed, how it was verified, pinned environment. */
  notes: string[];
  tables: Table[];
  targets: Target[];
  /** Lines printed last (verification results, informational figures). */
  footer?: string[];
}

export interface SectionModule {
  run(): Promise<Section | void>;
}

// ---- statistics -------------------------------------------------------------------------

/** Nearest-rank percentile (p in 0–100) of unsorted samples. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
export const median = (xs: readonly number[]): number => percentile(xs, 50);
export const p90 = (xs: readonly number[]): number => percentile(xs, 90);
export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}
export function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

// ---- formatting -------------------------------------------------------------------------

/** Milliseconds with precision that suits the size: 0.312, 4.27, 38.1, 1204. */
export function ms(v: number): string {
  if (!Number.isFinite(v)) return '—';
  if (v < 1) return v.toFixed(3);
  if (v < 10) return v.toFixed(2);
  if (v < 100) return v.toFixed(1);
  return v.toFixed(0);
}
/** A duration for totals: "812 ms" or "23.4 s". */
export function duration(v: number): string {
  return v < 1000 ? `${ms(v)} ms` : `${(v / 1000).toFixed(2)} s`;
}
export const ratio = (v: number): string => (Number.isFinite(v) ? `×${v >= 100 ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2)}` : '—');
export const medP90 = (xs: readonly number[]): string => `${ms(median(xs))} / ${ms(p90(xs))}`;

export function formatTable(t: Table): string {
  const all = [t.head, ...t.rows];
  const width = t.head.map((_, c) => Math.max(...all.map((r) => [...(r[c] ?? '')].length)));
  const pad = (s: string, w: number, right: boolean): string => {
    const fill = ' '.repeat(Math.max(0, w - [...s].length));
    return right ? fill + s : s + fill;
  };
  // First column left-aligned (labels), the others right-aligned (figures).
  const line = (r: string[]): string => `| ${r.map((x, c) => pad(x ?? '', width[c]!, c > 0)).join(' | ')} |`;
  return [line(t.head), `|${width.map((w, c) => (c > 0 ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`, ...t.rows.map(line)].join('\n');
}

export function printSection(s: Section, out: (line: string) => void = (l) => console.log(l)): void {
  out('');
  out(`== ${s.name}: ${s.title} ==`);
  for (const n of s.notes) out(n);
  for (const t of s.tables) {
    out('');
    out(formatTable(t));
  }
  if (s.targets.length) {
    out('');
    out('targets:');
    for (const t of s.targets) out(`  ${t.what}: ${t.value} — ${t.met ? 'MET' : 'MISSED'}`);
  }
  if (s.footer?.length) {
    out('');
    for (const l of s.footer) out(l);
  }
}
