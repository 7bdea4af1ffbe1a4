import { MultiBar, type SingleBar } from 'cli-progress';

/** What `execrelay cp` tells about its progress: the bytes to copy, each file as it starts, bytes as they land. */
export interface CopyProgress {
  /** More bytes to copy (a file's size, when known before it is copied). */
  addTotal(bytes: number): void;
  /** The file now being copied (shown as the client names it). */
  file(name: string): void;
  /** Bytes copied since the last call. */
  advance(bytes: number): void;
  /** Writes a line (a warning, an error) above the bar. */
  log(line: string): void;
  stop(): void;
}

const SILENT: CopyProgress = {
  addTotal: () => undefined,
  file: () => undefined,
  advance: () => undefined,
  log: (line) => process.stderr.write(`${line}\n`),
  stop: () => undefined,
};

/** `1.5 MiB`: a byte count for the bar. */
function binaryBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** The longest file name shown beside the bar (its end, where the name is). */
const SHOWN_NAME_CHARS = 40;

/**
 * A progress bar on `stream` (cli-progress) when it is a terminal, nothing otherwise (a script's
 * stderr stays silent on success). The bar counts bytes against the total known so far and names
 * the file being copied; it is redrawn at most every 100 ms, and drawn once more, final, when stopped.
 */
export function copyProgress(stream: NodeJS.WriteStream = process.stderr): CopyProgress {
  if (!stream.isTTY) return SILENT;
  let total = 0;
  let copied = 0;
  let started = false;
  let name = '';
  const bars = new MultiBar({
    stream,
    format: '{bar} {percentage}% | {copiedBytes} / {totalBytes} | {speed}/s | {name}',
    barsize: 24,
    hideCursor: true,
    clearOnComplete: false,
    fps: 10,
    etaBuffer: 50,
  });
  const startedAt = Date.now();
  const payload = () => {
    const seconds = Math.max(0.001, (Date.now() - startedAt) / 1000);
    return { copiedBytes: binaryBytes(copied), totalBytes: binaryBytes(total), speed: binaryBytes(Math.round(copied / seconds)), name };
  };
  let bar: SingleBar | undefined;
  const ensureStarted = (): SingleBar => {
    if (bar) return bar;
    started = true;
    bar = bars.create(Math.max(total, 1), copied, payload());
    return bar;
  };
  return {
    addTotal(bytes) {
      total += bytes;
      ensureStarted().setTotal(Math.max(total, 1));
    },
    file(shown) {
      name = shown.length > SHOWN_NAME_CHARS ? `…${shown.slice(-(SHOWN_NAME_CHARS - 1))}` : shown;
      ensureStarted().update(copied, payload());
    },
    advance(bytes) {
      copied += bytes;
      if (copied > total) total = copied;
      const active = ensureStarted();
      active.setTotal(Math.max(total, 1));
      active.update(copied, payload());
    },
    log(line) {
      if (started) bars.log(`${line}\n`);
      else stream.write(`${line}\n`);
    },
    stop() {
      if (started) bars.stop();
    },
  };
}
