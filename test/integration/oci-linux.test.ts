/**
 * What a bundle's `linux` section places and shares: the container's cgroups at
 * linux.cgroupsPath (absolute: from each hierarchy's root; relative: below the runtime's
 * parent), made on every hierarchy and removed on delete; existing network, IPC and UTS
 * namespaces joined by linux.namespaces[].path; hugetlb limits from hugepageLimits; a bad
 * path refused by name with nothing left behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxMissing, ociEnv, type OciEnv } from '../helpers/oci.js';
import { SKIP_REASON } from '../helpers/runtime.js';
import { skipBecause, skipTest } from '../helpers/skip.js';

const internalId = (id: string) => createHash('sha256').update(id).digest('hex').slice(0, 32);

/**
 * The cgroup paths of a process in every hierarchy the runtime drives ("0::/x" on v2,
 * "7:memory:/x" on v1); named hierarchies without controllers (name=systemd) are not its.
 */
function cgroupsOf(pid: number): string[] {
  return fs
    .readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(':'))
    .filter(([, controllers]) => !controllers!.startsWith('name='))
    .map((f) => f.slice(2).join(':'));
}

/** The mount point of every cgroup hierarchy (v1 ones and the unified one). */
function hierarchyMounts(): string[] {
  const out = new Set<string>();
  for (const l of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = l.split(' ');
    const sep = f.indexOf('-');
    if (sep > 0 && (f[sep + 1] === 'cgroup' || f[sep + 1] === 'cgroup2')) out.add(f[4]!);
  }
  return [...out];
}

