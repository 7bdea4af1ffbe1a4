import type { MessageTransport } from '../../src/transport/message-transport.js';

/**
 * A MessageTransport for unit tests of what goes over one: every send is taken at once and
 * recorded (text ones parsed, binary ones only when constructed with `binary`), and the test
 * delivers inbound messages with `deliver` / `deliverBinary`.
 */
export class RecordingTransport implements MessageTransport {
  readonly kind = 'memory' as const;
  readonly closed = false;
  readonly text: Array<Record<string, any>> = [];
  readonly binary: Buffer[] = [];
  sendBinary?: (message: Uint8Array) => Promise<void>;
  private messageListener: (message: string) => void = () => undefined;
  private binaryListener: (message: Uint8Array) => void = () => undefined;

  constructor(binary = false) {
    if (binary) {
      this.sendBinary = (message) => {
        this.binary.push(Buffer.from(message));
        return Promise.resolve();
      };
    }
  }
  send(message: string): Promise<void> {
    this.text.push(JSON.parse(message) as Record<string, any>);
    return Promise.resolve();
  }
  onMessage(listener: (message: string) => void): void {
    this.messageListener = listener;
  }
  onBinaryMessage(listener: (message: Uint8Array) => void): void {
    this.binaryListener = listener;
  }
  onClose(): void {}
  pauseReceiving(): void {}
  resumeReceiving(): void {}
  close(): void {}
  deliver(message: object): void {
    this.messageListener(JSON.stringify(message));
  }
  deliverBinary(bytes: Uint8Array): void {
    this.binaryListener(bytes);
  }
}

