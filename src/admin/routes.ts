import { createHash } from 'node:crypto';
import express, { Router, type Request, type Response } from 'express';
import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Blocklist } from '../revocation/blocklist.ts';
import type { SessionManager } from '../session/sessions.ts';
import { createAdminGuard, describeActor, type AdminActor, type OperatorSessions } from './auth.ts';
import { HISTORY_MAX, type ConfigState, type ConfigVersion } from './config-state.ts';

/** A session store key: SHA-256, base64url. */
const SESSION_KEY = /^[A-Za-z0-9_-]{43}$/;
const SUBJECT = /^[\x21-\x7e]{1,255}$/;
/** config.yml is a routing table: a megabyte is far beyond any real one, and bounds what a PUT makes the parser do. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * A revocation whose blocklist write Redis did not confirm: its 503 says so (`revocation: 'unconfirmed'`). The
 * write may still take effect (a frozen Redis runs what it was sent when it resumes) or never (a disconnected one
 * never got it); revoking again is harmless, so the caller retries until a 200.
 */
function unconfirmed(err: unknown): never {
  if (err instanceof GatehouseError && err.code === 'session_store_unavailable') {
    throw err.extend({ details: { revocation: 'unconfirmed' } });
  }
  throw err;
}

/**
 * config.yml text fit to show: a password in a URL's userinfo or query (`${VAR}` references stay as written, which is
 * how secrets belong in config.yml). Environment settings (client secret, Redis URL, admin token, cookie keys) are
 * never part of it.
 */
