/**
 * A hand-written SVG chart of a bench run: one panel per question (throughput, p99 latency,
 * memory), in each a pair of bars per workload (ours, memcached) with their values and the
 * ratio under them, coloured by who wins. Bars are scaled within each pair, so pairs with
 * very different magnitudes (pipelined vs not) stay comparable at a glance.
 */
import { fmtInt, fmtMs, fmtOps, fmtPct, fmtRatio, fmtUs, headline, type Report } from './report';
import type { WorkloadSummary } from './summary';

interface Group {
  label: string;
  ours: number | null;
  memcached: number | null;
  ratio: number | null;
  format: (v: number | null) => string;
  higherIsBetter: boolean;
}

interface Panel {
  title: string;
  groups: Group[];
}

const OURS_COLOR = '#3566b0';
const MEMCACHED_COLOR = '#e38b2c';
const WIN_COLOR = '#1d7a32';
const LOSE_COLOR = '#b3261e';
const EVEN_COLOR = '#444444';
/** Ratios within this of 1.0 count as even. */
const EVEN_BAND = 0.03;

const GROUP_WIDTH = 150;
const BAR_WIDTH = 42;
const BAR_GAP = 8;
const BAR_AREA_HEIGHT = 140;
const PANEL_HEIGHT = 250;
const MARGIN_LEFT = 30;

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

function panels(r: Report): Panel[] {
  const ran = r.workloads.filter((w) => w.skipped === null && w.summary !== null);
  const sum = (w: (typeof ran)[number]): WorkloadSummary => w.summary as WorkloadSummary;
  const approx = ran.some((w) => sum(w).percentileSource === 'log2-bucket-upper-bound');
  const throughput: Panel = {
    title: 'Throughput, ops/s (higher is better)',
    groups: ran.map((w) => ({
      label: w.label,
      ours: sum(w).medians.ours.opsPerSec,
      memcached: sum(w).medians.memcached.opsPerSec,
      ratio: sum(w).ratios.opsPerSec,
      format: fmtOps,
      higherIsBetter: true,
    })),
  };
  const latency: Panel = {
    title: `p99 latency, ms (lower is better)${approx ? ' (memcaslap: power-of-two bucket upper edges)' : ''}`,
    groups: ran
      .filter((w) => w.focus !== 'capacity')
      .map((w) => ({
        label: w.label,
        ours: sum(w).medians.ours.p99Ms,
        memcached: sum(w).medians.memcached.p99Ms,
        ratio: sum(w).ratios.p99Ms,
        format: (v: number | null) => fmtMs(v, sum(w).percentileSource === 'log2-bucket-upper-bound'),
        higherIsBetter: false,
      })),
  };
  const cpu: Panel = {
    title: 'Server CPU per request, µs (lower is better)',
    groups: ran.map((w) => ({
      label: w.label,
      ours: sum(w).medians.ours.serverCpuUsPerOp,
      memcached: sum(w).medians.memcached.serverCpuUsPerOp,
      ratio: sum(w).ratios.serverCpuUsPerOp,
      format: fmtUs,
      higherIsBetter: false,
    })),
  };
  const memory: Group[] = [];
  for (const w of ran) {
    const s = sum(w);
    if (w.focus === 'hit-ratio') {
      memory.push({ label: `${w.label}: hit ratio`, ours: s.medians.ours.hitRatio, memcached: s.medians.memcached.hitRatio, ratio: s.ratios.hitRatio, format: fmtPct, higherIsBetter: true });
    }
    if (w.focus === 'capacity') {
      memory.push({ label: `${w.label}: items held`, ours: s.medians.ours.currItems, memcached: s.medians.memcached.currItems, ratio: s.ratios.currItems, format: fmtInt, higherIsBetter: true });
      memory.push({
        label: `${w.label}: RSS MiB`,
        ours: s.medians.ours.rssMiB,
        memcached: s.medians.memcached.rssMiB,
        ratio: s.ratios.rssMiB,
        format: (v: number | null) => (v === null ? '–' : v.toFixed(1)),
        higherIsBetter: false,
      });
    }
  }
  const out = [throughput, latency, cpu];
  if (memory.length > 0) out.push({ title: 'Cache: hit ratio, items held, resident memory', groups: memory });
  return out.filter((p) => p.groups.length > 0);
}

function ratioColor(g: Group): string {
  if (g.ratio === null) return EVEN_COLOR;
  const better = g.higherIsBetter ? g.ratio > 1 + EVEN_BAND : g.ratio < 1 - EVEN_BAND;
  const worse = g.higherIsBetter ? g.ratio < 1 - EVEN_BAND : g.ratio > 1 + EVEN_BAND;
  return better ? WIN_COLOR : worse ? LOSE_COLOR : EVEN_COLOR;
}

function bar(x: number, baseY: number, value: number | null, scaleMax: number, color: string, label: string): string[] {
  const parts: string[] = [];
  if (value === null) {
    parts.push(`<rect x="${x}" y="${baseY - 30}" width="${BAR_WIDTH}" height="30" fill="none" stroke="#999" stroke-dasharray="4 3"/>`);
    parts.push(text(x + BAR_WIDTH / 2, baseY - 11, 'n/a', 'text-anchor="middle" font-size="11" fill="#777"'));
    return parts;
  }
  const h = scaleMax > 0 ? Math.max(1, (value / scaleMax) * BAR_AREA_HEIGHT) : 1;
  parts.push(`<rect x="${x}" y="${(baseY - h).toFixed(1)}" width="${BAR_WIDTH}" height="${h.toFixed(1)}" fill="${color}"><title>${esc(label)}</title></rect>`);
  parts.push(text(x + BAR_WIDTH / 2, baseY - h - 4, label, 'text-anchor="middle" font-size="11" fill="#222"'));
  return parts;
}

