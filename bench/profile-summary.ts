/**
 * Reads V8 `.cpuprofile` files (from `node --cpu-prof` or the inspector) and prints where the time
 * went: self time per function and the share of idle / GC / program time. Used by
 * bench/profile-relay.ts and by hand: `node dist/bench/profile-summary.js FILE.cpuprofile [N]`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileRow {
  name: string;
  selfMs: number;
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleShare: number;
  gcShare: number;
  rows: ProfileRow[];
}

function label(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  let where = frame.url.replace(/^file:\/\//, '');
  const nm = where.lastIndexOf('node_modules/');
  if (nm !== -1) where = where.slice(nm + 'node_modules/'.length);
  else if (where.includes('/dist/')) where = where.slice(where.indexOf('/dist/') + '/dist/'.length);
  else if (where.startsWith('node:')) where = where;
  else where = path.basename(where);
  return `${name} ${where}:${frame.lineNumber + 1}`;
}

/** Self time per function label, biggest first. */
export function summarizeProfile(profile: CpuProfile, top = 25): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const selfUs = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let gc = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    const delta = profile.timeDeltas[i] ?? 0;
    if (!node) continue;
    total += delta;
    const name = node.callFrame.functionName;
    if (name === '(idle)') idle += delta;
    if (name === '(garbage collector)') gc += delta;
    const key = label(node.callFrame);
    selfUs.set(key, (selfUs.get(key) ?? 0) + delta);
  }
  const rows = [...selfUs.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: total > 0 ? us / total : 0 }));
  return { totalMs: total / 1000, idleShare: total > 0 ? idle / total : 0, gcShare: total > 0 ? gc / total : 0, rows };
}

export async function summarizeProfileFile(file: string, top = 25): Promise<ProfileSummary> {
  return summarizeProfile(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, top);
}

export function formatSummary(title: string, summary: ProfileSummary): string {
  const lines = [
    `== ${title}: ${summary.totalMs.toFixed(0)} ms sampled, idle ${(summary.idleShare * 100).toFixed(1)}%, GC ${(summary.gcShare * 100).toFixed(1)}%`,
  ];
  for (const row of summary.rows) lines.push(`  ${(row.share * 100).toFixed(1).padStart(5)}%  ${row.selfMs.toFixed(0).padStart(6)} ms  ${row.name}`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/bench/profile-summary.js FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  console.log(formatSummary(path.basename(file), await summarizeProfileFile(file, Number(top ?? 25))));
}
