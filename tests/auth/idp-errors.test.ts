import { ClientError, ResponseBodyError } from 'openid-client';
import { describe, expect, it } from 'vitest';
import { checkRefreshedIdToken, classifyIdpError, IdTokenChangedError, translateIdpError } from '../../src/auth/oidc.ts';
import { GatehouseError } from '../../src/errors.ts';
import { unsignedJwt } from '../helpers/token-kit.ts';

/** The shape openid-client gives an OAuth error answer (ResponseBodyError): its code and the IdP's `error`. */
const oauthError = (error: string) =>
  Object.assign(new Error(`server responded with an error: ${error}`), { code: 'OAUTH_RESPONSE_BODY_ERROR', error, status: 400 });

/** openid-client's ClientError as its errorHandler builds one: a code, and for a wrong HTTP answer the Response as cause. */
const clientError = (code: string, cause?: unknown) => Object.assign(new ClientError('x', { cause }), { code });
const answer = (status: number) => new Response('<html>oops</html>', { status, headers: { 'content-type': 'text/html' } });
/** What fetch() rejects with when the connection fails: a bare TypeError, the socket error as its cause. */
const fetchFailed = (code: string) => new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code }) });

describe('openid-client errors are classified in one place (auth/oidc.ts), by code and OAuth error', () => {
  it.each([
    ['invalid_grant', oauthError('invalid_grant'), 'invalid_grant'],
    ['access_denied', oauthError('access_denied'), 'access_denied'],
    ['another OAuth error', oauthError('invalid_client'), 'failed'],
    ['a network failure', Object.assign(new Error('fetch failed'), { code: 'ECONNREFUSED' }), 'failed'],
    ['invalid_grant in the message only', new Error('invalid_grant'), 'failed'],
    ['idp_unavailable before discovery', new GatehouseError('idp_unavailable'), 'failed'],
    ['a thrown string', 'boom', 'failed'],
  ])('%s → %s', (_name, err, kind) => {
    expect(classifyIdpError(err).kind).toBe(kind);
  });

  it('keeps the code and OAuth error for the log', () => {
    expect(classifyIdpError(oauthError('invalid_client'))).toMatchObject({
      kind: 'failed',
      code: 'OAUTH_RESPONSE_BODY_ERROR',
      error: 'invalid_client',
      reason: 'OAUTH_RESPONSE_BODY_ERROR (invalid_client)',
    });
  });

  it('on the login path, a refused grant is login_failed and anything else idp_error', () => {
    expect(translateIdpError(oauthError('invalid_grant'), 'code exchange')).toMatchObject({
      code: 'login_failed',
      logDetail: 'code exchange: OAUTH_RESPONSE_BODY_ERROR (invalid_grant)',
    });
    expect(translateIdpError(oauthError('access_denied'), 'code exchange').code).toBe('login_failed');
    const reset = Object.assign(new Error('x'), { code: 'ECONNRESET' });
    expect(translateIdpError(reset, 'userinfo')).toMatchObject({ code: 'idp_error', logDetail: 'userinfo: ECONNRESET' });
    const known = new GatehouseError('idp_unavailable');
    expect(translateIdpError(known, 'code exchange')).toBe(known);
  });
});

/**
 * Issue 15 §2: a failed refresh is sorted once. Transient (the IdP did not answer: keep the session, try again
 * later) or fatal (the IdP refused the grant, or answered 200 with something that fails validation: end the session).
 */
