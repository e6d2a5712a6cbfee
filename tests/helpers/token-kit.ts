import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { WebSocket } from 'ws';
import { openTokens, parseSessionSecret } from '../../src/session/crypto.ts';
import type { Browser } from './browser.ts';
import type { TestGatehouse } from './gatehouse.ts';
import type { TestIdp } from './idp.ts';

/** A signing key a test controls: handed to the IdP (it then signs with it) or kept to forge tokens. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Private JWK with kid/alg/use, the shape startIdp({ jwks }) takes. */
  readonly privateJwk: Record<string, unknown>;
  readonly publicJwk: Record<string, unknown>;
}

export async function makeSigningKey(
  alg: 'RS256' | 'ES256' = 'RS256',
  kid = `${alg.toLowerCase()}-${Math.random().toString(36).slice(2, 10)}`,
): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, privateJwk, publicJwk };
}

/** Signs `claims` with `key`; `header` overrides the protected header (kid, typ, alg). */
export function signJwt(key: SigningKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.privateKey);
}

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** An unsecured JWT (`alg: none`, empty signature), as an attacker would send it. */
export function unsignedJwt(claims: JWTPayload, header: Record<string, unknown> = {}): string {
  return `${b64({ alg: 'none', typ: 'JWT', ...header })}.${b64(claims)}.`;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The admin API's session id (and the Redis key suffix): sha256(cookie value), base64url. */
export const storeKeyOf = (cookieValue: string) => createHash('sha256').update(cookieValue).digest('base64url');

/** The session cookie a browser holds for a Gatehouse instance, as its value and as a Cookie header. */
export function sessionCookieOf(browser: Browser, gh: TestGatehouse): { value: string; header: string } {
  const name = gh.config.session.cookieName;
  const value = browser.cookie(gh.url, name);
  if (!value) throw new Error(`no ${name} cookie for ${gh.url}`);
  return { value, header: `${name}=${value}` };
}

export interface StoredSession {
  readonly record: Record<string, unknown>;
  readonly tokens: { accessToken: string; refreshToken?: string; idToken?: string };
}

/** A test's own Redis connection, for looking at what Gatehouse stored. */
export function redisClient(url: string): Redis {
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  // Tests that stop Redis on purpose see connection errors here; the assertions are about Gatehouse.
  client.on('error', () => undefined);
  return client;
}

/** The Redis session record behind a cookie, with its tokens opened; undefined when the key is gone. */
export async function readSession(redis: Redis, gh: TestGatehouse, cookieValue: string): Promise<StoredSession | undefined> {
  const key = storeKeyOf(cookieValue);
  const raw = await redis.get(`${gh.config.redis.keyPrefix}s:${key}`);
  if (raw === null) return undefined;
  const record = JSON.parse(raw) as Record<string, unknown>;
  const secret = parseSessionSecret(cookieValue);
  if (secret === undefined) throw new Error('the cookie value is not a session secret');
  const opened = openTokens(secret, key, String(record['tok']));
  if (opened === undefined) throw new Error('session tokens did not open with the cookie value');
  return { record, tokens: JSON.parse(opened) as StoredSession['tokens'] };
}

/** Polls until `check` holds; returns the elapsed milliseconds, or throws after `timeoutMs`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  intervalMs = 20,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** The IdP's discovery document. */
export async function idpMetadata(idp: TestIdp): Promise<Record<string, string>> {
  const res = await fetch(`${idp.issuer}/.well-known/openid-configuration`);
  return (await res.json()) as Record<string, string>;
}

const basic = (idp: TestIdp, clientId = idp.clientId) =>
  `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(idp.clientSecret)}`).toString('base64')}`;

/** RFC 7009 revocation at the IdP, as the client. */
export async function revokeAtIdp(
  idp: TestIdp,
  token: string,
  hint: 'refresh_token' | 'access_token' = 'refresh_token',
  clientId?: string,
): Promise<number> {
  const meta = await idpMetadata(idp);
  const res = await fetch(meta['revocation_endpoint'] as string, {
    method: 'POST',
    headers: { authorization: basic(idp, clientId), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: hint }),
  });
  await res.body?.cancel();
  return res.status;
}

/** A refresh_token grant at the IdP's token endpoint, as the client: status and OAuth error. */
export async function refreshAtIdp(idp: TestIdp, refreshToken: string, clientId?: string): Promise<{ status: number; error?: string }> {
  const meta = await idpMetadata(idp);
  const res = await fetch(meta['token_endpoint'] as string, {
    method: 'POST',
    headers: { authorization: basic(idp, clientId), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
  });
  const body = (await res.json()) as { error?: string };
  return { status: res.status, ...(body.error ? { error: body.error } : {}) };
}

export interface OpenWs {
  readonly ws: WebSocket;
  /** Settles when the socket closes, with the close code the client received and when. */
  readonly closed: Promise<{ code: number; reason: string; at: number }>;
}

/** Opens a WebSocket through Gatehouse; rejects with the HTTP status when the upgrade is refused. */
export function openWs(url: string, cookie: string | undefined, headers: Record<string, string> = {}): Promise<OpenWs> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers: { ...(cookie ? { cookie } : {}), ...headers } });
    const closed = new Promise<{ code: number; reason: string; at: number }>((res) => {
      ws.on('close', (code, reason) => res({ code, reason: reason.toString(), at: Date.now() }));
    });
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`upgrade refused with ${res.statusCode}`), { status: res.statusCode }));
      res.resume();
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
}

/** Status an upgrade attempt got (101 when it opened, then closed again by the test). */
export async function upgradeStatus(url: string, cookie: string | undefined, headers: Record<string, string> = {}): Promise<number> {
  try {
    const { ws } = await openWs(url, cookie, headers);
    ws.terminate();
    return 101;
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === undefined) throw err;
    return status;
  }
}

/** JSON body and status of a response, consuming it. */
export async function jsonOf(res: Response): Promise<{ status: number; body: Record<string, unknown> }> {
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { raw: text };
  }
  return { status: res.status, body };
}
