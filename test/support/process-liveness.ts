import { existsSync, readdirSync, readFileSync } from 'node:fs';

const procMounted = existsSync('/proc/self/stat');

/** The state letter and process group of a process, from /proc; undefined when it is gone. */
function procStat(pid: number): { state: string; pgrp: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses; the rest follows the last ')'.
  const [state = '', , pgrp = ''] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state, pgrp: Number(pgrp) };
}

/** Ended, though perhaps not yet reaped: a zombie (Z), or being reaped (X). */
function ended(state: string): boolean {
  return state === 'Z' || state === 'X';
}

/**
 * Whether a process with this pid still runs. A process that has ended but is not yet reaped (a
 * zombie) has ended: a killed command orphaned by its parent's death waits as one until init reaps
 * it, which some inits (this project's VMs') do only seconds later. Without /proc, signal 0 decides
 * (EPERM: it exists, as another user's).
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (!procMounted) return true;
  const stat = procStat(pid);
  return stat !== undefined && !ended(stat.state);
}

/** Whether any process of this process group still runs (zombies, as above, do not). */
export function groupAlive(pgid: number): boolean {
  if (!procMounted) {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  return readdirSync('/proc').some((entry) => {
    if (!/^\d+$/.test(entry)) return false;
    const stat = procStat(Number(entry));
    return stat !== undefined && stat.pgrp === pgid && !ended(stat.state);
  });
}
