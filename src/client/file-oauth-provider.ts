import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, rename, writeFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';

/** What the file holds (JSON). Everything the SDK saves is kept unchanged (it relies on that). */
interface OAuthState {
  version: 1;
  serverUrl?: string;
  clientInformation?: OAuthClientInformationMixed;
  tokens?: OAuthTokens;
  codeVerifier?: string;
  state?: string;
  discoveryState?: OAuthDiscoveryState;
}

export interface FileOAuthProviderOptions {
  /** The file holding registration, tokens and the pending login (created with mode 0600). */
  file: string;
  /** The MCP server these credentials are for (recorded in the file). */
  serverUrl: string;
  /** The redirect URI registered with the authorization server; the browser lands there after login. */
  redirectUrl: string;
  /** `client_name` sent in dynamic client registration. */
  clientName?: string;
  /** Scope to ask for when the server advertises none. */
  scope?: string;
  /**
   * Called with the authorization URL the user must open (the CLI prints it). Without it the
   * provider never starts a login: it leaves any pending login's state and verifier alone and
   * fails with "the MCP server needs a login".
   */
  onAuthorizationUrl?: (url: URL) => void | Promise<void>;
}

/**
 * An OAuthClientProvider for the CLI that persists everything in one JSON file with mode 0600
 * (its directory 0700), written atomically (temporary file and rename).
 */
export class FileOAuthProvider implements OAuthClientProvider {
  private data: OAuthState;

  constructor(private readonly options: FileOAuthProviderOptions) {
    this.data = FileOAuthProvider.load(options.file);
    this.data.serverUrl ??= options.serverUrl;
  }

  private static load(file: string): OAuthState {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1 };
      throw new Error(`cannot read OAuth state ${file}: ${(error as Error).message}`);
    }
    try {
      const parsed = JSON.parse(text) as OAuthState;
      if (typeof parsed !== 'object' || parsed === null || parsed.version !== 1) throw new Error('unknown format');
      return parsed;
    } catch (error) {
      throw new Error(`cannot parse OAuth state ${file}: ${(error as Error).message}`);
    }
  }

  get file(): string {
    return this.options.file;
  }

  get redirectUrl(): string {
    return this.options.redirectUrl;
  }

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.options.clientName ?? 'execrelay',
      redirect_uris: [this.options.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...(this.options.scope ? { scope: this.options.scope } : {}),
    };
  }

  /** A fresh random `state` for each authorization request, kept to check the redirect against. */
  async state(): Promise<string> {
    const state = randomBytes(24).toString('base64url');
    if (!this.options.onAuthorizationUrl) return state; // no login will start (see redirectToAuthorization)
    this.data.state = state;
    await this.save();
    return state;
  }

  /** The `state` of the pending authorization request, if any. */
  get pendingState(): string | undefined {
    return this.data.state;
  }

  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.data.clientInformation;
  }

  async saveClientInformation(clientInformation: OAuthClientInformationMixed): Promise<void> {
    this.data.clientInformation = clientInformation;
    await this.save();
  }

  tokens(): OAuthTokens | undefined {
    return this.data.tokens;
  }

  async saveTokens(tokens: OAuthTokens): Promise<void> {
    this.data.tokens = tokens;
    // The login completed: the verifier and state are spent.
    delete this.data.codeVerifier;
    delete this.data.state;
    await this.save();
  }

  async redirectToAuthorization(authorizationUrl: URL): Promise<void> {
    if (!this.options.onAuthorizationUrl) {
      throw new Error('the MCP server needs a login: run `execrelay mcp login`');
    }
    await this.options.onAuthorizationUrl(authorizationUrl);
  }

  async saveCodeVerifier(codeVerifier: string): Promise<void> {
    if (!this.options.onAuthorizationUrl) return;
    this.data.codeVerifier = codeVerifier;
    await this.save();
  }

  codeVerifier(): string {
    if (!this.data.codeVerifier) throw new Error('no login in progress (no PKCE code verifier saved): start one with `execrelay mcp login`');
    return this.data.codeVerifier;
  }

  async invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery'): Promise<void> {
    if (scope === 'all' || scope === 'client') delete this.data.clientInformation;
    if (scope === 'all' || scope === 'tokens') delete this.data.tokens;
    if (scope === 'all' || scope === 'verifier') delete this.data.codeVerifier;
    if (scope === 'all' || scope === 'discovery') delete this.data.discoveryState;
    await this.save();
  }

  async saveDiscoveryState(state: OAuthDiscoveryState): Promise<void> {
    this.data.discoveryState = state;
    await this.save();
  }

  discoveryState(): OAuthDiscoveryState | undefined {
    return this.data.discoveryState;
  }

  private async save(): Promise<void> {
    const file = this.options.file;
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(temporary, `${JSON.stringify(this.data, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      await chmod(temporary, 0o600); // whatever the umask
      await rename(temporary, file);
    } catch (error) {
      await unlink(temporary).catch(() => undefined);
      throw new Error(`cannot write OAuth state ${file}: ${(error as Error).message}`);
    }
  }
}
