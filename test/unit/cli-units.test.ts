import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/errors.js';
import { formatBytes, humanDuration, parseBytes, parseDuration, parseGpus, parseSince } from '../../src/cli/units.js';
import { cpuList, cpuRanges } from '../../src/cli/topology.js';
import { cpuTime, parseStat } from '../../src/cli/procs.js';

describe('docker units', () => {
  it('parses sizes with binary units, as docker RAMInBytes does', () => {
    expect(parseBytes('512m')).toBe(512 * 1024 ** 2);
    expect(parseBytes('1g')).toBe(1024 ** 3);
    expect(parseBytes('1G')).toBe(1024 ** 3);
    expect(parseBytes('1.5g')).toBe(1.5 * 1024 ** 3);
    expect(parseBytes('64MiB')).toBe(64 * 1024 ** 2);
    expect(parseBytes('64mb')).toBe(64 * 1024 ** 2);
    expect(parseBytes('100k')).toBe(102400);
    expect(parseBytes('4096')).toBe(4096);
    expect(parseBytes('4096b')).toBe(4096);
  });

  it('refuses what is not a size, naming the flag', () => {
    for (const bad of ['', 'm', '1x', '-1g', '1 gigabyte', '1ib']) {
      expect(() => parseBytes(bad, '--memory')).toThrow(UsageError);
    }
    expect(() => parseBytes('lots', '--memory')).toThrow('--memory: expected a size like 512m or 1g, got "lots"');
  });

  it('prints sizes the way docker stats does', () => {
    expect(formatBytes(0)).toBe('0B');
    expect(formatBytes(1536)).toBe('1.5KiB');
    expect(formatBytes(256 * 1024 ** 2)).toBe('256MiB');
    expect(formatBytes(undefined)).toBe('--');
  });
});

describe('--gpus', () => {
  it('takes all, a count and a device list', () => {
    expect(parseGpus('all')).toEqual({ all: true });
    expect(parseGpus('2')).toEqual({ count: 2 });
    expect(parseGpus('count=3')).toEqual({ count: 3 });
    expect(parseGpus('device=0,1')).toEqual({ devices: [0, 1] });
    expect(parseGpus('"device=2"')).toEqual({ devices: [2] });
    expect(parseGpus('device="0,3"')).toEqual({ devices: [0, 3] });
    expect(parseGpus('mig=2')).toEqual({ mig: { count: 2 } });
    expect(parseGpus('mig=1g.10gb')).toEqual({ mig: { count: 1, profile: '1g.10gb' } });
    expect(parseGpus('"mig=3:1c.2g.20gb"')).toEqual({ mig: { count: 3, profile: '1c.2g.20gb' } });
  });

  it('refuses anything else', () => {
    for (const bad of ['', 'some', 'device=', 'device=a', 'device=0,,1', '-1', 'mig=0', 'mig=2:big', 'mig=']) expect(() => parseGpus(bad)).toThrow(/--gpus/);
  });
});

describe('--since and durations', () => {
  const now = Date.parse('2024-05-01T12:00:00Z');

  it('reads durations back from now', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('10')).toBeUndefined();
    expect(parseSince('10m', now)).toBe(now - 600_000);
    expect(parseSince('2s', now)).toBe(now - 2000);
  });

  it('reads RFC 3339 times, dates and Unix seconds', () => {
    expect(parseSince('2024-05-01T10:00:00Z', now)).toBe(Date.parse('2024-05-01T10:00:00Z'));
    expect(parseSince('2024-05-01T10:00:00.250+02:00', now)).toBe(Date.parse('2024-05-01T08:00:00.250Z'));
    expect(parseSince('2024-05-01', now)).toBe(Date.parse('2024-05-01T00:00:00Z'));
    expect(parseSince('1714557600', now)).toBe(1714557600_000);
    expect(parseSince('1714557600.5', now)).toBe(1714557600_500);
  });

  it('refuses the rest with one message', () => {
    for (const bad of ['yesterday', '10 minutes', '2024-13-45T99:00:00Z', '']) expect(() => parseSince(bad, now)).toThrow(/^--since: expected/);
  });

  it('says how long ago as docker ps does', () => {
    expect(humanDuration(1000)).toBe('1 second');
    expect(humanDuration(30_000)).toBe('30 seconds');
    expect(humanDuration(70_000)).toBe('About a minute');
    expect(humanDuration(10 * 60_000)).toBe('10 minutes');
    expect(humanDuration(3 * 3_600_000)).toBe('3 hours');
    expect(humanDuration(5 * 86_400_000)).toBe('5 days');
  });
});

describe('sysfs and /proc text', () => {
  it('reads and writes CPU lists', () => {
    expect(cpuList('0-3,6\n')).toEqual([0, 1, 2, 3, 6]);
    expect(cpuRanges([0, 1, 2, 3, 6, 8, 9])).toBe('0-3,6,8-9');
    expect(cpuRanges([])).toBe('');
  });

  it('parses /proc/<pid>/stat with spaces and parentheses in the command', () => {
    const st = parseStat('42 (my (odd) cmd) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000 10 18446744073709551615');
    expect(st).toEqual({ comm: 'my (odd) cmd', ppid: 7, utime: 250, stime: 50, starttime: 12345 });
    expect(cpuTime(3725)).toBe('01:02:05');
  });
});
