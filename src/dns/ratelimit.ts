/**
 * Per-source rate limiting: a token bucket per asker address (`rate` queries per second,
 * bursts up to `burst`). Queries over the limit are dropped without an answer, as BIND's
 * response-rate limiting does, so a flood costs the flooder more than the service. The
 * table of buckets is bounded: idle buckets (full again) are swept, and when it is full
 * new sources share one overflow bucket.
 */

export interface RateLimitOptions {
  /** Queries per second per source; 0 turns limiting off. */
  rate: number;
  burst: number;
  maxSources: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { rate: 1000, burst: 2000, maxSources: 65_536 };

interface Bucket { tokens: number; at: number }

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly overflow: Bucket;
  dropped = 0;

  constructor(readonly opts: RateLimitOptions = DEFAULT_RATE_LIMIT, private readonly now: () => number = Date.now) {
    this.overflow = { tokens: opts.burst, at: now() };
  }

  /** Takes one token for `source`; false when it is over its limit. */
  take(source: string): boolean {
    if (this.opts.rate <= 0) return true;
    const t = this.now();
    let b = this.buckets.get(source);
    if (!b) {
      if (this.buckets.size >= this.opts.maxSources) this.sweep(t);
      if (this.buckets.size >= this.opts.maxSources) b = this.overflow;
      else { b = { tokens: this.opts.burst, at: t }; this.buckets.set(source, b); }
    }
    b.tokens = Math.min(this.opts.burst, b.tokens + ((t - b.at) / 1000) * this.opts.rate);
    b.at = t;
    if (b.tokens < 1) { this.dropped++; return false; }
    b.tokens -= 1;
    return true;
  }

  /** Forgets buckets that have refilled completely (their sources have been quiet). */
  sweep(t = this.now()): void {
    const full = (this.opts.burst / this.opts.rate) * 1000;
    for (const [k, b] of this.buckets) if (t - b.at >= full) this.buckets.delete(k);
  }

  get sources(): number { return this.buckets.size; }
}
