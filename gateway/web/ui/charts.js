/** Records-per-minute charts (uPlot, loaded as a global by /ui/uplot.js). */

import { $, el } from './dom.js';

const CHART_HEIGHT_PX = 180;
const charts = new Map();

function minuteSeries(counts) {
  const ys = counts.map((n) => Number(n) || 0);
  const xs = ys.map((_, i) => i - (ys.length - 1));
  return [xs, ys];
}

export function seriesSummary(ys) {
  const total = ys.reduce((a, b) => a + b, 0);
  return `(this minute ${ys.at(-1) ?? 0}, last hour ${total}, peak ${Math.max(0, ...ys)} a minute)`;
}

export function drawMinuteChart(container, counts, label) {
  const data = minuteSeries(counts);
  const existing = charts.get(container);
  if (existing) { existing.setData(data); return; }
  if (typeof window.uPlot !== 'function') {
    container.replaceChildren(el('p', { class: 'muted', text: 'Chart unavailable (uPlot did not load); the totals are above.' }));
    return;
  }
  const width = Math.max(240, container.clientWidth || 600);
  const chart = new window.uPlot({
    width,
    height: CHART_HEIGHT_PX,
    scales: { x: { time: false }, y: { range: (u, min, max) => [0, max > 0 ? Math.ceil(max * 1.15) : 1] } },
    axes: [
      { values: (u, ticks) => ticks.map((v) => (v === 0 ? 'now' : `${-v} min`)) },
      { size: 50, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6] },
    ],
    series: [
      { label: 'minute', value: (u, v) => (v === null || v === undefined ? '–' : v === 0 ? 'this minute' : `${-v} min ago`) },
      { label, stroke: '#0969da', fill: 'rgba(9, 105, 218, 0.12)', width: 2, points: { show: false } },
    ],
  }, data, container);
  const resize = new ResizeObserver(() => {
    const w = container.clientWidth;
    if (w > 0 && Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height: CHART_HEIGHT_PX });
  });
  resize.observe(container);
  charts.set(container, chart);
  chart.stopResizing = () => resize.disconnect();
}

export function dropChart(container) {
  const chart = charts.get(container);
  if (!chart) return;
  chart.stopResizing();
  chart.destroy();
  charts.delete(container);
}

export function renderIngest(counts) {
  $('ingest-summary').textContent = seriesSummary(counts.map((n) => Number(n) || 0));
  drawMinuteChart($('ingest-plot'), counts, 'records');
}
