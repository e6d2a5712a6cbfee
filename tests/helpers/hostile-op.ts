import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

/**
 * One way for the hostile OP to misbehave, after the OpenID Foundation conformance suite's condition classes
 * (`AddInvalidIssValueToIdToken` appends "1" to the issuer, and so on). `valid` is an honest answer.
 *
 * ID token: `bad-sig` (signature bytes flipped), `alg-none` (unsigned), `hs256-client-secret` (HS256 keyed with the
 * client secret), `alg-swap-es256` (a valid ES256 signature where RS256 is registered), `iss-suffix`, `iss-missing`,
 * `aud-suffix`, `aud-missing`, `aud-multi-no-azp`, `aud-multi-azp-other`, `aud-array-single` (honest),
 * `azp-added` (azp = client id, one audience: honest at login, a change at refresh), `aud-added` (a second audience
 * with azp = client id: the same), `iat-missing`, `exp-past` (10 min ago), `exp-missing`, `sub-missing`,
 * `sub-other`, `nonce-suffix`, `nonce-missing`, `kid-absent` (no `kid` header), `no-id-token`.
 * Token response: `token-type-mixed-case` ("bEARER"), `no-expires-in`, `token-type-mac`.
 * Userinfo: `userinfo-sub-mismatch`, `email-verified-elsewhere` (with the ID token). Refusal: `invalid-grant` (400 `invalid_grant`). Transport: `http-503` (an HTML
 * 503), `close` (the connection is dropped unanswered).
 */
export type Mutation =
  | 'valid'
  /** An honest token response, but the JWKS endpoint drops every connection (the ID token's keys cannot be fetched). */
  | 'jwks-down'
  | 'bad-sig'
  | 'alg-none'
  | 'hs256-client-secret'
  | 'alg-swap-es256'
  | 'iss-suffix'
  | 'iss-missing'
  | 'aud-suffix'
  | 'aud-missing'
  | 'aud-multi-no-azp'
  | 'aud-multi-azp-other'
  | 'aud-array-single'
  | 'azp-added'
  | 'aud-added'
  | 'iat-missing'
  | 'exp-past'
  | 'exp-missing'
  | 'sub-missing'
  | 'sub-other'
  | 'nonce-suffix'
  | 'nonce-missing'
  | 'kid-absent'
  | 'no-id-token'
  | 'token-type-mixed-case'
  | 'no-expires-in'
  | 'token-type-mac'
  | 'userinfo-sub-mismatch'
  /** The ID token names an address it does not vouch for; userinfo vouches (email_verified: true) for another. */
  | 'email-verified-elsewhere'
  | 'invalid-grant'
  | 'http-503'
  | 'close';

/** The endpoints the OP counts requests on; `token` is the code exchange, `refresh` the refresh_token grant. */
export type Endpoint = 'discovery' | 'authorize' | 'token' | 'refresh' | 'userinfo' | 'jwks';

export interface HostileOp {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Env for startGatehouse: issuer, client id and secret. */
  readonly env: Readonly<Record<string, string>>;
  /** How the code exchange (and the userinfo call after it) misbehaves. */
  login: Mutation;
  /** How the refresh_token grant misbehaves. */
  refresh: Mutation;
  /** `iss-suffix`: the discovery document names the issuer + "/INVALID" (a URL still; OIDF `oidcc-client-test-discovery-issuer-mismatch`). */
  discovery: 'valid' | 'iss-suffix';
  /** The algorithm honest ID tokens are signed with. */
  alg: 'RS256' | 'ES256';
  /** The `sub` the next login gets. */
  user: string;
  /** `expires_in` of the access tokens issued. */
  accessTokenTtlSeconds: number;
  /** Requests per endpoint since start. */
  readonly counts: Record<Endpoint, number>;
  /**
   * Signs RS256 ID tokens with another key from now on: `announced`, the second RSA key, in the JWKS from the
   * start; `unannounced`, a new key the JWKS gets only now.
   */
  rotate(kind: 'announced' | 'unannounced'): Promise<void>;
  close(): Promise<void>;
}

interface Grant {
  readonly sub: string;
  readonly nonce: string;
  readonly challenge: string;
  readonly redirectUri: string;
}

interface SigningKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