export function redactConfigText(text: string): string {
  return text
    .replace(/([a-z][a-z0-9+.-]*:\/\/[^\s/@'"]*?:)([^\s@/'"]+)@/gi, (_m, head: string, secret: string) =>
      secret.startsWith('${') ? `${head}${secret}@` : `${head}***@`,
    )
    .replace(/([?&](?:password|pass|secret|token|key)=)([^&\s'"#]+)/gi, (_m, head: string, secret: string) =>
      secret.startsWith('${') ? `${head}${secret}` : `${head}***`,
    );
}

const digest12 = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 12);

function describeVersion(v: ConfigVersion, replica: string) {
  return {
    version: v.version,
    digest: v.digest,
    source: v.source.kind,
    by: v.source.by,
    at: v.at,
    replica: v.replica,
    ...(v.version > 0 ? { fromAnotherReplica: v.replica !== replica } : {}),
  };
}

/** `"7"`, `7`, `W/"7"` → 7; `*` → '*'; anything else is a malformed precondition. */
function parseIfMatch(value: string | undefined): number | '*' | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (trimmed === '*') return '*';
  const m = /^(?:W\/)?"?([0-9]{1,15})"?$/.exec(trimmed);
  if (!m) throw new GatehouseError('bad_request', { logDetail: 'malformed If-Match' });
  return Number(m[1]);
}

/**
 * The operator API, mounted at /admin when ADMIN_TOKEN is set or config.yml names `admin.requireClaims` (checked per
 * request: the guard answers 404 while neither is configured). Revocations hold on every replica within the
 * pub/sub latency and close the WebSockets of the sessions they end; configuration changes reach every replica
 * the same way. Every mutation writes one `admin audit` log line: who, what, before/after digests, from where.
 */
export function createAdminRoutes(deps: {
  adminToken: string | undefined;
  operators?: OperatorSessions;
  sessions: SessionManager;
  blocklist: Blocklist;
  maxSessionAgeMs: number;
  log: Logger;
  /** config.yml as shared state; without it the /admin/config routes answer 404. */
  configState?: ConfigState;
  /** What /readyz checks (Redis, the IdP), part of GET /admin/health. */
  readiness: () => Promise<unknown>;
  /** The backend health checker's snapshot (replica, per-backend state, breakers); without it `backends` is null. */
  health?: () => object;
  now?: () => number;
}): Router {
  const now = deps.now ?? Date.now;
  const router = Router();
  const actors = new WeakMap<object, AdminActor>();
  const actorOf = (req: Request): AdminActor => actors.get(req) ?? { kind: 'token' };
  const audit = (req: Request, action: string, fields: Record<string, unknown>): void => {
    deps.log.warn({ audit: true, who: describeActor(actorOf(req)), action, ip: req.ip, ...fields }, 'admin audit');
  };

  router.use(
    createAdminGuard({
      adminToken: deps.adminToken,
      ...(deps.operators ? { operators: deps.operators } : {}),
      onActor: (req, actor) => actors.set(req, actor),
    }),
  );

  router.get('/health', async (_req: Request, res: Response) => {
    const readiness = await deps.readiness();
    if (deps.health) res.json({ ...deps.health(), readiness });
    else res.json({ backends: null, readiness });
  });

  router.get('/sessions', async (req: Request, res: Response) => {
    const sub = typeof req.query['sub'] === 'string' ? req.query['sub'] : undefined;
    if (sub === undefined || !SUBJECT.test(sub))
      throw new GatehouseError('bad_request', { logDetail: 'sessions list without a valid ?sub=' });
    const sessions = await deps.sessions.listUser(sub);
    res.json({
      sub,
      sessions: sessions.map((s) => ({
        storeKey: s.storeKey,
        createdAt: new Date(s.createdAt).toISOString(),
        lastSeenAt: new Date(s.lastSeenAt).toISOString(),
        expiresAt: new Date(s.expiresAt).toISOString(),
        ip: s.ip ?? null,
        userAgent: s.userAgent ?? null,
      })),
    });
  });

  // The session's store key (Session.storeKey, what logs show as `session`), never the cookie value. The
  // parameter was documented as `:id`; the path is the same, so callers of /admin/sessions/:id are unaffected.
  router.delete('/sessions/:storeKey', async (req: Request, res: Response) => {
    const key = String(req.params['storeKey']);
    if (!SESSION_KEY.test(key)) throw new GatehouseError('bad_request', { logDetail: 'malformed session store key' });
    await deps.blocklist.revokeSession(key, now() + deps.maxSessionAgeMs).catch(unconfirmed);
    await deps.sessions.destroy(key);
    audit(req, 'session revoked', { session: key });
    res.json({ revoked: 'session', id: key, storeKey: key });
  });

  router.post('/users/:sub/revoke', async (req: Request, res: Response) => {
    const sub = String(req.params['sub']);
    if (!SUBJECT.test(sub)) throw new GatehouseError('bad_request', { logDetail: 'malformed subject' });
    const notBefore = now();
    await deps.blocklist.revokeUser(sub, notBefore, deps.maxSessionAgeMs).catch(unconfirmed);
    const destroyed = await deps.sessions.destroyUser(sub);
    audit(req, 'user revoked', { sub, sessions: destroyed });
    res.json({ revoked: 'user', sub, sessions: destroyed, notBefore: new Date(notBefore).toISOString() });
  });

  const state = deps.configState;
  if (state) {
    const configBody = express.text({
      type: ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain', 'application/json'],
      limit: MAX_CONFIG_BYTES,
    });
    const restartNote = 'Only config.yml (routing) changes at run time; environment variables take a restart.';

    router.get('/config', (_req: Request, res: Response) => {
      const current = state.current();
      res.setHeader('etag', `"${current.version}"`);
      res.json({
        ...describeVersion(current, state.replica),
        servedBy: state.replica,
        text: redactConfigText(current.text),
        ifMatch: 'required on PUT: the version being replaced, or * to overwrite whatever is current',
        note: restartNote,
      });
    });

    router.put('/config', configBody, async (req: Request, res: Response) => {
      const expected = parseIfMatch(req.headers['if-match']);
      if (expected === undefined)
        throw new GatehouseError('precondition_required', { details: { currentVersion: state.current().version } });
      if (typeof req.body !== 'string' || req.body.trim() === '')
        throw new GatehouseError('config_invalid', {
          details: { problems: ['the body must be config.yml as YAML or JSON (Content-Type application/yaml or application/json)'] },
        });
      const before = state.current();
      const { version, fileWritten } = await state.put(req.body, { kind: 'admin', by: describeActor(actorOf(req)) }, expected);
      audit(req, 'config replaced', { before: digest12(before.text), after: digest12(version.text), version: version.version });
      res.setHeader('etag', `"${version.version}"`);
      res.json({ ...describeVersion(version, state.replica), fileWritten, note: restartNote });
    });

    router.post('/config/reload', async (req: Request, res: Response) => {
      const before = state.current();
      const { version, changed } = await state.reloadFile({ kind: 'file', by: `reload by ${describeActor(actorOf(req))}` });
      audit(req, 'config reloaded', { before: digest12(before.text), after: digest12(version.text), version: version.version, changed });
      res.setHeader('etag', `"${version.version}"`);
      res.json({ ...describeVersion(version, state.replica), changed, note: restartNote });
    });

    router.get('/config/history', async (req: Request, res: Response) => {
      const raw = typeof req.query['limit'] === 'string' ? Number(req.query['limit']) : 20;
      const limit = Number.isInteger(raw) && raw > 0 ? Math.min(raw, HISTORY_MAX) : 20;
      const versions = await state.history(limit);
      res.json({ versions: versions.map((v) => describeVersion(v, state.replica)) });
    });
  }

  return router;
}