describe.skipIf(skipBecause(SKIP_REASON || busyboxMissing(), 'OCI linux section tests'))('stratoswarm-oci: linux.cgroupsPath, namespaces by path, hugepageLimits', () => {
  let e: OciEnv;
  const top = `ss-oci-cgpath-${process.pid}`;
  beforeAll(() => {
    e = ociEnv();
  });
  afterAll(() => {
    e?.cleanup();
    // The directories made above the containers' cgroups stay, as with runc: the test's own go.
    for (const m of hierarchyMounts()) for (const d of [`${m}/${top}/pod`, `${m}/${top}`]) if (fs.existsSync(d)) fs.rmdirSync(d);
  });

  const create = (id: string, bundle: string) => e.create(id, bundle);
  const pidOf = (id: string) => (JSON.parse(e.run(['state', id]).stdout) as { pid: number }).pid;

  it('linux.cgroupsPath: an absolute path from each hierarchy\'s root holds the init on every hierarchy, with its limits; delete removes it', () => {
    const path = `/${top}/pod/ctr`;
    const b = e.bundle('abs', (c) => {
      c.process.args = ['sleep', '100'];
      c.linux.cgroupsPath = path;
      c.linux.resources = { ...c.linux.resources, pids: { limit: 33 } };
    });
    const r = create('abs', b);
    expect(r.status, r.stderr).toBe(0);
    const pid = pidOf('abs');
    const paths = cgroupsOf(pid);
    expect(paths.length).toBeGreaterThan(0);
    for (const p of paths) expect(p).toBe(path);
    const pidsMount = hierarchyMounts().find((m) => fs.existsSync(`${m}${path}/pids.max`));
    expect(pidsMount, 'no hierarchy with pids.max at the path').toBeDefined();
    expect(fs.readFileSync(`${pidsMount}${path}/pids.max`, 'utf8').trim()).toBe('33');
    expect(fs.readFileSync(`${pidsMount}${path}/cgroup.procs`, 'utf8').split('\n')).toContain(String(pid));
    // ps and update find the container where it was placed.
    expect(JSON.parse(e.run(['ps', '--format', 'json', 'abs']).stdout)).toContain(pid);
    const u = e.run(['update', '--resources', '-', 'abs'], { input: JSON.stringify({ pids: { limit: 44 } }) });
    expect(u.status, u.stderr).toBe(0);
    expect(fs.readFileSync(`${pidsMount}${path}/pids.max`, 'utf8').trim()).toBe('44');
    expect(fs.existsSync(join('/sys/fs/cgroup/pids', e.cgroupParent, internalId('abs')))).toBe(false);
    expect(e.run(['delete', '--force', 'abs']).status).toBe(0);
    for (const m of hierarchyMounts()) expect(fs.existsSync(`${m}${path}`)).toBe(false);
  });

  it('linux.cgroupsPath: a relative path is below the runtime\'s cgroup parent', () => {
    const b = e.bundle('rel', (c) => {
      c.process.args = ['sleep', '100'];
      c.linux.cgroupsPath = 'pod/ctr-rel';
    });
    const r = create('rel', b);
    expect(r.status, r.stderr).toBe(0);
    for (const p of cgroupsOf(pidOf('rel'))) expect(p).toBe(`/${e.cgroupParent}/pod/ctr-rel`);
    expect(e.run(['delete', '--force', 'rel']).status).toBe(0);
    for (const m of hierarchyMounts()) {
      expect(fs.existsSync(`${m}/${e.cgroupParent}/pod/ctr-rel`)).toBe(false);
      if (fs.existsSync(`${m}/${e.cgroupParent}/pod`)) fs.rmdirSync(`${m}/${e.cgroupParent}/pod`);
    }
  });

  it('linux.cgroupsPath: a bad path or one in use is refused by name, leaving nothing behind', () => {
    const bad = e.bundle('badcg', (c) => {
      c.linux.cgroupsPath = `/${top}/../escape`;
    });
    const r = create('badcg', bad);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/linux\.cgroupsPath: .*no "\." or "\.\." components/);
    expect(fs.existsSync(join(e.root, internalId('badcg')))).toBe(false);
    // A cgroup that exists already is another's: the create fails and leaves it as it was.
    const taken = `/${top}/taken`;
    const mounts = hierarchyMounts();
    for (const m of mounts) fs.mkdirSync(`${m}${taken}`, { recursive: true });
    try {
      const b = e.bundle('taken', (c) => {
        c.linux.cgroupsPath = taken;
      });
      const t = create('taken', b);
      expect(t.status).toBe(1);
      expect(t.stderr).toMatch(/exists already/);
      expect(fs.existsSync(join(e.root, internalId('taken')))).toBe(false);
      for (const m of mounts) expect(fs.existsSync(`${m}${taken}`)).toBe(true);
    } finally {
      for (const m of mounts) fs.rmdirSync(`${m}${taken}`);
    }
  });

  it('linux.namespaces[].path: joins another container\'s network, IPC and UTS namespaces; its own pid and mount stay new', async () => {
    const a = e.bundle('ns-a', (c) => {
      c.process.args = ['sleep', '100'];
      c.hostname = 'ns-a-host';
    });
    expect(create('ns-a', a).status).toBe(0);
    const pa = pidOf('ns-a');
    const nsOf = (pid: number, t: string) => fs.readlinkSync(`/proc/${pid}/ns/${t}`);
    const b = e.bundle('ns-b', (c) => {
      c.process.args = ['sh', '-c', 'for t in net ipc uts pid; do readlink /proc/self/ns/$t; done > /tmp/ns; hostname >> /tmp/ns'];
      c.root.readonly = false;
      delete c.hostname;
      c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) => {
        const t = { network: 'net', ipc: 'ipc', uts: 'uts' }[n.type];
        return t ? { type: n.type, path: `/proc/${pa}/ns/${t}` } : n;
      });
      if (!c.linux.namespaces.some((n: { type: string }) => n.type === 'network')) c.linux.namespaces.push({ type: 'network', path: `/proc/${pa}/ns/net` });
    });
    const rootfsB = JSON.parse(fs.readFileSync(join(b, 'config.json'), 'utf8')).root.path as string;
    if (!fs.existsSync(join(rootfsB, 'bin/readlink'))) fs.symlinkSync('busybox', join(rootfsB, 'bin/readlink'));
    const r = create('ns-b', b);
    expect(r.status, r.stderr).toBe(0);
    const pb = pidOf('ns-b');
    for (const t of ['net', 'ipc', 'uts']) expect(nsOf(pb, t)).toBe(nsOf(pa, t));
    for (const t of ['pid', 'mnt']) expect(nsOf(pb, t)).not.toBe(nsOf(pa, t));
    expect(e.run(['start', 'ns-b']).status).toBe(0);
    for (let i = 0; i < 300 && (JSON.parse(e.run(['state', 'ns-b']).stdout) as { status: string }).status !== 'stopped'; i++) await new Promise((res) => setTimeout(res, 10));
    const rootfs = JSON.parse(fs.readFileSync(join(b, 'config.json'), 'utf8')).root.path as string;
    const seen = fs.readFileSync(join(rootfs, 'tmp/ns'), 'utf8').trim().split('\n');
    expect(seen.slice(0, 3)).toEqual([nsOf(pa, 'net'), nsOf(pa, 'ipc'), nsOf(pa, 'uts')]);
    expect(seen[4]).toBe('ns-a-host');
    expect(e.run(['delete', '--force', 'ns-b']).status).toBe(0);
    // The joined namespaces are ns-a's still.
    expect(fs.existsSync(`/proc/${pa}`)).toBe(true);
    expect(e.run(['delete', '--force', 'ns-a']).status).toBe(0);
  });

  it('linux.namespaces[].path: a pid namespace joined (a pod sharing one): the second init sees the first as pid 1, and the spawner\'s later containers get their own again', async () => {
    const a = e.bundle('pid-a', (c) => {
      c.process.args = ['sleep', '100'];
    });
    expect(create('pid-a', a).status).toBe(0);
    expect(e.run(['start', 'pid-a']).status).toBe(0);
    const pa = pidOf('pid-a');
    const b = e.bundle('pid-b', (c) => {
      c.process.args = ['sh', '-c', 'readlink /proc/self/ns/pid > /tmp/pid; cat /proc/1/cmdline | tr "\\0" " " >> /tmp/pid; echo >> /tmp/pid; echo $$ >> /tmp/pid'];
      c.root.readonly = false;
      c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) => (n.type === 'pid' ? { type: 'pid', path: `/proc/${pa}/ns/pid` } : n));
    });
    const rootfsB = JSON.parse(fs.readFileSync(join(b, 'config.json'), 'utf8')).root.path as string;
    if (!fs.existsSync(join(rootfsB, 'bin/readlink'))) fs.symlinkSync('busybox', join(rootfsB, 'bin/readlink'));
    const r = create('pid-b', b);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readlinkSync(`/proc/${pidOf('pid-b')}/ns/pid`)).toBe(fs.readlinkSync(`/proc/${pa}/ns/pid`));
    expect(e.run(['start', 'pid-b']).status).toBe(0);
    for (let i = 0; i < 300 && (JSON.parse(e.run(['state', 'pid-b']).stdout) as { status: string }).status !== 'stopped'; i++) await new Promise((res) => setTimeout(res, 10));
    const seen = fs.readFileSync(join(rootfsB, 'tmp/pid'), 'utf8').trim().split('\n');
    expect(seen[0]).toBe(fs.readlinkSync(`/proc/${pa}/ns/pid`));
    expect(seen[1]!.trim()).toBe('sleep 100');
    expect(Number(seen[2])).toBeGreaterThan(1);
    // The next container the spawner makes has a pid namespace of its own again.
    expect(create('pid-c', e.bundle('pid-c', (c) => {
      c.process.args = ['sleep', '100'];
    })).status).toBe(0);
    const nsC = fs.readlinkSync(`/proc/${pidOf('pid-c')}/ns/pid`);
    expect(nsC).not.toBe(fs.readlinkSync(`/proc/${pa}/ns/pid`));
    expect(nsC).not.toBe(fs.readlinkSync('/proc/self/ns/pid'));
    for (const id of ['pid-c', 'pid-b', 'pid-a']) expect(e.run(['delete', '--force', id]).status).toBe(0);
  });

  it('linux.namespaces[].path: mount and cgroup namespaces joined: the root is set up inside the joined mount namespace, as runc does', async () => {
    // A process holding a private mount namespace and a cgroup namespace of its own.
    const holder = spawn('unshare', ['-m', '--propagation', 'private', '-C', 'sleep', '100'], { stdio: 'ignore' });
    try {
      let mnt = '';
      for (let i = 0; i < 200; i++) {
        try {
          mnt = fs.readlinkSync(`/proc/${holder.pid}/ns/mnt`);
          if (mnt !== fs.readlinkSync('/proc/self/ns/mnt') && fs.readFileSync(`/proc/${holder.pid}/cmdline`, 'utf8').startsWith('sleep')) break;
        } catch {
          // not there yet
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      const r = create('ns-mnt', e.bundle('ns-mnt', (c) => {
        c.process.args = ['sleep', '100'];
        c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'mount' && n.type !== 'cgroup');
        c.linux.namespaces.push({ type: 'mount', path: `/proc/${holder.pid}/ns/mnt` }, { type: 'cgroup', path: `/proc/${holder.pid}/ns/cgroup` });
      }));
      expect(r.status, r.stderr).toBe(0);
      const pid = pidOf('ns-mnt');
      expect(fs.readlinkSync(`/proc/${pid}/ns/mnt`)).toBe(mnt);
      expect(fs.readlinkSync(`/proc/${pid}/ns/cgroup`)).toBe(fs.readlinkSync(`/proc/${holder.pid}/ns/cgroup`));
      expect(e.run(['start', 'ns-mnt']).status).toBe(0);
      // Its root is the bundle's rootfs (busybox), inside that namespace.
      expect(fs.existsSync(`/proc/${pid}/root/bin/busybox`)).toBe(true);
      expect(e.run(['delete', '--force', 'ns-mnt']).status).toBe(0);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('linux.namespaces[].path: a path that is missing or not a namespace of that type is refused by name, leaving nothing', () => {
    const missing = e.bundle('ns-missing', (c) => {
      c.linux.namespaces.push({ type: 'network', path: '/proc/self/ns/no-such' });
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string; path?: string }, i: number, l: { type: string }[]) => n.type !== 'network' || i === l.length - 1);
    });
    const m = create('ns-missing', missing);
    expect(m.status).toBe(1);
    expect(m.stderr).toMatch(/linux\.namespaces\[\d+\]\.path: `\/proc\/self\/ns\/no-such` does not exist/);
    expect(fs.existsSync(join(e.root, internalId('ns-missing')))).toBe(false);
    // An existing file that is not a network namespace: found out by the spawner.
    const wrong = e.bundle('ns-wrong', (c) => {
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'network');
      c.linux.namespaces.push({ type: 'network', path: `/proc/${process.pid}/ns/ipc` });
    });
    const w = create('ns-wrong', wrong);
    expect(w.status).toBe(1);
    expect(w.stderr, w.stderr).toMatch(/linux\.namespaces\[\d+\]\.path: .*not a net namespace/);
    expect(fs.existsSync(join(e.root, internalId('ns-wrong')))).toBe(false);
    expect(fs.existsSync(join('/sys/fs/cgroup/pids', e.cgroupParent, internalId('ns-wrong')))).toBe(false);
    const pidWrong = create('ns-pid', e.bundle('ns-pid', (c) => {
      c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) => (n.type === 'pid' ? { type: 'pid', path: `/proc/${process.pid}/ns/net` } : n));
    }));
    expect(pidWrong.status).toBe(1);
    expect(pidWrong.stderr).toMatch(/linux\.namespaces\[\d+\]\.path: .*not a pid namespace/);
    expect(fs.existsSync(join(e.root, internalId('ns-pid')))).toBe(false);
    const mntWrong = create('ns-mnt-wrong', e.bundle('ns-mnt-wrong', (c) => {
      c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) => (n.type === 'mount' ? { type: 'mount', path: `/proc/${process.pid}/ns/net` } : n));
    }));
    expect(mntWrong.status).toBe(1);
    expect(mntWrong.stderr).toMatch(/linux\.namespaces\[\d+\]\.path: .*not a mnt namespace/);
    expect(fs.existsSync(join(e.root, internalId('ns-mnt-wrong')))).toBe(false);
    const time = create('ns-time', e.bundle('ns-time', (c) => {
      c.linux.namespaces.push({ type: 'time' });
    }));
    expect(time.stderr).toMatch(/linux\.namespaces\[\d+\]: a time namespace is not supported/);
  });

  it('linux.resources.hugepageLimits: the hugetlb limit of each page size, where the host has the controller and the size', (ctx) => {
    // v1: a hierarchy with the controller's files at its root; v2: the root passes hugetlb down.
    const v2Hugetlb = (m: string) => fs.existsSync(`${m}/cgroup.subtree_control`) && fs.readFileSync(`${m}/cgroup.subtree_control`, 'utf8').split(/\s+/).includes('hugetlb');
    const mount = hierarchyMounts().find((m) => fs.existsSync(`${m}/hugetlb.2MB.limit_in_bytes`) || v2Hugetlb(m));
    if (!fs.existsSync('/sys/kernel/mm/hugepages/hugepages-2048kB')) return skipTest(ctx, 'hugepageLimits', 'the host has no 2 MB huge pages');
    if (!mount) return skipTest(ctx, 'hugepageLimits', 'no cgroup hierarchy offers the hugetlb controller');
    const path = `/${top}/huge`;
    const b = e.bundle('huge', (c) => {
      c.process.args = ['sleep', '100'];
      c.linux.cgroupsPath = path;
      c.linux.resources = { ...c.linux.resources, hugepageLimits: [{ pageSize: '2MB', limit: 4 << 20 }] };
    });
    const r = create('huge', b);
    expect(r.status, r.stderr).toBe(0);
    const file = ['hugetlb.2MB.max', 'hugetlb.2MB.limit_in_bytes'].map((f) => `${mount}${path}/${f}`).find((f) => fs.existsSync(f));
    expect(file, 'no hugetlb file in the container\'s cgroup').toBeDefined();
    expect(fs.readFileSync(file!, 'utf8').trim()).toBe(String(4 << 20));
    expect(e.run(['delete', '--force', 'huge']).status).toBe(0);
    const bad = e.bundle('huge-bad', (c) => {
      c.linux.resources = { ...c.linux.resources, hugepageLimits: [{ pageSize: 'big', limit: 1 }] };
    });
    const w = create('huge-bad', bad);
    expect(w.status).toBe(1);
    expect(w.stderr).toMatch(/linux\.resources\.hugepageLimits\[0\]\.pageSize: expected a size like "2MB"/);
    expect(fs.existsSync(join(e.root, internalId('huge-bad')))).toBe(false);
  });

  it('linux.resources.unified: cgroup v2 files written by name in the container\'s v2 directory; a controller v1 holds refused by name, nothing left', (ctx) => {
    const v2 = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[f.indexOf('-') + 1] === 'cgroup2')?.[4];
    if (!v2) return skipTest(ctx, 'linux.resources.unified', 'no cgroup v2 hierarchy is mounted on this host');
    const passed = fs.readFileSync(`${v2}/cgroup.subtree_control`, 'utf8').split(/\s+/);
    const huge = passed.includes('hugetlb') && fs.existsSync('/sys/kernel/mm/hugepages/hugepages-2048kB');
    const unified: Record<string, string> = { 'cgroup.max.depth': '2', 'cgroup.max.descendants': '7', ...(huge ? { 'hugetlb.2MB.max': String(2 << 20) } : {}) };
    const path = `/${top}/unified`;
    const r = create('unified', e.bundle('unified', (c) => {
      c.process.args = ['sleep', '100'];
      c.linux.cgroupsPath = path;
      c.linux.resources = { ...c.linux.resources, unified };
    }));
    expect(r.status, r.stderr).toBe(0);
    for (const [k, v] of Object.entries(unified)) expect(fs.readFileSync(`${v2}${path}/${k}`, 'utf8').trim(), k).toBe(v);
    const u = e.run(['update', '--resources', '-', 'unified'], { input: JSON.stringify({ unified: { 'cgroup.max.descendants': '9' } }) });
    expect(u.status, u.stderr).toBe(0);
    expect(fs.readFileSync(`${v2}${path}/cgroup.max.descendants`, 'utf8').trim()).toBe('9');
    expect(e.run(['delete', '--force', 'unified']).status).toBe(0);
    // memory on v1 (a hybrid host): its v2 files are not there, and the create says so.
    const memV1 = hierarchyMounts().some((m) => fs.existsSync(`${m}/memory.limit_in_bytes`));
    const w = create('unified-bad', e.bundle('unified-bad', (c) => {
      c.linux.resources = { ...c.linux.resources, unified: memV1 ? { 'memory.high': '1073741824' } : { 'memory.hihg': '1' } };
    }));
    expect(w.status).toBe(1);
    expect(w.stderr).toMatch(
      memV1 ? /linux\.resources\.unified: .*unified\["memory\.high"\]: the memory controller is on cgroup v1 on this host/ : /unified\["memory\.hihg"\]: memory\.hihg does not exist/,
    );
    expect(fs.existsSync(join(e.root, internalId('unified-bad')))).toBe(false);
    const bad = create('unified-procs', e.bundle('unified-procs', (c) => {
      c.linux.resources = { ...c.linux.resources, unified: { 'cgroup.procs': '1' } };
    }));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/linux\.resources\.unified\["cgroup\.procs"\]: cgroup\.procs is the runtime's to write/);
  });

  it('linux.resources.blockIO: throttles written per device (blkio.throttle.* on v1, io.max on v2); leaf weights refused by name', (ctx) => {
    const blkio = hierarchyMounts().find((m) => fs.existsSync(`${m}/blkio.throttle.read_bps_device`));
    if (!blkio) return skipTest(ctx, 'blockIO', 'no v1 blkio hierarchy with throttle files on this host');
    // The disk that holds the bundle: a real block device of this host.
    const st = fs.statSync(e.root);
    const major = Math.floor(st.dev / 256);
    const minor = st.dev % 256;
    const sys = `/sys/dev/block/${major}:${minor}`;
    // A partition is throttled through its disk.
    const disk = fs.existsSync(`${sys}/partition`) ? fs.readFileSync(`${fs.realpathSync(sys)}/../dev`, 'utf8').trim() : `${major}:${minor}`;
    const [dmaj, dmin] = disk.split(':').map(Number);
    const path = `/${top}/blk`;
    const b = e.bundle('blk', (c) => {
      c.process.args = ['sleep', '100'];
      c.linux.cgroupsPath = path;
      c.linux.resources = { ...c.linux.resources, blockIO: { throttleReadBpsDevice: [{ major: dmaj, minor: dmin, rate: 4 << 20 }], throttleWriteIOPSDevice: [{ major: dmaj, minor: dmin, rate: 300 }] } };
    });
    const r = create('blk', b);
    expect(r.status, r.stderr).toBe(0);
    expect(fs.readFileSync(`${blkio}${path}/blkio.throttle.read_bps_device`, 'utf8').trim()).toBe(`${disk} ${4 << 20}`);
    expect(fs.readFileSync(`${blkio}${path}/blkio.throttle.write_iops_device`, 'utf8').trim()).toBe(`${disk} 300`);
    expect(e.run(['delete', '--force', 'blk']).status).toBe(0);
    const w = create('blk-w', e.bundle('blk-w', (c) => {
      c.linux.resources = { ...c.linux.resources, blockIO: { leafWeight: 500 } };
    }));
    expect(w.status).toBe(1);
    expect(w.stderr).toMatch(/linux\.resources\.blockIO\.leafWeight: is not supported: leaf weights were the CFQ scheduler’s/);
    expect(fs.existsSync(join(e.root, internalId('blk-w')))).toBe(false);
  });

  it('linux.resources.blockIO weights under BFQ: blkio.bfq.weight, weight_device on a disk using BFQ, update; a disk on another scheduler named', (ctx) => {
    const blkio = hierarchyMounts().find((m) => fs.existsSync(`${m}/blkio.bfq.io_service_bytes`));
    if (!blkio) return skipTest(ctx, 'blockIO weights', 'no v1 blkio hierarchy with the BFQ scheduler\'s files on this host (modprobe bfq)');
    // Two loop disks: one switched to BFQ, one left on "none".
    const loops: string[] = [];
    const loop = (name: string, scheduler?: string) => {
      const img = join(e.dir, `${name}.img`);
      fs.writeFileSync(img, '');
      fs.truncateSync(img, 16 << 20);
      const r = spawnSync('losetup', ['-f', '--show', img], { encoding: 'utf8' });
      if (r.status !== 0) return undefined;
      const dev = r.stdout.trim();
      loops.push(dev);
      const sys = `/sys/block/${dev.slice('/dev/'.length)}`;
      if (scheduler) fs.writeFileSync(`${sys}/queue/scheduler`, scheduler);
      return fs.readFileSync(`${sys}/dev`, 'utf8').trim();
    };
    try {
      const bfq = loop('bfq', 'bfq');
      const plain = loop('plain');
      if (!bfq || !plain) return skipTest(ctx, 'blockIO weightDevice', 'losetup could not set up loop devices here');
      const [bmaj, bmin] = bfq.split(':').map(Number);
      const [pmaj, pmin] = plain.split(':').map(Number);
      const path = `/${top}/bfq`;
      const b = e.bundle('bfq', (c) => {
        c.process.args = ['sleep', '100'];
        c.linux.cgroupsPath = path;
        c.linux.resources = { ...c.linux.resources, blockIO: { weight: 300, weightDevice: [{ major: bmaj, minor: bmin, weight: 700 }] } };
      });
      const r = create('bfq', b);
      expect(r.status, r.stderr).toBe(0);
      const read = (f: string) => fs.readFileSync(`${blkio}${path}/${f}`, 'utf8').trim();
      expect(read('blkio.bfq.weight')).toBe('300');
      expect(read('blkio.bfq.weight_device').split('\n')).toEqual(['default 300', `${bfq} 700`]);
      const u = e.run(['update', '--resources', '-', 'bfq'], { input: JSON.stringify({ blockIO: { weight: 50 } }) });
      expect(u.status, u.stderr).toBe(0);
      expect(read('blkio.bfq.weight')).toBe('50');
      expect(e.run(['delete', '--force', 'bfq']).status).toBe(0);
      const w = create('bfq-plain', e.bundle('bfq-plain', (c) => {
        c.linux.resources = { ...c.linux.resources, blockIO: { weightDevice: [{ major: pmaj, minor: pmin, weight: 700 }] } };
      }));
      expect(w.status).toBe(1);
      expect(w.stderr).toMatch(/blockIoWeightDevice: write `blkio\.bfq\.weight_device`: EOPNOTSUPP.*the device does not use the BFQ I\/O scheduler/);
      expect(fs.existsSync(join(e.root, internalId('bfq-plain')))).toBe(false);
    } finally {
      for (const d of loops) spawnSync('losetup', ['-d', d]);
    }
  });

  it('linux.resources on v1: cpu period and quota as given, memory.swappiness, disableOOMKiller, kernelTCP read back; update --resources changes them', (ctx) => {
    const mem = hierarchyMounts().find((m) => fs.existsSync(`${m}/memory.swappiness`) && fs.existsSync(`${m}/memory.kmem.tcp.limit_in_bytes`));
    const cpu = hierarchyMounts().find((m) => fs.existsSync(`${m}/cpu.cfs_period_us`));
    if (!mem) return skipTest(ctx, 'linux.resources.memory v1 settings', 'no v1 memory hierarchy with memory.swappiness and memory.kmem.tcp.limit_in_bytes on this host');
    if (!cpu) return skipTest(ctx, 'linux.resources.cpu period', 'no v1 cpu hierarchy with cpu.cfs_period_us on this host');
    const path = `/${top}/memv1`;
    const b = e.bundle('memv1', (c) => {
      c.process.args = ['sleep', '100'];
      c.linux.cgroupsPath = path;
      c.linux.resources = {
        ...c.linux.resources,
        // kernel: written to memory.kmem.limit_in_bytes, which Linux 5.16+ accepts and ignores.
        memory: { limit: 64 << 20, swappiness: 10, disableOOMKiller: true, kernelTCP: 50593792, kernel: 64 << 20 },
        cpu: { period: 500000, quota: 50000 },
      };
    });
    const r = create('memv1', b);
    expect(r.status, r.stderr).toBe(0);
    const read = (m: string, f: string) => fs.readFileSync(`${m}${path}/${f}`, 'utf8').trim();
    expect(read(cpu, 'cpu.cfs_period_us')).toBe('500000');
    expect(read(cpu, 'cpu.cfs_quota_us')).toBe('50000');
    expect(read(mem, 'memory.swappiness')).toBe('10');
    expect(read(mem, 'memory.oom_control')).toMatch(/^oom_kill_disable 1$/m);
    expect(read(mem, 'memory.kmem.tcp.limit_in_bytes')).toBe('50593792');
    expect(read(mem, 'memory.limit_in_bytes')).toBe(String(64 << 20));
    // A new period keeps the quota (as runc writes them); the others change as given.
    const u = e.run(['update', '--resources', '-', 'memv1'], { input: JSON.stringify({ cpu: { period: 250000 }, memory: { swappiness: 20, disableOOMKiller: false } }) });
    expect(u.status, u.stderr).toBe(0);
    expect(read(cpu, 'cpu.cfs_period_us')).toBe('250000');
    expect(read(cpu, 'cpu.cfs_quota_us')).toBe('50000');
    expect(read(mem, 'memory.swappiness')).toBe('20');
    expect(read(mem, 'memory.oom_control')).toMatch(/^oom_kill_disable 0$/m);
    expect(e.run(['delete', '--force', 'memv1']).status).toBe(0);
    const w = create('memv1-bad', e.bundle('memv1-bad', (c) => {
      c.linux.resources = { ...c.linux.resources, memory: { swappiness: 200 } };
    }));
    expect(w.status).toBe(1);
    expect(w.stderr).toMatch(/linux\.resources\.memory\.swappiness: expected a whole number 0\.\.100, got 200/);
    expect(fs.existsSync(join(e.root, internalId('memv1-bad')))).toBe(false);
  });

  it('a user namespace with the bundle\'s uidMappings and gidMappings: the init runs as container root mapped to the host ids; bad mappings named', () => {
    const b = e.bundle('userns', (c) => {
      c.process.args = ['sleep', '100'];
      c.linux.namespaces = [...c.linux.namespaces, { type: 'user' }];
      c.linux.uidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
      c.linux.gidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
    });
    const r = create('userns', b);
    expect(r.status, r.stderr).toBe(0);
    const pid = pidOf('userns');
    expect(fs.readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim().split(/\s+/)).toEqual(['0', '300000', '65536']);
    expect(fs.readFileSync(`/proc/${pid}/gid_map`, 'utf8').trim().split(/\s+/)).toEqual(['0', '300000', '65536']);
    expect(fs.readlinkSync(`/proc/${pid}/ns/user`)).not.toBe(fs.readlinkSync('/proc/self/ns/user'));
    expect(e.run(['start', 'userns']).status).toBe(0);
    // Seen from the host, the started process (container root) is host uid 300000.
    let status = '';
    for (let i = 0; i < 200 && !/^Uid:\s+300000\s/m.test(status); i++) status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(/^Uid:\s+300000\s/m);
    expect(e.run(['delete', '--force', 'userns']).status).toBe(0);
    const bad = create('userns-bad', e.bundle('userns-bad', (c) => {
      c.linux.namespaces = [...c.linux.namespaces, { type: 'user' }];
      c.linux.uidMappings = [{ containerID: 0, hostID: 300000, size: 10 }, { containerID: 5, hostID: 400000, size: 10 }];
    }));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/linux\.uidMappings\[1\]: overlaps another mapping's container ids/);
    expect(bad.stderr).toMatch(/linux\.gidMappings: a user namespace needs its id mappings/);
    expect(fs.existsSync(join(e.root, internalId('userns-bad')))).toBe(false);
  });

  it('namespace types left out are the host\'s: pid, ipc and uts shared; delete kills what outlived the init; a hostname without uts refused', () => {
    const out = join(e.dir, 'hostns-out');
    fs.mkdirSync(out, { recursive: true });
    const b = e.bundle('hostns', (c) => {
      c.hostname = '';
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => !['pid', 'ipc', 'uts'].includes(n.type));
      c.mounts = [...c.mounts, { destination: '/out', type: 'bind', source: out, options: ['bind'] }];
      // A second process that outlives the init: in the host's pid namespace nothing kills it with the init.
      c.process.args = ['sh', '-c', 'sleep 1000 & echo $! > /out/bg; hostname > /out/host; exec sleep 1000'];
    });
    const r = create('hostns', b);
    expect(r.status, r.stderr).toBe(0);
    const pid = pidOf('hostns');
    for (const ns of ['pid', 'ipc', 'uts']) expect(fs.readlinkSync(`/proc/${pid}/ns/${ns}`), ns).toBe(fs.readlinkSync(`/proc/self/ns/${ns}`));
    expect(fs.readlinkSync(`/proc/${pid}/ns/mnt`)).not.toBe(fs.readlinkSync('/proc/self/ns/mnt'));
    expect(e.run(['start', 'hostns']).status).toBe(0);
    for (let i = 0; i < 300 && !(fs.existsSync(join(out, 'bg')) && fs.existsSync(join(out, 'host')) && fs.readFileSync(join(out, 'host'), 'utf8')); i++) spawnSync('sleep', ['0.01']);
    expect(fs.readFileSync(join(out, 'host'), 'utf8').trim()).toBe(fs.readFileSync('/proc/sys/kernel/hostname', 'utf8').trim());
    // The pid the container's shell saw is the host's own number for it.
    const bg = Number(fs.readFileSync(join(out, 'bg'), 'utf8'));
    expect(fs.readFileSync(`/proc/${bg}/cmdline`, 'utf8')).toBe('sleep\u00001000\u0000');
    expect(e.run(['kill', 'hostns', 'KILL']).status).toBe(0);
    for (let i = 0; i < 300 && JSON.parse(e.run(['state', 'hostns']).stdout).status !== 'stopped'; i++) spawnSync('sleep', ['0.01']);
    expect(fs.existsSync(`/proc/${bg}`)).toBe(true); // outlived the init
    const d = e.run(['delete', 'hostns']);
    expect(d.status, d.stderr).toBe(0);
    expect(fs.existsSync(`/proc/${bg}`) && !fs.readFileSync(`/proc/${bg}/stat`, 'utf8').includes(') Z')).toBe(false);
    const bad = create('hostns-bad', e.bundle('hostns-bad', (c) => {
      c.hostname = 'box';
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'uts' && n.type !== 'mount');
    }));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/hostname: setting it needs a uts namespace of the container's own/);
    expect(bad.stderr).toMatch(/linux\.namespaces: the host's mount namespace cannot be shared/);
    expect(fs.existsSync(join(e.root, internalId('hostns-bad')))).toBe(false);
  });

  it('idmapped mounts: uidMappings/gidMappings shift the ids of a bind, "idmap" alone maps through the container\'s user namespace; bad ones named, nothing left', () => {
    // The source: a root-owned directory with a file of uid 1234, gid 2345.
    const src = join(e.dir, 'idmap-src');
    fs.mkdirSync(src, { recursive: true });
    fs.writeFileSync(join(src, 'f'), 'x');
    fs.chownSync(join(src, 'f'), 1234, 2345);
    const out = join(e.dir, 'idmap-out');
    fs.mkdirSync(out, { recursive: true, mode: 0o777 });
    fs.chmodSync(out, 0o777);
    const ids = (name: string, change: (c: Record<string, any>) => void) => {
      const b = e.bundle(name, (c) => {
        c.process.args = ['sh', '-c', `stat -c '%u %g' /m /m/f > /out/${name}; sleep 100`];
        c.mounts = [...c.mounts, { destination: '/out', type: 'bind', source: out, options: ['bind'] }];
        change(c);
      });
      const r = create(name, b);
      expect(r.status, r.stderr).toBe(0);
      expect(e.run(['start', name]).status).toBe(0);
      const file = join(out, name);
      for (let i = 0; i < 300 && !(fs.existsSync(file) && fs.readFileSync(file, 'utf8').split('\n').length > 2); i++) spawnSync('sleep', ['0.01']);
      const text = fs.readFileSync(file, 'utf8').trim().split('\n');
      expect(e.run(['delete', '--force', name]).status).toBe(0);
      return text;
    };
    // Explicit maps, no user namespace: on-disk 0 shows as 5000, 1234 as 6234 (gids by their own map).
    expect(
      ids('idmap-maps', (c) => {
        c.mounts.push({ destination: '/m', type: 'bind', source: src, options: ['bind'], uidMappings: [{ containerID: 0, hostID: 5000, size: 2000 }], gidMappings: [{ containerID: 0, hostID: 7000, size: 3000 }] });
      }),
    ).toEqual(['5000 7000', '6234 9345']);
    // "idmap" alone, inside a user namespace (0 → 300000): the host's ids show as they are on disk.
    expect(
      ids('idmap-userns', (c) => {
        c.linux.namespaces = [...c.linux.namespaces, { type: 'user' }];
        c.linux.uidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
        c.linux.gidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
        c.mounts.push({ destination: '/m', type: 'bind', source: src, options: ['rbind', 'idmap'] });
      }),
    ).toEqual(['0 0', '1234 2345']);
    const bad = create('idmap-bad', e.bundle('idmap-bad', (c) => {
      c.mounts.push({ destination: '/a', type: 'bind', source: src, options: ['bind', 'idmap'] });
      c.mounts.push({ destination: '/b', type: 'bind', source: src, options: ['bind'], uidMappings: [{ containerID: 0, hostID: 1, size: 1 }] });
      c.mounts.push({ destination: '/c', type: 'tmpfs', source: 'tmpfs', options: ['idmap'] });
    }));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/mounts\[\d+\]\.options: "idmap" without uidMappings and gidMappings maps through the container's user namespace, and linux\.namespaces has none/);
    expect(bad.stderr).toMatch(/mounts\[\d+\]\.gidMappings: an idmapped mount needs both uidMappings and gidMappings/);
    expect(bad.stderr).toMatch(/mounts\[\d+\]\.options: only a bind mount can be idmapped here/);
    expect(fs.existsSync(join(e.root, internalId('idmap-bad')))).toBe(false);
  });

  it('a user namespace joined by path (a pod\'s): the init enters it last, with or without the pod\'s network; maps that differ named', () => {
    const maps = (c: Record<string, any>) => {
      c.linux.uidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
      c.linux.gidMappings = [{ containerID: 0, hostID: 300000, size: 65536 }];
    };
    const sandbox = create('pod-sandbox', e.bundle('pod-sandbox', (c) => {
      c.process.args = ['sleep', '100'];
      c.linux.namespaces = [...c.linux.namespaces, { type: 'user' }];
      maps(c);
    }));
    expect(sandbox.status, sandbox.stderr).toBe(0);
    const spid = pidOf('pod-sandbox');
    const ns = (pid: number, t: string) => fs.readlinkSync(`/proc/${pid}/ns/${t}`);
    // The pod's network too, and its own: the new network namespace is made inside the joined user namespace.
    for (const [id, joinNet] of [['pod-app', true], ['pod-app-net', false]] as const) {
      const r = create(id, e.bundle(id, (c) => {
        c.process.args = ['sleep', '100'];
        c.linux.namespaces = [
          ...c.linux.namespaces.filter((n: { type: string }) => n.type !== 'network'),
          { type: 'user', path: `/proc/${spid}/ns/user` },
          joinNet ? { type: 'network', path: `/proc/${spid}/ns/net` } : { type: 'network' },
        ];
        if (id === 'pod-app') maps(c); // given: the same maps as the joined namespace's
      }));
      expect(r.status, r.stderr).toBe(0);
      const pid = pidOf(id);
      expect(ns(pid, 'user')).toBe(ns(spid, 'user'));
      if (joinNet) expect(ns(pid, 'net')).toBe(ns(spid, 'net'));
      else expect([ns(spid, 'net'), fs.readlinkSync('/proc/self/ns/net')]).not.toContain(ns(pid, 'net'));
      expect(e.run(['start', id]).status).toBe(0);
      let status = '';
      for (let i = 0; i < 200 && !/^Uid:\s+300000\s/m.test(status); i++) status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      expect(status).toMatch(/^Uid:\s+300000\s/m);
      expect(e.run(['delete', '--force', id]).status).toBe(0);
    }
    const bad = create('pod-bad', e.bundle('pod-bad', (c) => {
      c.linux.namespaces = [...c.linux.namespaces, { type: 'user', path: `/proc/${spid}/ns/user` }];
      c.linux.uidMappings = [{ containerID: 0, hostID: 400000, size: 65536 }];
    }));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/linux\.uidMappings: differ from the maps of the joined user namespace \(\/proc\/\d+\/ns\/user: 0 300000 65536\)/);
    expect(fs.existsSync(join(e.root, internalId('pod-bad')))).toBe(false);
    expect(e.run(['delete', '--force', 'pod-sandbox']).status).toBe(0);
  });

  it('linux.devices made with mknod as given, mount and rootfs propagation applied, process.user.umask set; a bad device named, nothing left', () => {
    const shared = join(e.dir, 'prop-src');
    fs.mkdirSync(shared, { recursive: true });
    const b = e.bundle('nodes', (c) => {
      c.process.args = ['sleep', '100'];
      c.process.user = { uid: 0, gid: 0, umask: 0o027 };
      c.linux.devices = [
        { path: '/dev/test1', type: 'c', major: 10, minor: 666, fileMode: 0o660, uid: 1, gid: 2 },
        { path: '/dev/sub/test2', type: 'b', major: 8, minor: 666, fileMode: 0o600 },
        { path: '/dev/fifo', type: 'p' },
      ];
      c.linux.rootfsPropagation = 'shared';
      c.mounts = [...c.mounts, { destination: '/t', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755', 'size=1k', 'shared'] }, { destination: '/u', source: shared, options: ['bind', 'mode=755', 'unbindable'] }];
    });
    const r = create('nodes', b);
    expect(r.status, r.stderr).toBe(0);
    const pid = pidOf('nodes');
    const dev = (p: string) => fs.statSync(`/proc/${pid}/root${p}`);
    const c1 = dev('/dev/test1');
    expect(c1.isCharacterDevice()).toBe(true);
    expect([Math.floor(c1.rdev / 256) & 0xfff, c1.rdev & 0xff, c1.mode & 0o7777, c1.uid, c1.gid]).toEqual([10, 666 & 0xff, 0o660, 1, 2]);
    expect(dev('/dev/sub/test2').isBlockDevice()).toBe(true);
    expect(dev('/dev/sub/test2').mode & 0o7777).toBe(0o600);
    expect(dev('/dev/fifo').isFIFO()).toBe(true);
    const info = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').map((l) => l.split(' '));
    const opt = (mp: string) => info.find((f) => f[4] === mp)?.slice(6, info.find((g) => g[4] === mp)!.indexOf('-')).join(' ') ?? 'missing';
    expect(opt('/')).toMatch(/shared:\d+/);
    expect(opt('/t')).toMatch(/shared:\d+/);
    expect(opt('/u')).toMatch(/unbindable/);
    expect(e.run(['start', 'nodes']).status).toBe(0);
    let status = '';
    for (let i = 0; i < 200 && !/^Umask:\s+0027$/m.test(status); i++) status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(/^Umask:\s+0027$/m);
    expect(e.run(['delete', '--force', 'nodes']).status).toBe(0);
    const bad = create('nodes-bad', e.bundle('nodes-bad', (c) => {
      c.linux.devices = [{ path: '/dev/x', type: 'c', major: 1 }];
    }));
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/linux\.devices\[0\]\.minor: expected an integer/);
    expect(fs.existsSync(join(e.root, internalId('nodes-bad')))).toBe(false);
  });
});
