/**
 * Bytes a group of buffers may hold at once (message bodies on their way in, over every SMTP
 * session). Whoever cannot take from it writes to disk instead of holding memory.
 */
export class MemoryBudget {
  private used = 0;

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get inUse(): number {
    return this.used;
  }

  /** Reserves `bytes` if they fit; false when they would pass the limit. */
  tryTake(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}
