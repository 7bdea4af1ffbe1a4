import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AUDIT_LOG_LIMITS, AuditLog } from '../../../src/audit/audit-log.js';
import { RpcError } from '../../../src/protocol/error-codes.js';
import { ConnectionAudit } from '../../../executor-agent/session-audit.js';

async function linesOf(file: string): Promise<Array<Record<string, unknown>>> {
  return (await readFile(file, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('ConnectionAudit', () => {
  let scratch: string | undefined;
  afterEach(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
    scratch = undefined;
  });

  async function open(reads: boolean): Promise<{ file: string; log: AuditLog; audit: ConnectionAudit }> {
    scratch ??= await mkdtemp(path.join(os.tmpdir(), 'execrelay-session-audit-'));
    const file = path.join(scratch, `${reads ? 'reads' : 'plain'}.jsonl`);
    const log = await AuditLog.open({ file, reads });
    return { file, log, audit: new ConnectionAudit(log, '12D3KooWclient', 'relay') };
  }

  it('audits changes and http/request always, reads only when the log records reads, and nothing else', async () => {
    const { log: plainLog, audit: plain } = await open(false);
    const { log: readsLog, audit: reads } = await open(true);
    for (const method of ['fs/writeFile', 'fs/createDirectory', 'fs/remove', 'fs/copy', 'http/request']) {
      expect(plain.audits(method), method).toBe(true);
      expect(reads.audits(method), method).toBe(true);
    }
    for (const method of ['fs/readFile', 'fs/open', 'fs/readDirectory', 'fs/walk']) {
      expect(plain.audits(method), method).toBe(false);
      expect(reads.audits(method), method).toBe(true);
    }
    for (const method of ['fs/getMetadata', 'fs/readBlock', 'process/read', 'http/request/ack', 'toString', '__proto__', 'constructor']) {
      expect(reads.audits(method), method).toBe(false);
    }
    await plainLog.close();
    await readsLog.close();
  });

  it('records an http/request by its origin and status only; a bad URL or params give nulls, never a throw', async () => {
    const { file, log, audit } = await open(false);
    audit.requestAnswered('s1', 'http/request', { method: 'PUT', url: 'https://user:pw@api.example.com/v1/keys?token=abc' }, { result: { status: 201 } });
    audit.requestAnswered('s1', 'http/request', { method: 'GET', url: 'http://[::1]:8080/x' }, { error: new RpcError(-32602, 'refused') });
    audit.requestAnswered('s1', 'http/request', { method: 7, url: 'not a url' }, { error: new RpcError(-32602, 'bad') });
    audit.requestAnswered('s1', 'http/request', null, { error: new Error('no params') });
    await log.close();
    const lines = await linesOf(file);
    expect(lines.map(({ time: _time, ...rest }) => rest)).toEqual([
      { event: 'http.request', family: 'http', client: '12D3KooWclient', session: 's1', method: 'http/request', httpMethod: 'PUT', scheme: 'https', host: 'api.example.com', port: 443, status: 201, ok: true },
      { event: 'http.request', family: 'http', client: '12D3KooWclient', session: 's1', method: 'http/request', httpMethod: 'GET', scheme: 'http', host: '[::1]', port: 8080, ok: false, errorCode: -32602, error: 'refused' },
      { event: 'http.request', family: 'http', client: '12D3KooWclient', session: 's1', method: 'http/request', httpMethod: null, scheme: null, host: null, port: null, ok: false, errorCode: -32602, error: 'bad' },
      { event: 'http.request', family: 'http', client: '12D3KooWclient', session: 's1', method: 'http/request', httpMethod: null, scheme: null, host: null, port: null, ok: false, errorCode: null, error: 'no params' },
    ]);
    expect(JSON.stringify(lines)).not.toMatch(/pw|token=abc|v1\/keys/);
  });

  it('cuts a path a client sent beyond maxFieldChars (a refused request is recorded before validation)', async () => {
    const { file, log, audit } = await open(true);
    const long = `file:///${'a'.repeat(AUDIT_LOG_LIMITS.maxFieldChars * 4)}`;
    audit.requestAnswered('s1', 'fs/readFile', { path: long }, { error: new RpcError(-32602, 'path too long') });
    await log.close();
    const [line] = await linesOf(file);
    expect(String(line!.path)).toHaveLength(AUDIT_LOG_LIMITS.maxFieldChars + 1);
    expect(String(line!.path).endsWith('…')).toBe(true);
  });
});
