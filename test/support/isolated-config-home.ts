import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Vitest setup file: every test file (and every process it spawns) gets its own XDG_CONFIG_HOME, so
 * that nothing a test runs reads or writes the user's own `~/.config/execrelay/client.key` (client
 * commands default `--key` to it; `execrelay keygen` without `--out` creates it). A test that needs
 * a particular config home sets XDG_CONFIG_HOME for the process it spawns.
 */
process.env.XDG_CONFIG_HOME = mkdtempSync(path.join(os.tmpdir(), 'execrelay-config-'));
