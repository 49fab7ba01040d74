// A progress bar on stderr for long loads: redrawn in place on a TTY, one line per 10% otherwise
// (so a prod load in CI still shows it is moving).
export type ProgressBar = {
  update(p: { phase: string; done: number; total: number }): void;
  finish(): void;
};

export function progressBar(stream: NodeJS.WriteStream, opts: { enabled: boolean; width?: number }): ProgressBar {
  if (!opts.enabled) return { update: () => undefined, finish: () => undefined };
  const width = opts.width ?? 30;
  const started = Date.now();
  let lastDraw = 0;
  let lastDecile = -1;
  let drawn = false;
  const line = (p: { phase: string; done: number; total: number }) => {
    const ratio = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
    const filled = Math.round(ratio * width);
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}%  ${p.done.toLocaleString('en-US')}/${p.total.toLocaleString('en-US')} rows  ${secs}s  ${p.phase}`;
  };
  return {
    update(p) {
      if (stream.isTTY) {
        const now = Date.now();
        if (now - lastDraw < 100 && p.done < p.total) return;
        lastDraw = now;
        stream.write(`\r${line(p)}\x1b[K`);
        drawn = true;
        return;
      }
      const decile = p.total > 0 ? Math.floor((10 * p.done) / p.total) : 0;
      if (decile !== lastDecile) {
        lastDecile = decile;
        stream.write(`${line(p)}\n`);
      }
    },
    finish() {
      if (stream.isTTY && drawn) stream.write('\n');
    },
  };
}
