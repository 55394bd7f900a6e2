/**
 * Line charts as hand-written SVG: axes with ticks (linear or log 10), one polyline with
 * markers per series, a legend. No dependencies; the output is a standalone SVG document.
 */
import type { AxisSpec, ChartData } from "./harness.js";

const PLOT_WIDTH = 540;
const HEIGHT = 420;
const MARGIN = { left: 84, top: 48, bottom: 64 };
/** Rough width of a character of the 12 px legend font, to make room for the longest name. */
const CHAR_WIDTH = 7;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/** Escapes text for SVG element content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c] as string);
}

/** A tick label in the axis's unit: 1024 -> "1 KiB", 20000 -> "20k", 0.5 -> "500 µs". */
export function formatTick(value: number, unit: AxisSpec["unit"]): string {
  const trim = (n: number) => String(Number(n.toPrecision(3)));
  switch (unit) {
    case "bytes": {
      const units = ["B", "KiB", "MiB", "GiB"];
      let v = value;
      let i = 0;
      while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
      }
      return `${trim(v)} ${units[i]}`;
    }
    case "count":
      if (value >= 1e6) return `${trim(value / 1e6)}M`;
      if (value >= 1e3) return `${trim(value / 1e3)}k`;
      return trim(value);
    case "ms":
      if (value < 1e-3) return `${trim(value * 1e6)} ns`;
      if (value < 1) return `${trim(value * 1e3)} µs`;
      if (value < 1000) return `${trim(value)} ms`;
      return `${trim(value / 1000)} s`;
  }
}

interface Scale {
  map: (v: number) => number;
  ticks: number[];
}

/** Maps data values onto [from, to] pixels; log axes get ticks at powers of ten (or of 4 for bytes). */
export function makeScale(values: number[], axis: AxisSpec, from: number, to: number): Scale {
  const finite = values.filter((v) => Number.isFinite(v) && (!axis.log || v > 0));
  let min = finite.length ? Math.min(...finite) : 1;
  let max = finite.length ? Math.max(...finite) : 10;
  if (axis.log) {
    const base = axis.unit === "bytes" ? 4 : 10;
    const lo = Math.floor(Math.log(min) / Math.log(base) + 1e-9);
    const hi = Math.ceil(Math.log(max) / Math.log(base) - 1e-9);
    min = base ** lo;
    max = base ** Math.max(hi, lo + 1);
    const ticks: number[] = [];
    for (let e = lo; e <= Math.max(hi, lo + 1); e++) ticks.push(base ** e);
    const span = Math.log(max) - Math.log(min);
    return { map: (v) => from + ((Math.log(v) - Math.log(min)) / span) * (to - from), ticks };
  }
  if (min > 0) min = 0;
  if (max === min) max = min + 1;
  const step = niceStep((max - min) / 5);
  max = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let t = min; t <= max + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return { map: (v) => from + ((v - min) / (max - min)) * (to - from), ticks };
}

function niceStep(raw: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / magnitude;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * magnitude;
}

/** Renders one chart as a complete SVG document. */
export function renderChart(chart: ChartData): string {
  const longest = Math.max(0, ...chart.series.map((s) => [...s.name].length));
  const right = 60 + longest * CHAR_WIDTH;
  const WIDTH = MARGIN.left + PLOT_WIDTH + right;
  const plotLeft = MARGIN.left;
  const plotRight = WIDTH - right;
  const plotTop = MARGIN.top;
  const plotBottom = HEIGHT - MARGIN.bottom;
  const points = chart.series.flatMap((s) => s.points);
  const xs = makeScale(points.map((p) => p.x), chart.x, plotLeft, plotRight);
  const ys = makeScale(points.map((p) => p.y), chart.y, plotBottom, plotTop);
  const px = (v: number) => xs.map(v).toFixed(1);
  const py = (v: number) => ys.map(v).toFixed(1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${escapeXml(chart.title)}</title>`);
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  out.push(`<text x="${(plotLeft + plotRight) / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(chart.title)}</text>`);
  for (const t of xs.ticks) {
    const x = px(t);
    out.push(`<line x1="${x}" y1="${plotTop}" x2="${x}" y2="${plotBottom}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x}" y="${plotBottom + 18}" text-anchor="middle">${escapeXml(formatTick(t, chart.x.unit))}</text>`);
  }
  for (const t of ys.ticks) {
    const y = py(t);
    out.push(`<line x1="${plotLeft}" y1="${y}" x2="${plotRight}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${plotLeft - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(formatTick(t, chart.y.unit))}</text>`);
  }
  out.push(`<line x1="${plotLeft}" y1="${plotBottom}" x2="${plotRight}" y2="${plotBottom}" stroke="#333"/>`);
  out.push(`<line x1="${plotLeft}" y1="${plotTop}" x2="${plotLeft}" y2="${plotBottom}" stroke="#333"/>`);
  const xLabel = `${chart.x.label}${chart.x.log ? " (log scale)" : ""}`;
  const yLabel = `${chart.y.label}${chart.y.log ? " (log scale)" : ""}`;
  out.push(`<text x="${(plotLeft + plotRight) / 2}" y="${HEIGHT - 18}" text-anchor="middle">${escapeXml(xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${(plotTop + plotBottom) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yLabel)}</text>`);
  chart.series.forEach((series, index) => {
    const color = COLORS[index % COLORS.length] as string;
    const drawn = series.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!chart.x.log || p.x > 0) && (!chart.y.log || p.y > 0)).sort((a, b) => a.x - b.x);
    if (drawn.length > 1) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${drawn.map((p) => `${px(p.x)},${py(p.y)}`).join(" ")}"/>`);
    }
    for (const p of drawn) {
      out.push(`<circle cx="${px(p.x)}" cy="${py(p.y)}" r="3.5" fill="${color}"><title>${escapeXml(`${series.name}: ${formatTick(p.x, chart.x.unit)} → ${formatTick(p.y, chart.y.unit)}`)}</title></circle>`);
    }
    const ly = plotTop + 8 + index * 20;
    out.push(`<line x1="${plotRight + 16}" y1="${ly}" x2="${plotRight + 40}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<circle cx="${plotRight + 28}" cy="${ly}" r="3.5" fill="${color}"/>`);
    out.push(`<text x="${plotRight + 46}" y="${ly}" dominant-baseline="middle">${escapeXml(series.name)}</text>`);
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
