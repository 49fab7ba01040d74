// CPU time by process group, read from /proc (Linux): what each admission costs the client and worker
// (this process), the Temporal server and PostgreSQL, in CPU milliseconds. Unlike wall time, CPU time
// does not grow when the machine is busy with other work, so these figures compare across runs and
// explain the throughput ratios at concurrency (where the two cores are the limit).
import fs from 'node:fs';

const TICK_MS = 10; // USER_HZ is 100 on Linux

type Proc = { pid: number; ppid: number; cmd: string; ticks: number; reaped: number };

function procs(): Proc[] {
  const out: Proc[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
      // fields after "(comm) ": state ppid … utime is the 14th field overall (index 11 here), stime the
      // 15th; cutime and cstime (16th, 17th) hold the CPU of children it has reaped
      out.push({ pid: Number(name), ppid: Number(rest[1]), cmd, ticks: Number(rest[11]) + Number(rest[12]), reaped: Number(rest[13]) + Number(rest[14]) });
    } catch {
      // gone between readdir and read
    }
  }
  return out;
}

export type CpuGroups = { self: number; temporal: number | null; postgres: number };

/**
 * The CPU milliseconds used so far by this process, the Temporal server listening on `temporalPort`
 * and the PostgreSQL cluster listening on `pgPort`: its postmaster, every live backend, and the backends
 * that have exited (the postmaster reaps them, and the kernel adds their CPU to its children's time).
 */
export function cpuNow(temporalPort: number, pgPort: number): CpuGroups | null {
  if (process.platform !== 'linux') return null;
  const all = procs();
  const postmaster = all.find((p) => /\/postgres /.test(p.cmd) && new RegExp(`-p ${pgPort}\\b`).test(p.cmd));
  // The dev server names its port on its command line; a real server (its port in a config file) is
  // not found, and its column stays empty.
  const temporal = all.filter((p) => new RegExp(`--port ${temporalPort}\\b`).test(p.cmd));
  const pg = postmaster ? all.filter((p) => p.pid === postmaster.pid || p.ppid === postmaster.pid) : [];
  const me = all.find((p) => p.pid === process.pid);
  return {
    self: (me?.ticks ?? 0) * TICK_MS,
    temporal: temporal.length ? temporal.reduce((s, p) => s + p.ticks, 0) * TICK_MS : null,
    postgres: (pg.reduce((s, p) => s + p.ticks, 0) + (postmaster?.reaped ?? 0)) * TICK_MS,
  };
}

export function cpuDelta(a: CpuGroups | null, b: CpuGroups | null, n: number): CpuGroups | null {
  if (!a || !b) return null;
  return {
    self: (b.self - a.self) / n,
    temporal: a.temporal === null || b.temporal === null ? null : (b.temporal - a.temporal) / n,
    postgres: (b.postgres - a.postgres) / n,
  };
}