async function makeKey(alg: 'RS256' | 'ES256', kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Keys no client can use, each with its own kid: a JWKS holding them must still work (RFC 7517 §5). */
const JUNK_KEYS: JWK[] = [
  { kty: 'AKP', alg: 'ML-DSA-99', kid: 'junk-akp', pub: 'AAAA', use: 'sig' } as JWK,
  { kty: 'made-up', kid: 'junk-made-up' } as JWK,
];

function readBody(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** client_secret_basic: both halves form-urlencoded before base64 (RFC 6749 §2.3.1). */
function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const un = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
  return { id: un(decoded.slice(0, colon)), secret: un(decoded.slice(colon + 1)) };
}

/**
 * A small OpenID Provider on 127.0.0.1:0 that a test tells to misbehave, one `Mutation` at a time, at the code
 * exchange (`login`) or at the refresh_token grant (`refresh`): discovery (advertising `none` and HS256 too, and
 * the RFC 9207 `iss` parameter), an authorization endpoint that redirects straight back with code, state and iss
 * (no UI; PKCE S256 checked at the token endpoint), a token endpoint (client_secret_basic, single-use codes,
 * rotating refresh tokens), userinfo and a JWKS holding the RSA key, the next RSA key (pre-published for
 * rotation), an EC key and two unusable keys. ID tokens are signed with jose.
 */
export async function startHostileOp(): Promise<HostileOp> {
  const clientId = 'hostile-client';
  const clientSecret = 'hostile-client-secret-0123456789abcdef';
  const rsa = [await makeKey('RS256', 'rsa-1'), await makeKey('RS256', 'rsa-2')];
  const ec = await makeKey('ES256', 'ec-1');
  let signingRsa = rsa[0] as SigningKey;
  const codes = new Map<string, Grant>();
  const refreshTokens = new Map<string, { sub: string }>();
  const accessTokens = new Map<string, { sub: string }>();
  const counts: Record<Endpoint, number> = { discovery: 0, authorize: 0, token: 0, refresh: 0, userinfo: 0, jwks: 0 };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: 'server_error', error_description: String(err) });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const op: HostileOp = {
    issuer,
    clientId,
    clientSecret,
    env: { OIDC_ISSUER: issuer, OIDC_CLIENT_ID: clientId, OIDC_CLIENT_SECRET: clientSecret },
    login: 'valid',
    refresh: 'valid',
    discovery: 'valid',
    alg: 'RS256',
    user: 'alice',
    accessTokenTtlSeconds: 60,
    counts,
    async rotate(kind) {
      if (kind === 'announced') signingRsa = rsa[1] as SigningKey;
      else rsa.push((signingRsa = await makeKey('RS256', `rsa-${rsa.length + 1}`)));
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  async function idToken(mutation: Mutation, sub: string, nonce: string | undefined): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const claims: JWTPayload & Record<string, unknown> = { iss: issuer, sub, aud: clientId, iat: now, exp: now + 300 };
    if (nonce !== undefined) claims['nonce'] = nonce;
    switch (mutation) {
      case 'iss-suffix':
        claims.iss = `${issuer}1`;
        break;
      case 'iss-missing':
        delete claims.iss;
        break;
      case 'aud-suffix':
        claims.aud = `${clientId}1`;
        break;
      case 'aud-missing':
        delete claims.aud;
        break;
      case 'aud-multi-no-azp':
        claims.aud = [clientId, 'other-client'];
        break;
      case 'aud-multi-azp-other':
        claims.aud = [clientId, 'other-client'];
        claims['azp'] = 'other-client';
        break;
      case 'aud-array-single':
        claims.aud = [clientId];
        break;
      case 'azp-added':
        claims['azp'] = clientId;
        break;
      case 'aud-added':
        claims.aud = [clientId, 'other-client'];
        claims['azp'] = clientId;
        break;
      case 'iat-missing':
        delete claims.iat;
        break;
      case 'exp-past':
        claims.iat = now - 900;
        claims.exp = now - 600;
        break;
      case 'exp-missing':
        delete claims.exp;
        break;
      case 'sub-missing':
        delete claims.sub;
        break;
      case 'sub-other':
        claims.sub = `${sub}-other`;
        break;
      case 'nonce-suffix':
        claims['nonce'] = `${nonce ?? ''}1`;
        break;
      case 'nonce-missing':
        delete claims['nonce'];
        break;
      case 'email-verified-elsewhere':
        claims['email'] = `${sub}@typed-at-signup.example`;
        break;
      default:
        break;
    }
    if (mutation === 'alg-none') return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
    if (mutation === 'hs256-client-secret') {
      return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(clientSecret));
    }
    const key = mutation === 'alg-swap-es256' || op.alg === 'ES256' ? ec : signingRsa;
    const header = mutation === 'kid-absent' ? { alg: key.alg, typ: 'JWT' } : { alg: key.alg, typ: 'JWT', kid: key.kid };
    const jwt = await new SignJWT(claims).setProtectedHeader(header).sign(key.privateKey);
    if (mutation !== 'bad-sig') return jwt;
    const [h, p, s = ''] = jwt.split('.');
    const sig = Buffer.from(s, 'base64url');
    sig[0] = (sig[0] ?? 0) ^ 0xff;
    return `${h}.${p}.${sig.toString('base64url')}`;
  }

  /** The token response for `sub`, with the grant's mutation applied (or a transport failure, answered here). */
  async function issue(res: ServerResponse, mutation: Mutation, sub: string, nonce: string | undefined): Promise<void> {
    const accessToken = randomBytes(24).toString('base64url');
    const refreshToken = randomBytes(24).toString('base64url');
    accessTokens.set(accessToken, { sub });
    refreshTokens.set(refreshToken, { sub });
    const body: Record<string, unknown> = {
      access_token: accessToken,
      token_type: mutation === 'token-type-mixed-case' ? 'bEARER' : mutation === 'token-type-mac' ? 'mac' : 'Bearer',
      refresh_token: refreshToken,
      scope: 'openid profile email offline_access',
    };
    if (mutation !== 'no-expires-in') body['expires_in'] = op.accessTokenTtlSeconds;
    if (mutation !== 'no-id-token') body['id_token'] = await idToken(mutation, sub, nonce);
    json(res, 200, body);
  }

  async function token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readBody(req);
    const grantType = form.get('grant_type');
    const mutation = grantType === 'refresh_token' ? op.refresh : op.login;
    counts[grantType === 'refresh_token' ? 'refresh' : 'token']++;
    if (mutation === 'close') return void req.socket.destroy();
    if (mutation === 'http-503') {
      res.writeHead(503, { 'content-type': 'text/html' });
      return void res.end('<html><body>Service Unavailable</body></html>');
    }
    if (mutation === 'invalid-grant') return json(res, 400, { error: 'invalid_grant', error_description: 'grant revoked' });
    const creds = basicCredentials(req.headers.authorization);
    if (creds?.id !== clientId || creds.secret !== clientSecret) return json(res, 401, { error: 'invalid_client' });
    if (grantType === 'authorization_code') {
      const code = form.get('code') ?? '';
      const grant = codes.get(code);
      codes.delete(code);
      const verifier = form.get('code_verifier') ?? '';
      if (!grant || grant.redirectUri !== form.get('redirect_uri')) return json(res, 400, { error: 'invalid_grant' });
      if (createHash('sha256').update(verifier).digest('base64url') !== grant.challenge) return json(res, 400, { error: 'invalid_grant' });
      return issue(res, mutation, grant.sub, grant.nonce);
    }
    if (grantType === 'refresh_token') {
      const presented = form.get('refresh_token') ?? '';
      const grant = refreshTokens.get(presented);
      // Rotation: a refresh token works once, as at most production IdPs.
      refreshTokens.delete(presented);
      if (!grant) return json(res, 400, { error: 'invalid_grant' });
      return issue(res, mutation, grant.sub, undefined);
    }
    json(res, 400, { error: 'unsupported_grant_type' });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', issuer);
    switch (`${req.method} ${url.pathname}`) {
      case 'GET /.well-known/openid-configuration':
        counts.discovery++;
        return json(res, 200, {
          issuer: op.discovery === 'iss-suffix' ? `${issuer}/INVALID` : issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          userinfo_endpoint: `${issuer}/userinfo`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          grant_types_supported: ['authorization_code', 'refresh_token'],
          code_challenge_methods_supported: ['S256'],
          // A hostile OP advertises what it would like to downgrade to: the client's pinned alg must win.
          id_token_signing_alg_values_supported: ['RS256', 'ES256', 'HS256', 'none'],
          token_endpoint_auth_methods_supported: ['client_secret_basic'],
          authorization_response_iss_parameter_supported: true,
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
        });
      case 'GET /authorize': {
        counts.authorize++;
        const q = url.searchParams;
        const redirectUri = q.get('redirect_uri');
        const state = q.get('state');
        const nonce = q.get('nonce');
        const challenge = q.get('code_challenge');
        if (q.get('client_id') !== clientId || q.get('response_type') !== 'code' || q.get('code_challenge_method') !== 'S256') {
          return json(res, 400, { error: 'invalid_request' });
        }
        if (!redirectUri || !state || !nonce || !challenge) return json(res, 400, { error: 'invalid_request' });
        const code = randomBytes(16).toString('base64url');
        codes.set(code, { sub: op.user, nonce, challenge, redirectUri });
        const back = new URL(redirectUri);
        back.searchParams.set('code', code);
        back.searchParams.set('state', state);
        back.searchParams.set('iss', issuer);
        res.writeHead(302, { location: back.href });
        return void res.end();
      }
      case 'POST /token':
        return token(req, res);
      case 'GET /userinfo': {
        counts.userinfo++;
        const at = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
        const grant = at ? accessTokens.get(at) : undefined;
        if (!grant) {
          res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
          return void res.end();
        }
        const sub = op.login === 'userinfo-sub-mismatch' ? `${grant.sub}invalid` : grant.sub;
        const verified = op.login === 'email-verified-elsewhere' ? { email_verified: true } : {};
        return json(res, 200, { sub, email: `${grant.sub}@example.com`, ...verified, name: `User ${grant.sub}` });
      }
      case 'GET /jwks':
        counts.jwks++;
        if (op.refresh === 'jwks-down') return void res.socket?.destroy();
        return json(res, 200, { keys: [...rsa.map((k) => k.publicJwk), ec.publicJwk, ...JUNK_KEYS] });
      default:
        return json(res, 404, { error: 'not_found' });
    }
  }

  return op;
}
