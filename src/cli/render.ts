/** Plain aligned text tables for the CLI's read commands (the `--json` forms are separate). */
export function renderTable(header: string[], rows: string[][]): string {
  if (rows.length === 0) return `${header.join('  ')}\n(none)`;
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}