/** Approximate width of text in a sans-serif font, for wrapping (SVG text does not wrap). */
function textWidth(s: string, fontSize: number): number {
  return s.length * fontSize * 0.56;
}

/** Split `parts` (joined by " · ") into lines no wider than `width`. */
function wrap(parts: string[], width: number, fontSize: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const p of parts) {
    const next = line === '' ? p : `${line} · ${p}`;
    if (line !== '' && textWidth(next, fontSize) > width) {
      lines.push(line);
      line = p;
    } else {
      line = next;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

export function renderSvg(r: Report): string {
  const ps = panels(r);
  const maxGroups = Math.max(1, ...ps.map((p) => p.groups.length));
  const width = Math.max(820, MARGIN_LEFT * 2 + maxGroups * GROUP_WIDTH);
  const inner = width - 2 * MARGIN_LEFT;
  const title = `${r.servers.ours.label} vs ${r.servers.memcached.label} ${r.servers.memcached.version ?? ''}`;
  const titleLines = wrap([title, ...(r.kind === 'smoke' ? ['SMOKE RUN: the numbers mean nothing'] : [])], inner, 18);
  const infoLines = wrap(headline(r).replace(/`/g, '').split(' · '), inner, 11);
  const keyLine = 'medians over rounds · ratio = ours / memcached, median of per-round ratios · bars scaled within each pair';
  const headerHeight = 10 + titleLines.length * 22 + infoLines.length * 15 + 62;
  const skipped = r.workloads.filter((w) => w.skipped !== null);
  const footer = skipped.length + (r.failures.length > 0 ? 1 : 0);
  const height = headerHeight + ps.length * PANEL_HEIGHT + 16 + footer * 16;

  const s: string[] = [];
  s.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif">`);
  s.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  let y = 10;
  for (const line of titleLines) {
    y += 22;
    s.push(text(MARGIN_LEFT, y, line, 'font-size="18" font-weight="bold" fill="#111"'));
  }
  y += 4;
  for (const line of infoLines) {
    y += 15;
    s.push(text(MARGIN_LEFT, y, line, 'font-size="11" fill="#444"'));
  }
  // legend
  y += 22;
  let x = MARGIN_LEFT;
  for (const [label, color] of [
    [r.servers.ours.label, OURS_COLOR],
    [r.servers.memcached.label, MEMCACHED_COLOR],
  ]) {
    s.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${color}"/>`);
    s.push(text(x + 17, y, label, 'font-size="12" fill="#111"'));
    x += 17 + textWidth(label, 12) + 24;
  }
  y += 18;
  s.push(text(MARGIN_LEFT, y, keyLine, 'font-size="11" fill="#555"'));

  ps.forEach((p, i) => {
    const top = headerHeight + i * PANEL_HEIGHT;
    const baseY = top + 28 + 16 + BAR_AREA_HEIGHT;
    s.push(`<line x1="${MARGIN_LEFT}" y1="${top + 4}" x2="${width - MARGIN_LEFT}" y2="${top + 4}" stroke="#ddd"/>`);
    s.push(text(MARGIN_LEFT, top + 24, p.title, 'font-size="14" font-weight="bold" fill="#222"'));
    p.groups.forEach((g, k) => {
      const gx = MARGIN_LEFT + k * GROUP_WIDTH;
      const scaleMax = Math.max(g.ours ?? 0, g.memcached ?? 0);
      const x1 = gx + (GROUP_WIDTH - 2 * BAR_WIDTH - BAR_GAP) / 2;
      const x2 = x1 + BAR_WIDTH + BAR_GAP;
      s.push(...bar(x1, baseY, g.ours, scaleMax, OURS_COLOR, g.format(g.ours)));
      s.push(...bar(x2, baseY, g.memcached, scaleMax, MEMCACHED_COLOR, g.format(g.memcached)));
      s.push(`<line x1="${gx + 8}" y1="${baseY}" x2="${gx + GROUP_WIDTH - 8}" y2="${baseY}" stroke="#888"/>`);
      s.push(text(gx + GROUP_WIDTH / 2, baseY + 16, g.label, 'text-anchor="middle" font-size="12" fill="#222"'));
      s.push(text(gx + GROUP_WIDTH / 2, baseY + 34, fmtRatio(g.ratio), `text-anchor="middle" font-size="14" font-weight="bold" fill="${ratioColor(g)}"`));
    });
  });
  let fy = headerHeight + ps.length * PANEL_HEIGHT + 12;
  for (const w of skipped) {
    s.push(text(MARGIN_LEFT, fy, `not run: ${w.label} (${w.skipped as string})`, 'font-size="11" fill="#777"'));
    fy += 16;
  }
  if (r.failures.length > 0) {
    s.push(text(MARGIN_LEFT, fy, `${r.failures.length} run(s) failed: see results.json`, 'font-size="11" fill="#b3261e"'));
  }
  s.push('</svg>');
  return `${s.join('\n')}\n`;
}
