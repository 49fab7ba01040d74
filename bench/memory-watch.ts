// Peak memory while something runs: this node process (RSS), and — when the PostgreSQL server runs
// on this machine — the backend doing the work, from /proc/<pid>/status (VmHWM: its lifetime peak
// resident set, shared buffers it touched included; RssAnon: its private memory, sampled).
import fs from 'node:fs';

export type MemoryPeaks = {
  nodeRssMiB: number;
  backendHwmMiB: number | null;
  backendAnonMiB: number | null;
};

const MiB = 1024 * 1024;

function procKiB(pid: number, field: string): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null; // the server is elsewhere, or the backend is gone
  }
}

export function watchMemory(backendPid: number | null, everyMs = 100): { stop(): MemoryPeaks } {
  let node = process.memoryUsage.rss();
  let anon: number | null = null;
  const sample = () => {
    node = Math.max(node, process.memoryUsage.rss());
    const a = backendPid === null ? null : procKiB(backendPid, 'RssAnon');
    if (a !== null) anon = Math.max(anon ?? 0, a);
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      const hwm = backendPid === null ? null : procKiB(backendPid, 'VmHWM');
      return {
        nodeRssMiB: node / MiB,
        backendHwmMiB: hwm === null ? null : hwm / 1024,
        backendAnonMiB: anon === null ? null : anon / 1024,
      };
    },
  };
}
