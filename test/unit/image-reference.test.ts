import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { familiarReference, formatReference, parseReference } from '../../src/image/reference.js';

const R = 'registry.stratoswarm.io';
const canon = (ref: string, reg = R) => formatReference(parseReference(ref, reg));
const D = `sha256:${'a'.repeat(64)}`;

describe('image references', () => {
  it('qualifies short names with the configured registry and defaults the tag', () => {
    expect(canon('stratoswarm/base-agent')).toBe(`${R}/stratoswarm/base-agent:latest`);
    expect(canon('stratoswarm/base-agent:latest')).toBe(`${R}/stratoswarm/base-agent:latest`);
    expect(canon('agent')).toBe(`${R}/agent:latest`);
    expect(canon('agent', 'docker.io')).toBe('docker.io/library/agent:latest');
    expect(canon('team/agent', 'registry.example.org/mirror')).toBe('registry.example.org/mirror/team/agent:latest');
  });

  it('takes a first component with a dot, a port or localhost as the registry', () => {
    expect(canon('127.0.0.1:5000/ns/name:tag')).toBe('127.0.0.1:5000/ns/name:tag');
    expect(canon('localhost/name')).toBe('localhost/name:latest');
    expect(canon('ghcr.io/org/app:1.2.3')).toBe('ghcr.io/org/app:1.2.3');
    expect(canon('index.docker.io/busybox')).toBe('docker.io/library/busybox:latest');
    expect(canon('[::1]:5000/a')).toBe('[::1]:5000/a:latest');
  });

  it('keeps a digest, with or without a tag', () => {
    expect(parseReference(`name@${D}`, R)).toEqual({ domain: R, path: 'name', tag: undefined, digest: D });
    expect(canon(`h.io/name:v1@${D}`)).toBe(`h.io/name:v1@${D}`);
  });

  it('shows names the way people write them', () => {
    expect(familiarReference(parseReference('stratoswarm/base-agent', R), R)).toBe('stratoswarm/base-agent:latest');
    expect(familiarReference(parseReference('busybox', 'docker.io'), 'x.io')).toBe('busybox:latest');
    expect(familiarReference(parseReference('h.io:1/a:b', R), R)).toBe('h.io:1/a:b');
  });

  it('refuses a bad reference with a ConfigError that says why', () => {
    const why = (ref: string) => {
      try {
        parseReference(ref, R);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        expect((e as ConfigError).problems[0]!.field).toBe('image');
        return (e as ConfigError).problems[0]!.problem;
      }
      throw new Error(`accepted ${ref}`);
    };
    expect(why('')).toMatch(/empty/);
    expect(why('team/Agent')).toMatch(/lower case/);
    expect(canon('Team/agent')).toBe('Team/agent:latest'); // an upper-case first component is a host, as in the grammar
    expect(why('a//b')).toMatch(/path component ""/);
    expect(why('a/-b')).toMatch(/path component "-b"/);
    expect(why('name:-tag')).toMatch(/tag "-tag"/);
    expect(why(`name:${'t'.repeat(129)}`)).toMatch(/1-128/);
    expect(why('name@sha256:abc')).toMatch(/64 lower-case hex/);
    expect(why('name@md5:abc')).toMatch(/not supported/);
    expect(why('a'.repeat(64))).toMatch(/image id/);
    expect(why(' name')).toMatch(/white space/);
    expect(why(`h.io/${'a'.repeat(260)}`)).toMatch(/longer than 255/);
  });
});
