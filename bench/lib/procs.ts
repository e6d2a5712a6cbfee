import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readFileSync } from 'node:fs';
import { waitForPort as waitForTcp } from '../../tests/helpers/ports.ts';

/** A child process the bench started and must stop. */
export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Where its stdout/stderr go (a file in the run's temp directory), or undefined when they are discarded. */
  readonly logPath: string | undefined;
  exited(): boolean;
  /** True once stop() was called (an exit after that is expected). */
  readonly stopping: boolean;
  /** Resolves once the process exited (immediately if it already has). */
  whenExited(): Promise<void>;
  /** Sends `signal`, then SIGKILL if it has not exited after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export interface ProcRegistry {
  start(
    name: string,
    command: string,
    args: readonly string[],
    options?: { env?: NodeJS.ProcessEnv; logPath?: string; ipc?: boolean; cwd?: string },
  ): Proc;
  /** Stops every process still running, newest first (a proxy before its backend). */
  stopAll(): Promise<void>;
  /**
   * Synchronous last resort for process 'exit': SIGTERM whatever is left, by pid. Not SIGKILL: a supervisor
   * must live long enough to stop its nginx or redis-server, and every child stops promptly on SIGTERM.
   */
  killAllNow(): void;
  list(): readonly Proc[];
}

/**
 * Tracks every process the bench starts, by pid, so an error or Ctrl-C never leaves a server behind.
 * Only these pids are ever signalled.
 */
export function createProcRegistry(): ProcRegistry {
  const procs: Proc[] = [];
  return {
    start(name, command, args, options = {}) {
      let fd: number | undefined;
      if (options.logPath) fd = openSync(options.logPath, 'a');
      const out = fd ?? 'ignore';
      const stdio: StdioOptions = options.ipc ? ['ignore', out, out, 'ipc'] : ['ignore', out, out];
      const child = spawn(command, [...args], { stdio, env: options.env ?? process.env, cwd: options.cwd });
      if (fd !== undefined) closeSync(fd);
      if (child.pid === undefined) {
        // spawn reports ENOENT asynchronously; the pid is missing synchronously in that case.
        child.on('error', () => undefined);
        throw new Error(`${name}: cannot start ${command}`);
      }
      child.on('error', () => undefined);
      // An IPC channel must not keep the bench alive; the child watches it to die with us (bench/servers/orphan-guard.ts).
      if (options.ipc) child.channel?.unref();
      const pid = child.pid;
      let done = child.exitCode !== null || child.signalCode !== null;
      let stopping = false;
      const exitedPromise = new Promise<void>((resolve) => {
        if (done) resolve();
        child.once('exit', () => {
          done = true;
          resolve();
        });
      });
      const proc: Proc = {
        name,
        child,
        pid,
        logPath: options.logPath,
        exited: () => done,
        get stopping() {
          return stopping;
        },
        whenExited: () => exitedPromise,
        async stop(signal = 'SIGTERM', graceMs = 5000) {
          stopping = true;
          if (done) return;
          try {
            child.kill(signal);
          } catch {
            /* already gone */
          }
          const timer = setTimeout(() => {
            if (!done)
              try {
                child.kill('SIGKILL');
              } catch {
                /* gone */
              }
          }, graceMs);
          await exitedPromise;
          clearTimeout(timer);
        },
      };
      procs.push(proc);
      return proc;
    },
    async stopAll() {
      for (const p of [...procs].reverse()) await p.stop();
    },
    killAllNow() {
      for (const p of procs)
        if (!p.exited())
          try {
            process.kill(p.pid, 'SIGTERM');
          } catch {
            /* gone */
          }
    },
    list: () => procs,
  };
}

/** tests/helpers/ports.ts's waitForPort, stopping early (with its last words) when `proc` exits first. */
export function waitForPort(port: number, timeoutMs: number, proc?: Proc): Promise<void> {
  return waitForTcp(port, timeoutMs, proc ? { name: proc.name, exited: () => proc.exited(), tail: () => tailOf(proc) } : {});
}

/** The last lines of a process's log, for error messages. */
export function tailOf(proc: Proc, lines = 15): string {
  if (!proc.logPath) return '';
  try {
    const text = readFileSync(proc.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    return text ? `\n--- last lines of ${proc.logPath} ---\n${text}` : '';
  } catch {
    return '';
  }
}

/** Resident set size of a process in KiB, from /proc/<pid>/status (VmRSS). */
export function rssKb(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The soft and hard open-file limits of this process (children inherit them), from /proc/self/limits. */
export function openFileLimit(): { soft: number; hard: number } | undefined {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return undefined;
    const num = (s: string | undefined) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
    return { soft: num(m[1]), hard: num(m[2]) };
  } catch {
    return undefined;
  }
}

/** Finds an executable on PATH or in the usual sbin directories (nginx often lives in /usr/sbin, off a user's PATH). */
export function findExecutable(name: string, extra: readonly string[] = ['/usr/sbin', '/usr/local/sbin', '/sbin']): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(':').filter(Boolean), ...extra];
  for (const dir of dirs) {
    const path = `${dir}/${name}`;
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

let clockTicks: number | undefined;

/** USER_HZ, the unit of the CPU times in /proc/<pid>/stat (100 on Linux in practice). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 });
    const n = Number(r.stdout?.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/**
 * CPU seconds (user + system, all threads) a process and its descendants have used so far (nginx's
 * worker is the master's child, under the supervisor). Undefined when /proc is not readable.
 */
export function cpuSeconds(pid: number): number | undefined {
  const own = (p: number): number | undefined => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // The command name may contain spaces and parentheses: fields are counted after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
    } catch {
      return undefined;
    }
  };
  const total = own(pid);
  if (total === undefined) return undefined;
  let sum = total;
  let children: string[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    // no children file: count the process alone
  }
  for (const child of children) sum += cpuSeconds(Number(child)) ?? 0;
  return sum;
}
