import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { IdentityResolver } from '../auth/identity.ts';
import type { RequiredClaims } from '../config/types.ts';
import { GatehouseError } from '../errors.ts';
import { compileClaimCheck } from '../policy/claims.ts';
import { compileOriginPolicy, isCrossSiteRequest } from '../policy/origin.ts';
import { DUPLICATE_COOKIE, readSessionCookie } from '../session/cookie.ts';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * What the guard reads of a request: Express's Request has it (originalUrl and baseUrl are its), without this
 * module depending on Express (only http/ and routes.ts may).
 */
export interface GuardedRequest {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  /** The URL as received, query included. */
  readonly originalUrl: string;
  /** The mount path as it matched (`/admin`, or `/ADMIN`: mount paths match case-insensitively). */
  readonly baseUrl: string;
}

/** Who an admin call came from, for its audit line: the token holder, or an operator by `sub`. */
export type AdminActor = { readonly kind: 'token' } | { readonly kind: 'operator'; readonly sub: string };

export const describeActor = (actor: AdminActor): string => (actor.kind === 'token' ? 'admin-token' : `operator:${actor.sub}`);

/** Operators authorised by their session's claims: `admin.requireClaims` from the running config.yml. */
export interface OperatorSessions {
  readonly identity: IdentityResolver;
  readonly cookieName: string;
  /** APP_BASE_URL's origin: an unsafe call from a browser must come from it. */
  readonly selfOrigin: string;
  readonly requireClaims: () => RequiredClaims | undefined;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The admin credential check, as Express middleware: what /admin and the main port's /metrics sit behind.
 * `X-Admin-Token` equal to ADMIN_TOKEN, or an operator's session meeting `admin.requireClaims`; neither configured,
 * the guarded routes do not exist (404). A token in the query string is refused outright, and a token that is sent
 * but wrong never falls back to the session. A user's session without the claims never suffices.
 * `onActor` receives who passed, for the audit line.
 */
export function createAdminGuard(deps: {
  adminToken: string | undefined;
  operators?: OperatorSessions;
  onActor?: (req: GuardedRequest, actor: AdminActor) => void;
}): (req: GuardedRequest, res: { setHeader(name: string, value: string): unknown }, next: (err?: unknown) => void) => void {
  const expected = deps.adminToken === undefined ? undefined : digest(deps.adminToken);
  const operators = deps.operators;
  const sameOrigin = operators ? compileOriginPolicy(operators.selfOrigin, []) : undefined;
  const admitOperator = async (req: GuardedRequest): Promise<AdminActor> => {
    const secret = readSessionCookie(req.headers.cookie, operators?.cookieName ?? '');
    if (secret === undefined || secret === DUPLICATE_COOKIE || operators === undefined)
      throw new GatehouseError('admin_unauthorized', { logDetail: 'no admin token and no session' });
    const principal = await operators.identity.resolve(secret, undefined, 'optional').catch((err: unknown) => {
      if (err instanceof GatehouseError && err.status === 401) return undefined;
      throw err;
    });
    if (principal === undefined) throw new GatehouseError('admin_unauthorized', { logDetail: 'session not valid' });
    const required = operators.requireClaims();
    // The same matching as a route rule's requireClaims (policy/claims.ts): one of a list, an array claim by
    // membership, `scope` as its space-separated list. Compiled per call: admin calls are rare, and the
    // requirement follows config reloads.
    if (required === undefined || compileClaimCheck(required, undefined)?.unmet(principal.claims) !== undefined) {
      throw new GatehouseError('admin_forbidden', { logDetail: `session of ${String(principal.claims['sub'])} lacks the admin claims` });
    }
    if (!SAFE.has(req.method)) {
      // The session cookie rides along on any request the browser makes: an unsafe call must say it came from
      // Gatehouse's own origin (a same-origin fetch sends Origin; every current browser sends Sec-Fetch-Site).
      const origin = typeof req.headers.origin === 'string' ? req.headers.origin : undefined;
      const site = typeof req.headers['sec-fetch-site'] === 'string' ? req.headers['sec-fetch-site'] : undefined;
      const refused =
        (origin === undefined && site === undefined) ||
        (site !== undefined && site !== 'same-origin') ||
        isCrossSiteRequest(sameOrigin ?? compileOriginPolicy('null', []), origin, site);
      if (refused) throw new GatehouseError('origin_not_allowed', { logDetail: 'admin call with a session from another origin' });
    }
    return { kind: 'operator', sub: String(principal.claims['sub']) };
  };

  return (req, res, next) => {
    res.setHeader('cache-control', 'no-store');
    const requireClaims = operators?.requireClaims();
    if (expected === undefined && requireClaims === undefined) throw new GatehouseError('not_found');
    // Express matches mount paths case-insensitively: /ADMIN is not the admin API (one spelling, one rule to audit).
    if (req.baseUrl !== req.baseUrl.toLowerCase()) throw new GatehouseError('not_found');
    const search = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?')) : '';
    // Secrets in URLs end up in logs and histories.
    if (/[?&](token|admin_token|x-admin-token)=/i.test(search))
      throw new GatehouseError('admin_unauthorized', { logDetail: 'admin token in the query string' });
    const given = req.headers['x-admin-token'];
    if (given !== undefined) {
      // Hash both sides so the comparison is constant-time regardless of the length the caller sent.
      if (expected === undefined || typeof given !== 'string' || !timingSafeEqual(digest(given), expected)) {
        throw new GatehouseError('admin_unauthorized', { logDetail: 'wrong admin token' });
      }
      deps.onActor?.(req, { kind: 'token' });
      next();
      return;
    }
    if (requireClaims === undefined) throw new GatehouseError('admin_unauthorized', { logDetail: 'missing admin token' });
    admitOperator(req).then((actor) => {
      deps.onActor?.(req, actor);
      next();
    }, next);
  };
}
