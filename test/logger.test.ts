// The worker's log floor (BIRTHGATE_LOG_LEVEL): INFO by default keeps every outcome, park and failure
// and leaves out the admissions' progress stages (DEBUG); DEBUG shows them. Pure: no servers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig } from '../config/index.ts';
import { LineLogger } from '../observability/logger.ts';

function lines(level?: 'DEBUG' | 'INFO' | 'WARN') {
  const out: string[] = [];
  const logger = level ? new LineLogger('json', (l) => out.push(l), level) : new LineLogger('json', (l) => out.push(l));
  const meta = { sdkComponent: 'workflow', code: 'DOT-1' };
  logger.debug('admission PREFLIGHT', meta);
  logger.info('admission FINALIZED', meta);
  logger.warn('admission FAILED', meta);
  return out.map((l) => (JSON.parse(l) as { level: string; msg: string }).msg);
}

describe('the worker log level', () => {
  test('INFO (the default) leaves out DEBUG progress lines; DEBUG keeps them; WARN keeps failures only', () => {
    assert.deepEqual(lines(), ['admission FINALIZED', 'admission FAILED']);
    assert.deepEqual(lines('INFO'), ['admission FINALIZED', 'admission FAILED']);
    assert.deepEqual(lines('DEBUG'), ['admission PREFLIGHT', 'admission FINALIZED', 'admission FAILED']);
    assert.deepEqual(lines('WARN'), ['admission FAILED']);
  });

  test('BIRTHGATE_LOG_LEVEL is read case-insensitively; anything else is refused', () => {
    assert.equal(loadConfig({ BIRTHGATE_LOG_LEVEL: 'debug' }).logLevel, 'DEBUG');
    assert.equal(loadConfig({}).logLevel, 'INFO');
    assert.throws(() => loadConfig({ BIRTHGATE_LOG_LEVEL: 'verbose' }), /BIRTHGATE_LOG_LEVEL/);
  });
});
