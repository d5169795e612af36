/**
 * Image references as people write them, parsed and normalised by the grammar of the
 * distribution project's `reference` package: `[domain/]path[:tag][@digest]`, where the
 * first component is a domain when it contains a `.` or a `:` or is `localhost`; otherwise
 * the name is short and is qualified with the configured registry (Docker Hub's
 * `library/` rule applies only when that registry is Docker Hub). A missing tag is
 * `latest` unless a digest pins the reference.
 */
import { ConfigError } from '../errors.js';

export interface ImageReference {
  /** Registry host, with a port when there is one: `registry.stratoswarm.io`, `127.0.0.1:5000`. */
  domain: string;
  /** Repository path inside the registry: `stratoswarm/base-agent`. */
  path: string;
  tag?: string | undefined;
  digest?: string | undefined;
}

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const COMPONENT_RE = new RegExp(`^${COMPONENT}$`);
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const NAME_MAX = 255;

export const DOCKER_HUB = 'docker.io';

function bad(ref: string, why: string): ConfigError {
  return new ConfigError('invalid image reference', [{ field: 'image', problem: `"${ref}": ${why}` }]);
}

/** Checks a digest: `sha256:` and 64 lower-case hex digits (`sha512:` and 128). */
export function checkDigest(digest: string, what = digest): string {
  if (!DIGEST_RE.test(digest)) throw bad(what, `"${digest}" is not a digest (algorithm:hex)`);
  const [alg, hex] = digest.split(':') as [string, string];
  const len = alg === 'sha256' ? 64 : alg === 'sha512' ? 128 : 0;
  if (len === 0) throw bad(what, `digest algorithm "${alg}" is not supported (sha256, sha512)`);
  if (!new RegExp(`^[a-f0-9]{${len}}$`).test(hex)) throw bad(what, `${alg} digest must be ${len} lower-case hex digits`);
  return digest;
}

/**
 * Parses `ref`, qualifying a short name with `defaultRegistry`. Throws a ConfigError (field
 * `image`) saying what is wrong.
 */
export function parseReference(ref: string, defaultRegistry: string): ImageReference {
  if (typeof ref !== 'string' || ref.length === 0) throw bad(String(ref), 'empty reference');
  if (ref !== ref.trim()) throw bad(ref, 'leading or trailing white space');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = checkDigest(rest.slice(at + 1), ref);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw bad(ref, `tag "${tag}" must be 1-128 of [A-Za-z0-9_.-], not starting with . or -`);
  }
  if (rest.length === 0) throw bad(ref, 'no repository name');
  if (/^[a-f0-9]{64}$/.test(rest) && !tag && !digest) throw bad(ref, 'a 64-digit hex string is an image id, not a name');

  let domain: string;
  let path: string;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(domain)) throw bad(ref, `"${domain}" is not a registry host[:port]`);
  } else {
    // A short name: the configured registry may carry a path prefix (host/namespace).
    const [regHost, ...regPath] = defaultRegistry.split('/');
    domain = regHost!;
    path = [...regPath, rest].join('/');
  }
  if (domain === 'index.docker.io') domain = DOCKER_HUB;
  if (domain === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (path !== path.toLowerCase()) throw bad(ref, 'repository name must be lower case');
  for (const c of path.split('/')) {
    if (!COMPONENT_RE.test(c)) {
      throw bad(ref, `path component "${c}" must be lower-case letters and digits, separated by ".", "_", "__" or "-"`);
    }
  }
  if (domain.length + 1 + path.length > NAME_MAX) throw bad(ref, `name longer than ${NAME_MAX} characters`);
  if (!tag && !digest) tag = 'latest';
  return { domain, path, tag, digest };
}

/** `domain/path`, the repository's full name. */
export function repositoryName(r: ImageReference): string {
  return `${r.domain}/${r.path}`;
}

/** The canonical, fully qualified form: `domain/path[:tag][@digest]`. */
export function formatReference(r: ImageReference): string {
  return `${repositoryName(r)}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/**
 * The short form people write, as `docker images` shows it: the default registry (and Docker
 * Hub's `library/`) left out.
 */
export function familiarReference(r: ImageReference, defaultRegistry: string): string {
  let name = repositoryName(r);
  if (name.startsWith(`${defaultRegistry}/`)) name = name.slice(defaultRegistry.length + 1);
  else if (r.domain === DOCKER_HUB) name = r.path.replace(/^library\//, '');
  return `${name}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** Whether `ref` parses (for validation that collects problems instead of throwing). */
export function referenceProblem(ref: string, defaultRegistry = 'registry.invalid'): string | undefined {
  try {
    parseReference(ref, defaultRegistry);
    return undefined;
  } catch (e) {
    return e instanceof ConfigError ? e.problems[0]!.problem : String(e);
  }
}
