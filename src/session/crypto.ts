import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

const ID_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** A fresh 256-bit session id from the CSPRNG, base64url (43 characters). */
export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

/** Rejects malformed ids before any store call (no wildcard, no oversized or odd keys reach Redis). */
export function isWellFormedId(value: string | undefined): value is string {
  return value !== undefined && ID_PATTERN.test(value);
}

/**
 * The store key of a session: a hash of the id, so a Redis dump or KEYS listing yields no usable cookie.
 */
export function storeKeyOf(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

function keyFor(id: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(id, 'base64url'), Buffer.alloc(0), 'gatehouse/session-tokens/v1', 32));
}

/**
 * AES-256-GCM under a key derived from the session id, which only the browser holds:
 * a read of the store alone decrypts nothing. The store key is the AAD, so a blob moved to another key fails.
 */
export function sealTokens(id: string, storeKey: string, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFor(id), iv);
  cipher.setAAD(Buffer.from(storeKey));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/** Undefined when the blob does not open with this id (tampered, moved, or not ours). */
export function openTokens(id: string, storeKey: string, sealed: string): string | undefined {
  try {
    const raw = Buffer.from(sealed, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', keyFor(id), raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(storeKey));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}
