/**
 * A client of the OCI distribution API (`/v2/<name>/manifests/<ref>`, `/v2/<name>/blobs/<digest>`):
 * HTTPS with the system's CAs, or HTTP for a registry configured as insecure; anonymous,
 * basic and bearer-token auth from the `WWW-Authenticate` challenge; redirects (blob storage
 * elsewhere, without our credentials when the host changes); retries with exponential
 * backoff on 5xx, 429 and dropped connections; blob downloads that resume with `Range`.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { RuntimeError } from '../errors.js';
import type { Credentials } from './auth.js';
import { DOCKER_HUB } from './reference.js';

export interface RegistryOptions {
  domain: string;
  insecure: boolean;
  credentials?: Credentials | undefined;
  /** Extra CA certificates (PEM) for HTTPS. */
  ca?: string | Buffer | undefined;
  /** Attempts per request, the first included (default 5). */
  attempts?: number;
  /** First backoff in ms, doubled per retry (default 200). */
  backoffMs?: number;
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

const RETRY_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ERR_STREAM_PREMATURE_CLOSE']);

export function isRetryable(e: unknown): boolean {
  if (e instanceof RuntimeError) return e.code === 'ETIMEDOUT' || (e as RuntimeError & { retry?: boolean }).retry === true;
  const code = (e as NodeJS.ErrnoException)?.code;
  return (code !== undefined && RETRY_CODES.has(code)) || /socket hang up|aborted|premature/i.test(String((e as Error)?.message));
}

