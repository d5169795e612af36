/**
 * Registry credentials from a Docker-style `config.json` or a containers-auth `auth.json`:
 * `{ "auths": { "<host>[/<namespace>]": { "auth": base64("user:password") } } }` (or
 * `username`/`password`, or `identitytoken`). The most specific key matching the repository
 * wins; `https://index.docker.io/v1/` is Docker Hub. Credential helpers (`credsStore`,
 * `credHelpers`) are not run.
 */
import * as fs from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { DOCKER_HUB } from './reference.js';

export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (`identitytoken`), exchanged at the token endpoint. */
  identityToken?: string;
}

interface AuthFile {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
}

/** Where credentials are looked for, in order, when no file is configured. */
export function defaultAuthFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const home = env.HOME ?? homedir();
  return [
    ...(env.REGISTRY_AUTH_FILE ? [env.REGISTRY_AUTH_FILE] : []),
    ...(env.XDG_RUNTIME_DIR ? [join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json')] : []),
    join(home, '.config', 'containers', 'auth.json'),
    join(env.DOCKER_CONFIG ?? join(home, '.docker'), 'config.json'),
  ];
}

function keyName(key: string): string {
  let k = key.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  if (k === 'index.docker.io/v1' || k === 'index.docker.io' || k === 'registry-1.docker.io') k = DOCKER_HUB;
  return k.replace(/\/v[12]$/, '');
}

export class CredentialStore {
  private entries: { key: string; creds: Credentials }[] = [];

  /** Reads `file` (an error if it is unreadable), or the first default file that exists. */
  constructor(file?: string) {
    const files = file ? [file] : defaultAuthFiles().filter((f) => fs.existsSync(f));
    for (const f of files.slice(0, 1)) {
      let data: AuthFile;
      try {
        data = JSON.parse(fs.readFileSync(f, 'utf8')) as AuthFile;
      } catch (e) {
        throw new ConfigError('registry credentials', [{ field: 'registryAuthFile', problem: `\`${f}\`: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` }]);
      }
      for (const [key, v] of Object.entries(data.auths ?? {})) {
        const creds: Credentials = {};
        if (v.auth) {
          const text = Buffer.from(v.auth, 'base64').toString('utf8');
          const colon = text.indexOf(':');
          if (colon < 0) throw new ConfigError('registry credentials', [{ field: `auths.${key}.auth`, problem: `in \`${f}\`: not base64 of "user:password"` }]);
          creds.username = text.slice(0, colon);
          creds.password = text.slice(colon + 1);
        }
        if (v.username) creds.username = v.username;
        if (v.password) creds.password = v.password;
        if (v.identitytoken) creds.identityToken = v.identitytoken;
        this.entries.push({ key: keyName(key), creds });
      }
    }
  }

  /** Credentials for repository `domain/path`, the longest matching key first. */
  lookup(domain: string, path: string): Credentials | undefined {
    const repo = `${domain}/${path}`;
    let best: { key: string; creds: Credentials } | undefined;
    for (const e of this.entries) {
      if ((e.key === domain || repo === e.key || repo.startsWith(`${e.key}/`)) && (!best || e.key.length > best.key.length)) best = e;
    }
    return best?.creds;
  }
}
