/**
 * Checks a username and password against the configured basic users so that the answer
 * takes the same time whether the user is unknown, the password is wrong, or which kind of
 * hash the user has:
 *
 * - usernames are compared as HMAC digests against every user, without stopping early;
 * - every attempt runs exactly one verification per "cost class" present in the config
 *   (plain, each bcrypt cost, each argon2 parameter set): against the user's own hash for
 *   the user's class and against a dummy hash of the same parameters for every other one.
 *
 * Successful checks are remembered briefly (keyed by an HMAC of the credentials) so a
 * client sending basic auth on every request pays for bcrypt/argon2 once per minute, and
 * concurrent slow verifications are bounded so failed attempts cannot eat every core.
 */

import { type Clock, realClock } from "../../common/clock.ts";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createCountLimiter } from "../../common/limiter.ts";
import type { BasicUser } from "./config.ts";
import { passwordKind } from "./config.ts";

export type PasswordCheck =
  | { ok: true; user: BasicUser }
  | { ok: false; busy?: boolean };

export interface PasswordChecker {
  check(username: string, password: string): Promise<PasswordCheck>;
  /** The user, when these exact credentials passed a check a short while ago (no hashing). */
  remembered(username: string, password: string): BasicUser | undefined;
  /** The check of these exact credentials already running, if one is. */
  inProgress(username: string, password: string): Promise<PasswordCheck> | undefined;
}

export interface CheckerOptions {
  clock?: Clock;
  /** How long a successful check is remembered (ms). */
  cacheTtl?: number;
  /** Verifications with slow hashes running at once; more wait in line. */
  maxConcurrent?: number;
  /** Attempts allowed to wait; beyond, the check answers busy at once. */
  maxQueued?: number;
}

interface Verifier {
  /** Attempts with the same class cost the same. */
  cls: string;
  slow: boolean;
  verify(password: string): Promise<boolean>;
}

interface Entry {
  user: BasicUser;
  nameDigest: Buffer;
  verifier: Verifier;
}

/** Builds the checker; hashes the dummy passwords up front (a few hundred ms at most). */
export async function createPasswordChecker(
  users: BasicUser[],
  options: CheckerOptions = {},
): Promise<PasswordChecker> {
  const clock = options.clock ?? realClock;
  const now = () => clock.now();
  const cacheTtl = options.cacheTtl ?? 60_000;
  const key = crypto.getRandomValues(new Uint8Array(32));
  const mac = (text: string) => createHmac("sha256", key).update(text, "utf8").digest();

  const entries: Entry[] = [];
  for (const user of users) {
    entries.push({
      user,
      nameDigest: mac(`user\0${user.username}`),
      verifier: await verifierFor(user.password, mac),
    });
  }
  // One dummy per class, so attempts against other classes cost the same as real ones.
  const dummies = new Map<string, Verifier>();
  for (const e of entries) {
    if (!dummies.has(e.verifier.cls)) {
      dummies.set(e.verifier.cls, await dummyLike(e.user.password, mac));
    }
  }
  if (dummies.size === 0) dummies.set("plain", await verifierFor(randomSecret(), mac));
  const anySlow = [...dummies.values()].some((v) => v.slow);
  const limit = createLimiter(options.maxConcurrent ?? 2, options.maxQueued ?? 256);

  const remembered = new Map<string, { user: BasicUser; until: number }>();

  async function verifyAll(username: string, password: string): Promise<BasicUser | undefined> {
    const digest = mac(`user\0${username}`);
    let match: Entry | undefined;
    for (const e of entries) {
      const same = timingSafeEqual(digest, e.nameDigest);
      if (same && !match) match = e;
    }
    let ok = false;
    for (const [cls, dummy] of dummies) {
      if (match && match.verifier.cls === cls) ok = await match.verifier.verify(password);
      else await dummy.verify(password);
    }
    return ok && match ? match.user : undefined;
  }

  const memoKey = (username: string, password: string) =>
    mac(`memo\0${username.length}:${username}\0${password}`).toString("base64");
  function memoized(memo: string): BasicUser | undefined {
    const hit = remembered.get(memo);
    if (hit && hit.until > now()) return hit.user;
    if (hit) remembered.delete(memo);
    return undefined;
  }

  // Identical checks running at once (a client's parallel first requests) share one hash.
  const running = new Map<string, Promise<PasswordCheck>>();

  async function verify(memo: string, username: string, password: string): Promise<PasswordCheck> {
    const user = anySlow
      ? await limit(() => verifyAll(username, password))
      : await verifyAll(username, password);
    if (user === null) return { ok: false, busy: true };
    if (!user) return { ok: false };
    if (remembered.size >= 1024) remembered.delete(remembered.keys().next().value!);
    remembered.set(memo, { user, until: now() + cacheTtl });
    return { ok: true, user };
  }

  return {
    remembered: (username, password) => memoized(memoKey(username, password)),
    inProgress: (username, password) => running.get(memoKey(username, password)),
    check(username, password) {
      const memo = memoKey(username, password);
      const hit = memoized(memo);
      if (hit) return Promise.resolve({ ok: true, user: hit });
      const already = running.get(memo);
      if (already) return already;
      const work = verify(memo, username, password).finally(() => running.delete(memo));
      running.set(memo, work);
      return work;
    },
  };
}