function registryError(msg: string, code: 'EPROTO' | 'ENOTFOUND' | 'ETIMEDOUT' | 'ESYSCALL', retry = false): RuntimeError {
  const e = new RuntimeError(msg, { code, step: 'image' }) as RuntimeError & { retry?: boolean };
  e.retry = retry;
  return e;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  const params: Record<string, string> = {};
  for (const p of (m?.[2] ?? '').matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? '';
  return { scheme: (m?.[1] ?? '').toLowerCase(), params };
}

export class RegistryClient {
  readonly base: URL;
  private readonly o: RegistryOptions;
  /** Authorization per repository, once a challenge has been answered. */
  private auth = new Map<string, string>();

  constructor(o: RegistryOptions) {
    this.o = o;
    const host = o.domain === DOCKER_HUB ? 'registry-1.docker.io' : o.domain;
    this.base = new URL(`${o.insecure ? 'http' : 'https'}://${host}/`);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      this.o.signal?.addEventListener('abort', () => {
        clearTimeout(t);
        reject(this.o.signal!.reason);
      }, { once: true });
    });
  }

  /** One HTTP exchange, no retries, following redirects. */
  private once(method: string, url: URL, headers: Record<string, string>, redirects = 0): Promise<Response> {
    return new Promise((resolve, reject) => {
      const mod = url.protocol === 'https:' ? https : http;
      const req = mod.request(url, { method, headers: { 'user-agent': 'stratoswarm-runtime', ...headers }, ca: this.o.ca, signal: this.o.signal, timeout: this.o.timeoutMs ?? 30_000 }, (res) => {
        const status = res.statusCode ?? 0;
        if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
          res.resume();
          if (redirects >= 5) return reject(registryError(`${method} ${url.pathname}: too many redirects`, 'EPROTO'));
          const next = new URL(res.headers.location, url);
          const h = { ...headers };
          if (next.host !== url.host) delete h.authorization;
          return resolve(this.once(method, next, h, redirects + 1));
        }
        resolve({ status, headers: res.headers, body: res });
      });
      req.on('timeout', () => req.destroy(registryError(`${method} ${url.host}${url.pathname}: no answer in ${this.o.timeoutMs ?? 30_000} ms`, 'ETIMEDOUT')));
      req.on('error', reject);
      req.end();
    });
  }

  private async readText(res: Response, limit = 1 << 16): Promise<string> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of res.body) {
      n += (c as Buffer).length;
      if (n <= limit) chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** Answers a 401 challenge for `repo`; false when there is nothing more to try. */
  private async authenticate(repo: string, res: Response): Promise<boolean> {
    const header = res.headers['www-authenticate'];
    res.body.resume();
    if (!header) return false;
    const { scheme, params } = parseChallenge(Array.isArray(header) ? header[0]! : header);
    const c = this.o.credentials;
    const basic = c?.username !== undefined ? `Basic ${Buffer.from(`${c.username}:${c.password ?? ''}`).toString('base64')}` : undefined;
    if (scheme === 'basic') {
      if (!basic || this.auth.get(repo) === basic) return false;
      this.auth.set(repo, basic);
      return true;
    }
    if (scheme !== 'bearer' || !params.realm) return false;
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? `repository:${repo}:pull`);
    const headers: Record<string, string> = {};
    if (basic) headers.authorization = basic;
    const tokenRes = await this.once('GET', realm, headers);
    const text = await this.readText(tokenRes);
    if (tokenRes.status !== 200) throw registryError(`token from ${realm.host}${realm.pathname}: HTTP ${tokenRes.status}${c ? ' (credentials refused?)' : ''}: ${text.slice(0, 200)}`, 'EPROTO', tokenRes.status >= 500);
    let token: string | undefined;
    try {
      const j = JSON.parse(text) as { token?: string; access_token?: string };
      token = j.token ?? j.access_token;
    } catch {
      token = undefined;
    }
    if (!token) throw registryError(`token from ${realm.host}${realm.pathname}: no token in the answer`, 'EPROTO');
    const value = `Bearer ${token}`;
    if (this.auth.get(repo) === value) return false;
    this.auth.set(repo, value);
    return true;
  }

  /**
   * A request to `/v2/<repo>/<path>`, authenticated and retried; resolves with a 2xx (or 206)
   * response whose body the caller reads. `attempt` lets a streaming caller retry itself.
   */
  async request(method: 'GET' | 'HEAD', repo: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
    const url = new URL(`/v2/${repo}/${path}`, this.base);
    const attempts = this.o.attempts ?? 5;
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      if (i > 0) await this.sleep((this.o.backoffMs ?? 200) * 2 ** (i - 1));
      try {
        let res = await this.once(method, url, { ...headers, ...(this.auth.has(repo) ? { authorization: this.auth.get(repo)! } : {}) });
        if (res.status === 401 && (await this.authenticate(repo, res))) {
          res = await this.once(method, url, { ...headers, authorization: this.auth.get(repo)! });
        }
        if (res.status >= 200 && res.status < 300) return res;
        const text = method === 'GET' ? await this.readText(res) : (res.body.resume(), '');
        const what = `${method} ${url.host}/v2/${repo}/${path}: HTTP ${res.status}${text ? `: ${text.trim().slice(0, 300)}` : ''}`;
        if (res.status === 404) throw registryError(what, 'ENOTFOUND');
        if (res.status === 401 || res.status === 403) throw registryError(`${what} (not authorised: check the credentials for ${this.o.domain})`, 'EPROTO');
        throw registryError(what, 'EPROTO', res.status >= 500 || res.status === 429);
      } catch (e) {
        last = e;
        if (this.o.signal?.aborted || !isRetryable(e)) throw wrapNet(e, url);
      }
    }
    throw wrapNet(last, url, attempts);
  }
}

function wrapNet(e: unknown, url: URL, attempts?: number): unknown {
  if (e instanceof RuntimeError) return attempts ? e.wrap(`after ${attempts} attempts`) : e;
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'AbortError') return e;
  const hint = err?.code === 'EPROTO' || /wrong version number|SSL/i.test(err?.message ?? '') ? ' (an HTTP-only registry must be listed in insecureRegistries)' : '';
  return new RuntimeError(`${url.host}: ${err?.code ?? ''} ${err?.message ?? String(e)}${hint}${attempts ? ` (after ${attempts} attempts)` : ''}`.replace(/\s+/g, ' ').trim(), { code: 'ESYSCALL', step: 'image', errno: err?.code, cause: e });
}
