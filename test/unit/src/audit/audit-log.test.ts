import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AUDIT_LOG_LIMITS, AuditLog, boundedAuditField } from '../../../../src/audit/audit-log.js';

describe('AuditLog', () => {
  let scratch: string | undefined;
  afterEach(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
    scratch = undefined;
  });

  it('drops lines past the pending bound instead of growing memory, and says how many in the next line', async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-audit-unit-'));
    const file = path.join(scratch, 'audit.jsonl');
    const log = await AuditLog.open({ file, maxBytes: AUDIT_LOG_LIMITS.maxMaxBytes });
    const big = 'a'.repeat(256 * 1024);
    const offered = 100; // 25 MiB offered at once, three times the bound
    for (let i = 0; i < offered; i++) log.record({ event: 'big', i, big });
    // The disk catches up: the file stops growing.
    for (let last = -1, size = 0; size !== last || size === 0; ) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      last = size;
      size = (await stat(file).catch(() => ({ size: 0 }))).size;
    }
    log.record({ event: 'after' });
    await log.close();
    const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; i?: number; lines?: number });
    const kept = lines.filter((l) => l.event === 'big');
    const dropped = lines.find((l) => l.event === 'audit.dropped');
    expect(kept.length).toBeLessThan(offered);
    expect(kept.length * big.length).toBeLessThanOrEqual(AUDIT_LOG_LIMITS.maxPendingBytes + 2 * big.length);
    expect(dropped?.lines).toBe(offered - kept.length);
    expect(lines.map((l) => l.event).slice(-2)).toEqual(['audit.dropped', 'after']);
    // The kept ones are the first ones, in order.
    expect(kept.map((l) => l.i)).toEqual(kept.map((_, index) => index));
  });

  it('refuses out-of-range sizes and keeps, and records nothing after close', async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-audit-unit-'));
    const file = path.join(scratch, 'audit.jsonl');
    await expect(AuditLog.open({ file, maxBytes: 100 })).rejects.toThrow(/max bytes must be an integer from 1024/);
    await expect(AuditLog.open({ file, keep: 0 })).rejects.toThrow(/keep must be an integer from 1/);
    await expect(AuditLog.open({ file, keep: 1.5 })).rejects.toThrow(/keep/);
    const log = await AuditLog.open({ file });
    log.record({ event: 'one' });
    await log.close();
    log.record({ event: 'two' });
    await log.close();
    expect((await readFile(file, 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { event: string }).event)).toEqual(['one']);
  });

  it('cuts a field longer than maxFieldChars and marks it, and leaves shorter ones alone', () => {
    const limit = AUDIT_LOG_LIMITS.maxFieldChars;
    expect(boundedAuditField('file:///etc/passwd')).toBe('file:///etc/passwd');
    expect(boundedAuditField('x'.repeat(limit))).toBe('x'.repeat(limit));
    expect(boundedAuditField('y'.repeat(limit + 1))).toBe(`${'y'.repeat(limit)}…`);
  });

  it('records reads only when opened with reads: true (off by default)', async () => {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-audit-unit-'));
    const plain = await AuditLog.open({ file: path.join(scratch, 'a.jsonl') });
    const withReads = await AuditLog.open({ file: path.join(scratch, 'b.jsonl'), reads: true });
    expect(plain.reads).toBe(false);
    expect(withReads.reads).toBe(true);
    await plain.close();
    await withReads.close();
  });
});
