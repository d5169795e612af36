/** The user a container's process runs as, resolved in the image's account files. */
import { RuntimeError } from '../errors.js';
import type { PasswdEntry } from '../image/images.js';
import type { PlanUser } from '../plan/types.js';

export interface ImageAccounts {
  users: PasswdEntry[];
  groups: { name: string; gid: number; members: string[] }[];
}

/**
 * "uid", "uid:gid", "name" or "name:group" against the image's /etc/passwd and /etc/group.
 * A numeric uid need not exist (as with Docker); supplementary groups are those that list
 * the user by name.
 */
export function resolveUser(accounts: ImageAccounts, user: string): PlanUser {
  const [u, g] = user.split(':') as [string, string | undefined];
  const { users, groups } = accounts;
  let uid: number;
  let gid: number;
  let name: string | undefined;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    const entry = users.find((x) => x.uid === uid);
    name = entry?.name;
    gid = entry?.gid ?? uid;
  } else {
    const entry = users.find((x) => x.name === u);
    if (!entry) throw new RuntimeError(`user "${u}" not found in the image's /etc/passwd`, { code: 'ENOTFOUND', step: 'user', path: '/etc/passwd' });
    uid = entry.uid;
    gid = entry.gid;
    name = entry.name;
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const grp = groups.find((x) => x.name === g);
      if (!grp) throw new RuntimeError(`group "${g}" not found in the image's /etc/group`, { code: 'ENOTFOUND', step: 'user', path: '/etc/group' });
      gid = grp.gid;
    }
  }
  const extra = name ? groups.filter((x) => x.members.includes(name)).map((x) => x.gid) : [];
  return { uid, gid, groups: [...new Set([gid, ...extra])] };
}
