import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

declare const secretBrand: unique symbol;

/**
 * The session cookie's value: the secret only the browser holds, from which the store key is hashed and
 * the token encryption key derived. At run time the cookie string itself (nothing allocated per request);
 * to the type checker no string at all, so it cannot be logged, compared or stored where a store key goes
 * by mistake. Only session/ makes one (parseSessionSecret, newSessionSecret) or reads it (this file, and
 * cookie.ts to write the Set-Cookie value); everything else passes it along.
 */
export interface SessionSecret {
  readonly [secretBrand]: 'SessionSecret';
}

/** A fresh 256-bit session secret from the CSPRNG, base64url (43 characters). */
export function newSessionSecret(): SessionSecret {
  return randomBytes(32).toString('base64url') as unknown as SessionSecret;
}

/** Rejects malformed values before any store call (no wildcard, no oversized or odd keys reach Redis). */
export function isWellFormedId(value: string | undefined): value is string {
  return value !== undefined && ID_PATTERN.test(value);
}

/** The secret a cookie value carries, or undefined when the value is not one Gatehouse could have issued. */
export function parseSessionSecret(value: string | undefined): SessionSecret | undefined {
  return isWellFormedId(value) ? (value as unknown as SessionSecret) : undefined;
}

/** The cookie value of a secret: for writing the Set-Cookie header (session/cookie.ts), nothing else. */
export function secretText(secret: SessionSecret): string {
  return secret as unknown as string;
}

/**
 * A copy of the secret that keeps nothing else alive: a value cut from a Cookie header may share the whole
 * header's memory, which a long-lived map key would then hold.
 */
export function detachedSecret(secret: SessionSecret): SessionSecret {
  return Buffer.from(secretText(secret), 'latin1').toString('latin1') as unknown as SessionSecret;
}

/**
 * The store key of a session: a hash of the secret, so a Redis dump or KEYS listing yields no usable cookie.
 * Safe to log; it is what logs show as `session` and what the admin API takes.
 */
export function storeKeyOf(secret: SessionSecret): string {
  return createHash('sha256').update(secretText(secret)).digest('base64url');
}

function keyFor(secret: SessionSecret): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secretText(secret), 'base64url'), Buffer.alloc(0), 'gatehouse/session-tokens/v1', 32));
}

/**
 * AES-256-GCM under a key derived from the session secret, which only the browser holds:
 * a read of the store alone decrypts nothing. The store key is the AAD, so a blob moved to another key fails.
 */
export function sealTokens(secret: SessionSecret, storeKey: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFor(secret), iv);
  cipher.setAAD(Buffer.from(storeKey));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/** Undefined when the blob does not open with this secret (tampered, moved, or not ours). */
export function openTokens(secret: SessionSecret, storeKey: string, sealed: string): string | undefined {
  try {
    const raw = Buffer.from(sealed, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', keyFor(secret), raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(storeKey));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