describe('a failed refresh is transient or fatal, decided by code, status and OAuth error', () => {
  it.each([
    ['fetch failed: connection refused', fetchFailed('ECONNREFUSED'), 'fetch failed (ECONNREFUSED)'],
    ['fetch failed: socket closed mid-answer', fetchFailed('UND_ERR_SOCKET'), 'fetch failed (UND_ERR_SOCKET)'],
    ['a socket error code', Object.assign(new Error('x'), { code: 'ECONNRESET' }), 'ECONNRESET'],
    ['a timeout', clientError('OAUTH_TIMEOUT', new DOMException('x', 'TimeoutError')), 'OAUTH_TIMEOUT'],
    ['503 with an HTML page', clientError('OAUTH_RESPONSE_IS_NOT_CONFORM', answer(503)), 'OAUTH_RESPONSE_IS_NOT_CONFORM (HTTP 503)'],
    ['502 from a load balancer', clientError('OAUTH_RESPONSE_IS_NOT_CONFORM', answer(502)), 'OAUTH_RESPONSE_IS_NOT_CONFORM (HTTP 502)'],
    ['429 without JSON', clientError('OAUTH_RESPONSE_IS_NOT_JSON', answer(429)), 'OAUTH_RESPONSE_IS_NOT_JSON (HTTP 429)'],
    ['an OAuth error that is not about the grant', oauthError('invalid_client'), 'OAUTH_RESPONSE_BODY_ERROR (invalid_client)'],
    ['idp_unavailable before discovery', new GatehouseError('idp_unavailable'), 'idp_unavailable'],
  ])('transient: %s', (_name, err, reason) => {
    expect(classifyIdpError(err)).toMatchObject({ transient: true, reason });
  });

  it.each([
    ['invalid_grant', oauthError('invalid_grant'), 'OAUTH_RESPONSE_BODY_ERROR (invalid_grant)'],
    [
      'invalid_grant as openid-client throws it',
      new ResponseBodyError('x', { cause: { error: 'invalid_grant' }, response: answer(400) }),
      'OAUTH_RESPONSE_BODY_ERROR (invalid_grant)',
    ],
    ['a wrong iss, aud, azp or nonce', clientError('OAUTH_JWT_CLAIM_COMPARISON_FAILED'), 'OAUTH_JWT_CLAIM_COMPARISON_FAILED'],
    ['a missing claim or a bad signature', clientError('OAUTH_INVALID_RESPONSE'), 'OAUTH_INVALID_RESPONSE'],
    ['an expired ID token', clientError('OAUTH_JWT_TIMESTAMP_CHECK_FAILED'), 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED'],
    ['no key for the kid', clientError('OAUTH_KEY_SELECTION_FAILED'), 'OAUTH_KEY_SELECTION_FAILED'],
    ['alg none or token_type mac', clientError('OAUTH_UNSUPPORTED_OPERATION'), 'OAUTH_UNSUPPORTED_OPERATION'],
    ['200 with HTML', clientError('OAUTH_RESPONSE_IS_NOT_JSON', answer(200)), 'OAUTH_RESPONSE_IS_NOT_JSON (HTTP 200)'],
    ['a refreshed ID token for another user', new IdTokenChangedError('sub'), 'ID token changed its sub'],
    ['our own call got wrong', Object.assign(new TypeError('x'), { code: 'ERR_INVALID_ARG_TYPE' }), 'ERR_INVALID_ARG_TYPE'],
    ['something unknown', new Error('who knows'), 'Error'],
  ])('fatal: %s', (_name, err, reason) => {
    expect(classifyIdpError(err)).toMatchObject({ transient: false, reason });
  });
});

describe('a refreshed ID token must continue the login identity (OIDC Core 12.2)', () => {
  const login = { iss: 'https://op.example', sub: 'alice', aud: 'gatehouse', exp: 2e9, iat: 1e9 };
  const original = { sub: 'alice', idToken: unsignedJwt(login) };
  const refreshed = (change: Record<string, unknown>) => ({ ...login, ...change }) as Parameters<typeof checkRefreshedIdToken>[0];
  const changedClaim = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      return err instanceof IdTokenChangedError ? err.claim : `not IdTokenChangedError: ${String(err)}`;
    }
    return undefined;
  };

  it.each([
    ['the same identity, new times', { iat: 1e9 + 60, exp: 2e9 + 60 }, undefined],
    ['aud as a one-element array', { aud: ['gatehouse'] }, undefined],
    ['another sub', { sub: 'mallory' }, 'sub'],
    ['another iss', { iss: 'https://op.example/' }, 'iss'],
    ['another aud', { aud: ['gatehouse', 'other'], azp: 'gatehouse' }, 'aud'],
    ['an azp the login token did not have', { azp: 'gatehouse' }, 'azp'],
  ])('%s', (_name, change, claim) => {
    expect(changedClaim(() => checkRefreshedIdToken(refreshed(change), original))).toBe(claim);
  });

  it('no ID token in the refresh response is fine (OIDC Core 12.2: it may be left out)', () => {
    expect(changedClaim(() => checkRefreshedIdToken(undefined, original))).toBeUndefined();
  });
});
