import { readdirSync, readFileSync } from 'node:fs';

/**
 * The process table as Linux shows it in /proc: what the tests and the benchmarks read about
 * processes they did not start themselves (a spawner's commands, sshd's children, CPU and state).
 * Each reader answers "nothing" (undefined, []) for a process that is gone or a /proc without it.
 */

/** Whether this system has a /proc these readers can use. */
export const procMounted = readFileOrEmpty('/proc/self/stat') !== '';

function readFileOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The fields of /proc/PID/stat after the command name, so that index 0 is the state letter, 1 the
 * parent pid, 2 the process group, 11 and 12 user and system CPU in clock ticks (proc(5) numbers
 * them from 3). The name may hold spaces and parentheses: the fields follow its last ')'.
 */
export function statFields(pid: number): string[] | undefined {
  const stat = readFileOrEmpty(`/proc/${pid}/stat`);
  return stat === '' ? undefined : stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The process's name (`comm`: the executable's, at most 15 bytes). */
export function processName(pid: number): string | undefined {
  const comm = readFileOrEmpty(`/proc/${pid}/comm`);
  return comm === '' ? undefined : comm.trimEnd();
}

/** The pids of `pid`'s children: every thread's `children` file (a child belongs to the thread that forked it). */
export function childPids(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tasks.flatMap((task) =>
    readFileOrEmpty(`/proc/${pid}/task/${task}/children`)
      .split(' ')
      .filter((entry) => entry !== '')
      .map(Number),
  );
}

/** `pid` and every process below it. */
export function processTree(pid: number): number[] {
  const found = [pid];
  for (let i = 0; i < found.length; i++) found.push(...childPids(found[i]!));
  return found;
}

/** Every pid in /proc. */
export function allPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .map(Number);
  } catch {
    return [];
  }
}
