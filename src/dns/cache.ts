/**
 * A small bounded cache of forwarded answers: least recently used first out, bounded by
 * entries and by bytes, each entry living for the smallest TTL of its records (capped).
 * A Map keeps insertion order, so re-inserting on a hit makes its first key the LRU one.
 */

export interface CacheEntry {
  answer: Buffer;
  ttlOffsets: number[];
  storedAt: number;
  expiresAt: number;
}

export interface CacheLimits {
  maxEntries: number;
  maxBytes: number;
  /** Longest life of a positive answer, seconds. */
  maxTtl: number;
  /** Longest life of a negative answer (NXDOMAIN / no data), seconds (RFC 2308 §5 caps it too). */
  maxNegativeTtl: number;
}

export const DEFAULT_CACHE_LIMITS: CacheLimits = { maxEntries: 4096, maxBytes: 4 << 20, maxTtl: 3600, maxNegativeTtl: 300 };

export class AnswerCache {
  private readonly map = new Map<string, CacheEntry>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly limits: CacheLimits = DEFAULT_CACHE_LIMITS, private readonly now: () => number = Date.now) {}

  get size(): number { return this.map.size; }
  get byteSize(): number { return this.bytes; }

  get(key: string): CacheEntry | undefined {
    const e = this.map.get(key);
    if (!e) { this.misses++; return undefined; }
    if (e.expiresAt <= this.now()) {
      this.delete(key);
      this.misses++;
      return undefined;
    }
    this.map.delete(key);
    this.map.set(key, e);
    this.hits++;
    return e;
  }

  /** Stores an answer for `ttl` seconds (capped); a TTL of 0 is not stored. */
  set(key: string, answer: Buffer, ttlOffsets: number[], ttl: number, negative: boolean): void {
    const life = Math.min(ttl, negative ? this.limits.maxNegativeTtl : this.limits.maxTtl);
    if (!(life > 0) || answer.length > this.limits.maxBytes / 16) return;
    this.delete(key);
    const t = this.now();
    this.map.set(key, { answer, ttlOffsets, storedAt: t, expiresAt: t + life * 1000 });
    this.bytes += answer.length + key.length;
    while (this.map.size > this.limits.maxEntries || this.bytes > this.limits.maxBytes) {
      const oldest = this.map.keys().next().value as string;
      this.delete(oldest);
    }
  }

  private delete(key: string): void {
    const e = this.map.get(key);
    if (!e) return;
    this.bytes -= e.answer.length + key.length;
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}
