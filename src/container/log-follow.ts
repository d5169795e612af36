/**
 * A container's stdout and stderr go straight from its init to log files (no process in
 * between, so output survives the host agent); a reader follows a file as it grows and ends
 * once the container has exited and everything written has been read.
 */
import * as fs from 'node:fs';
import { Readable } from 'node:stream';

export function followFile(path: string, finished: Promise<unknown>, fromStart = true): Readable {
  let fd: number | undefined;
  let offset = 0;
  let watcher: fs.FSWatcher | undefined;
  let done = false;
  let wake: (() => void) | undefined;
  let reading = false;

  const stream = new Readable({
    read() {
      void pump();
    },
    destroy(err, cb) {
      watcher?.close();
      if (fd !== undefined) fs.close(fd, () => cb(err));
      else cb(err);
    },
  });

  finished.then(
    () => {
      done = true;
      wake?.();
    },
    () => {
      done = true;
      wake?.();
    },
  );

  async function pump(): Promise<void> {
    if (reading) return;
    reading = true;
    try {
      if (fd === undefined) {
        fd = fs.openSync(path, 'r');
        if (!fromStart) offset = fs.fstatSync(fd).size;
        watcher = fs.watch(path, () => wake?.());
        watcher.on('error', () => undefined);
      }
      for (;;) {
        const buf = Buffer.allocUnsafe(65536);
        const n = await new Promise<number>((res, rej) => fs.read(fd!, buf, 0, buf.length, offset, (e, b) => (e ? rej(e) : res(b))));
        if (n > 0) {
          offset += n;
          if (!stream.push(buf.subarray(0, n))) return;
          continue;
        }
        if (done) {
          // One more read after the exit was seen: the last write may have landed in between.
          const m = fs.readSync(fd!, buf, 0, buf.length, offset);
          if (m > 0) {
            offset += m;
            stream.push(buf.subarray(0, m));
            continue;
          }
          stream.push(null);
          return;
        }
        await new Promise<void>((res) => {
          wake = res;
          // inotify may coalesce or miss a write on some filesystems; a slow timer backs it up.
          setTimeout(res, 500).unref();
        });
        wake = undefined;
      }
    } catch (e) {
      stream.destroy(e as Error);
    } finally {
      reading = false;
    }
  }
  return stream;
}