function randomSecret(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))));
}

async function verifierFor(stored: string, mac: (t: string) => Buffer): Promise<Verifier> {
  switch (passwordKind(stored)) {
    case "bcrypt": {
      const bcrypt = (await import("bcryptjs")).default;
      return {
        cls: `bcrypt:${stored.slice(4, 6)}`,
        slow: true,
        verify: (p) => bcrypt.compare(p, stored),
      };
    }
    case "argon2": {
      const { argon2Verify } = await import("hash-wasm");
      return {
        cls: argon2Class(stored),
        slow: true,
        verify: (p) => argon2Verify({ password: p, hash: stored }),
      };
    }
    default: {
      // Comparing digests makes the comparison independent of where the strings differ
      // and of their lengths.
      const digest = mac(`pass\0${stored}`);
      return {
        cls: "plain",
        slow: false,
        verify: (p) => Promise.resolve(timingSafeEqual(mac(`pass\0${p}`), digest)),
      };
    }
  }
}

/** A verifier with the same cost as `stored` whose password nobody knows. */
async function dummyLike(stored: string, mac: (t: string) => Buffer): Promise<Verifier> {
  const secret = randomSecret();
  switch (passwordKind(stored)) {
    case "bcrypt": {
      const bcrypt = (await import("bcryptjs")).default;
      const hash = await bcrypt.hash(secret, Number(stored.slice(4, 6)));
      return verifierFor(hash.replace(/^\$2[aby]\$/, stored.slice(0, 4)), mac);
    }
    case "argon2": {
      const hw = await import("hash-wasm");
      const [, variant, m, t, p, , hashB64] = argon2Parts(stored);
      const make = variant === "id" ? hw.argon2id : variant === "i" ? hw.argon2i : hw.argon2d;
      const hash = await make({
        password: secret,
        salt: crypto.getRandomValues(new Uint8Array(16)),
        memorySize: Number(m),
        iterations: Number(t),
        parallelism: Number(p),
        hashLength: Math.floor(hashB64.length * 3 / 4),
        outputType: "encoded",
      });
      return verifierFor(hash, mac);
    }
    default:
      return verifierFor(secret, mac);
  }
}

function argon2Parts(stored: string): string[] {
  const m = /^\$argon2(id|i|d)\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([^$]+)\$([^$]+)$/.exec(stored);
  if (!m) throw new Error("not an argon2 hash"); // passwordKind() said it was
  return [...m];
}

function argon2Class(stored: string): string {
  const [, variant, m, t, p, , hashB64] = argon2Parts(stored);
  return `argon2${variant}:m=${m},t=${t},p=${p},len=${Math.floor(hashB64.length * 3 / 4)}`;
}

/**
 * Runs at most `max` tasks at once and lets `queued` more wait (common/limiter.ts); beyond
 * that resolves null at once (the caller answers "busy" rather than queueing without bound).
 */
function createLimiter(max: number, queued: number) {
  const limiter = createCountLimiter(max, queued);
  // Waits here end only with a slot: no timeout, and nothing aborts them.
  const never = new AbortController().signal;
  return async function <T>(task: () => Promise<T>): Promise<T | null> {
    let slot = limiter.tryAcquire();
    if (!slot) {
      const waiting = limiter.acquire(never);
      if (waiting === "full") return null;
      const got = await waiting;
      if (typeof got !== "object" || !("inflight" in got)) return null;
      slot = got;
    }
    try {
      return await task();
    } finally {
      limiter.release(slot);
    }
  };
}
