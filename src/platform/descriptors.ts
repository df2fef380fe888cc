/**
 * File descriptors the server holds itself (duplicated sockets, extstore's files): closing one
 * that may already be gone.
 *
 * Not for: descriptors Node.js owns through a handle (close the socket or file handle instead).
 */
import * as fs from 'node:fs';

/** Close `fd` now; one already closed (or never valid) is no error. */
export function closeDescriptor(fd: number): void {
  if (fd < 0) return;
  try {
    fs.closeSync(fd);
  } catch {
    // already closed
  }
}
