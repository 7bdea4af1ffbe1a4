import { allPids, procMounted, statFields } from './process-table.js';

/** Ended, though perhaps not yet reaped: a zombie (Z), or being reaped (X). */
function ended(state: string | undefined): boolean {
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
  const fields = statFields(pid);
  return fields !== undefined && !ended(fields[0]);
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
  return allPids().some((pid) => {
    const fields = statFields(pid);
    return fields !== undefined && Number(fields[2]) === pgid && !ended(fields[0]);
  });
}
