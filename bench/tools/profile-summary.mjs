#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof): where the time went, by package and by function.
//   node bench/tools/profile-summary.mjs FILE.cpuprofile [--top 25] [--stacks NAME] [--from S] [--to S] [--timeline]
// --stacks NAME: the heaviest call stacks through functions whose label contains NAME.
// --from/--to S: only samples between S seconds after the profile started (skip start-up and the
// bench's warm-up); --timeline prints busy milliseconds per second to find that window.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: {
  top: { type: 'string', default: '25' }, stacks: { type: 'string' }, from: { type: 'string', default: '0' }, to: { type: 'string', default: 'Infinity' },
  timeline: { type: 'boolean', default: false },
} });
if (positionals.length !== 1) {
  console.error('usage: node bench/tools/profile-summary.mjs FILE.cpuprofile [--top N]');
  process.exit(2);
}
const top = Number(values.top);
const profile = JSON.parse(readFileSync(positionals[0], 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** A package-level bucket for a frame: node_modules/<pkg>, node:<module>, the app's own files, or V8's pseudo-frames. */
function bucket(cf) {
  const url = cf.url ?? '';
  if (!url) return cf.functionName ? `(${cf.functionName.replace(/[()]/g, '')})` : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  if (url.startsWith('node:')) return url.split('/')[0].replace(/^node:internal.*/, 'node:internal');
  const dist = /\/dist\/(.+?)\.js$/.exec(url);
  return dist ? `app:${dist[1]}` : url;
}
const label = (cf) => `${cf.functionName || '(anonymous)'} ${bucket(cf)}:${cf.lineNumber + 1}`;

const stacks = new Map();
const self = new Map();
const selfPkg = new Map();
const incl = new Map();
let total = 0;
let clock = 0;
const [from, to] = [Number(values.from) * 1e6, Number(values.to) * 1e6];
const perSecond = [];
const add = (m, k, v) => m.set(k, (m.get(k) ?? 0) + v);
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  clock += dt;
  const node = byId.get(id);
  if (node.callFrame.functionName !== '(idle)') perSecond[Math.floor(clock / 1e6)] = (perSecond[Math.floor(clock / 1e6)] ?? 0) + dt;
  if (clock < from || clock > to) return;
  total += dt;
  add(self, label(node.callFrame), dt);
  add(selfPkg, bucket(node.callFrame), dt);
  const seen = new Set();
  const chain = [];
  for (let cur = id, d = 0; cur !== undefined && d < 500; cur = parent.get(cur), d++) {
    const l = label(byId.get(cur).callFrame);
    chain.push(l);
    if (!seen.has(l)) { seen.add(l); add(incl, l, dt); }
  }
  if (values.stacks && chain.some((l) => l.includes(values.stacks))) add(stacks, chain.slice(0, 14).join('\n      < '), dt);
});

if (values.timeline) console.log(`busy ms per second: ${Array.from(perSecond, (v, i) => `${i}s:${((v ?? 0) / 1000).toFixed(0)}`).join(' ')}`);
const idle = selfPkg.get('(idle)') ?? 0;
const busy = total - idle;
const show = (title, m, n) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    console.log(`${(v / 1000).toFixed(0).padStart(8)} ms ${((100 * v) / busy).toFixed(1).padStart(5)}%  ${k}`);
  }
};
console.log(`profile ${(total / 1e6).toFixed(2)} s, busy (not idle) ${(busy / 1e6).toFixed(2)} s; percentages are of busy time`);
show('self time by package', new Map([...selfPkg].filter(([k]) => k !== '(idle)')), top);
show('self time by function', new Map([...self].filter(([k]) => !k.startsWith('(idle)'))), top);
show('inclusive time by function', new Map([...incl].filter(([k]) => !/^\((root|idle)\)/.test(k))), top);
if (values.stacks) show(`heaviest stacks through "${values.stacks}" (innermost first)`, stacks, Math.min(top, 8));
