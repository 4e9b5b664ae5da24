import { closeSync, openSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A megabyte or so of data_dir kept in a file of its own while there is room, and given up when
 * the disk is full: SQLite needs a little space for its write-ahead log and its shared-memory
 * index even to delete (or to open the spool at a start), and something else may have taken
 * every last byte. Made again once there is room.
 */
export const RESERVE_FILE = 'spool.reserve';
/** Enough for SQLite to move an unfinished log (up to ~1 MB between checkpoints) into the spool. */
const MIN_RESERVE = 1280 * 1024;
const MAX_RESERVE = 4 * 1024 * 1024;

/** 1% of the filesystem, within 1.25 MiB … 4 MiB. */
export function reserveBytes(filesystemBytes: number): number {
  return Math.min(MAX_RESERVE, Math.max(MIN_RESERVE, Math.floor(filesystemBytes / 100)));
}

export function reserveSize(dataDir: string): number {
  try {
    return statSync(join(dataDir, RESERVE_FILE)).size;
  } catch {
    return 0;
  }
}

/** Frees the reserve; true when there was one to free. */
export function releaseReserve(dataDir: string): boolean {
  try {
    unlinkSync(join(dataDir, RESERVE_FILE));
    return true;
  } catch {
    return false;
  }
}

/** Writes the reserve (real blocks, not a sparse file); false when there is no room for it. */
export function makeReserve(dataDir: string, bytes: number): boolean {
  const path = join(dataDir, RESERVE_FILE);
  let fd: number | undefined;
  try {
    fd = openSync(path, 'w', 0o640);
    const block = Buffer.alloc(64 * 1024);
    for (let written = 0; written < bytes; ) written += writeSync(fd, block, 0, Math.min(block.length, bytes - written));
    return true;
  } catch {
    releaseReserve(dataDir);
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
