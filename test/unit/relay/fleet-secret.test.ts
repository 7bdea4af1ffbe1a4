import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAX_FLEET_SECRET_BYTES, MIN_FLEET_SECRET_BYTES, parseFleetSecret, readFleetSecret } from '../../../relay/fleet-secret.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-fleet-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function secretFile(name: string, text: string, mode = 0o600): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  chmodSync(file, mode);
  return file;
}

describe('the fleet secret file', () => {
  const secret = 'x'.repeat(MIN_FLEET_SECRET_BYTES);

  it('holds the secret on one line; surrounding whitespace is not part of it', async () => {
    expect(Buffer.from(await readFleetSecret(secretFile('ok', `  ${secret}\n`))).toString('utf8')).toBe(secret);
  });

  it('refuses a short, a multi-line or an over-long secret with a clear reason', () => {
    expect(() => parseFleetSecret('x'.repeat(MIN_FLEET_SECRET_BYTES - 1), 'F')).toThrow(`F holds a secret of ${MIN_FLEET_SECRET_BYTES - 1} bytes; it must be at least ${MIN_FLEET_SECRET_BYTES}`);
    expect(() => parseFleetSecret('\n\n', 'F')).toThrow('F holds a secret of 0 bytes');
    expect(() => parseFleetSecret(`${secret}\n${secret}`, 'F')).toThrow('F holds more than one line');
    expect(() => parseFleetSecret('x'.repeat(MAX_FLEET_SECRET_BYTES + 1), 'F')).toThrow(`F holds more than ${MAX_FLEET_SECRET_BYTES} bytes`);
  });

  it('refuses a file group or others can read (unless allowed, with a warning), and a missing one', async () => {
    const open = secretFile('open', secret, 0o644);
    await expect(readFleetSecret(open)).rejects.toThrow(`fleet secret file ${open} has mode 0644`);
    const warnings: string[] = [];
    expect(Buffer.from(await readFleetSecret(open, { allowInsecurePermissions: true, warn: (m) => warnings.push(m) })).toString()).toBe(secret);
    expect(warnings).toHaveLength(1);
    await expect(readFleetSecret(path.join(dir, 'nope'))).rejects.toThrow(/cannot read fleet secret file .*nope: ENOENT/);
  });
});
