import type { OperatorAction } from './command.ts';
import { lineDiff } from './diff.ts';

export interface OperateOptions {
  readonly action: OperatorAction;
  readonly url: string | undefined;
  readonly json: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** `config apply`: FILE's text (throws when it cannot be read). */
  readonly readFile?: (path: string) => string;
  /** `config apply` without --yes: asks a question, resolves with the answer ('' when there is none). */
  readonly ask?: (question: string) => Promise<string>;
}

/** Exit codes of the operator commands (USAGE in command.ts lists them). */
export const OPERATE_EXIT = { ok: 0, usage: 2, unreachable: 3, refused: 4 } as const;

const DEFAULT_URL = 'http://127.0.0.1:8080';

/**
 * `gatehouse health`, `sessions revoke`, `users revoke`: what /readyz and the admin API answer, for people (a few
 * lines) or scripts (`--json`, the server's own body). The admin token is read from GATEHOUSE_ADMIN_TOKEN only: a
 * secret given as an argument is visible in `ps` and kept in shell histories.
 */
export async function runOperate(options: OperateOptions): Promise<number> {
  const base = (options.url ?? options.env['GATEHOUSE_URL'] ?? DEFAULT_URL).replace(/\/+$/, '');
  if (!URL.canParse(base) || !/^https?:$/.test(new URL(base).protocol)) {
    options.err(`gatehouse: --url ${JSON.stringify(base)} is not an http(s) URL\n`);
    return OPERATE_EXIT.usage;
  }
  const { action } = options;
  const headers: Record<string, string> = { accept: 'application/json' };
  if (action.kind !== 'health') {
    const token = options.env['GATEHOUSE_ADMIN_TOKEN'];
    if (!token) {
      options.err('gatehouse: GATEHOUSE_ADMIN_TOKEN is not set (the ADMIN_TOKEN of the Gatehouse to call)\n');
      return OPERATE_EXIT.usage;
    }
    headers['x-admin-token'] = token;
  }
  const call = (method: string, path: string, extra: Record<string, string> = {}, body?: string) =>
    callServer(base, method, path, { ...headers, ...extra }, body);
  try {
    if (action.kind === 'config-apply') return await applyConfig(options, action, call);
    const request = action.kind === 'health' ? { method: 'GET', path: '/readyz' } : adminRequest(action);
    const { status, body } = await call(request.method, request.path);
    if (options.json) options.out(`${JSON.stringify(body)}\n`);
    else options.out(describe(action, status, body));
    return status === 200 ? OPERATE_EXIT.ok : OPERATE_EXIT.refused;
  } catch (e) {
    if (!(e instanceof Unreachable)) throw e;
    options.err(`gatehouse: cannot reach ${base}: ${e.message}\n`);
    return OPERATE_EXIT.unreachable;
  }
}

class Unreachable extends Error {}

type Call = (
  method: string,
  path: string,
  extra?: Record<string, string>,
  body?: string,
) => Promise<{ status: number; body: Record<string, unknown> }>;

async function callServer(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    const res = await fetch(base + path, {
      method,
      headers,
      ...(body === undefined ? {} : { body }),
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    return {
      status: res.status,
      body: parseObject(text) ?? { error: 'unexpected_answer', message: `HTTP ${res.status} without a JSON body` },
    };
  } catch (e) {
    throw new Unreachable(e instanceof Error ? (causeCode(e) ?? e.message) : String(e));
  }
}

/**
 * `config apply FILE`: the difference from the running version, a question (unless --yes), then a PUT naming the
 * version the difference was made against, so a change someone made meanwhile is never overwritten unseen (412).
 */
async function applyConfig(
  options: OperateOptions,
  action: Extract<OperatorAction, { kind: 'config-apply' }>,
  call: Call,
): Promise<number> {
  let text: string;
  try {
    text = (options.readFile ?? (() => ''))(action.file);
  } catch (e) {
    options.err(`gatehouse: cannot read ${action.file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
    return OPERATE_EXIT.usage;
  }
  const current = await call('GET', '/admin/config');
  if (current.status !== 200) {
    options.out(options.json ? `${JSON.stringify(current.body)}\n` : refusal(current.status, current.body));
    return OPERATE_EXIT.refused;
  }
  const version = Number(current.body['version']);
  const diff = lineDiff(String(current.body['text'] ?? ''), text);
  if (diff === '') {
    options.out(options.json ? `${JSON.stringify({ changed: false, version })}\n` : `no change: ${action.file} is version ${version}\n`);
    return OPERATE_EXIT.ok;
  }
  if (!options.json)
    options.out(
      `--- running version ${version} (${String(current.body['by'])}, ${String(current.body['at'])})\n+++ ${action.file}\n${diff}`,
    );
  if (!action.yes) {
    const answer = options.ask ? await options.ask(`apply ${action.file} over version ${version}? [y/N] `) : '';
    if (!/^y(es)?$/i.test(answer.trim())) {
      options.out(options.json ? `${JSON.stringify({ changed: false, version, applied: false })}\n` : 'not applied\n');
      return OPERATE_EXIT.ok;
    }
  }
  const put = await call('PUT', '/admin/config', { 'content-type': 'application/yaml', 'if-match': `"${version}"` }, text);
  if (options.json) options.out(`${JSON.stringify(put.body)}\n`);
  else if (put.status === 200) {
    const written = put.body['fileWritten'] === false ? ' (its config.yml is read-only: the change lives in the store)' : '';
    options.out(`applied: version ${String(put.body['version'])} on every replica${written}\n`);
  } else if (put.status === 412) {
    options.out(
      `refused: the configuration changed meanwhile (now version ${String(put.body['currentVersion'])}); run the command again to see the new difference\n`,
    );
  } else {
    const problems = Array.isArray(put.body['problems']) ? put.body['problems'].map((p) => `  - ${String(p)}\n`).join('') : '';
    options.out(`${refusal(put.status, put.body)}${problems}`);
  }
  return put.status === 200 ? OPERATE_EXIT.ok : OPERATE_EXIT.refused;
}

const refusal = (status: number, body: Record<string, unknown>) =>
  `refused: ${String(body['error'])} (HTTP ${status}): ${String(body['message'] ?? '')}\n`;

function adminRequest(action: Exclude<OperatorAction, { kind: 'health' | 'config-apply' }>): { method: string; path: string } {
  if (action.kind === 'config-get') return { method: 'GET', path: '/admin/config' };
  if (action.kind === 'sessions-list') return { method: 'GET', path: `/admin/sessions?sub=${encodeURIComponent(action.sub)}` };
  return action.kind === 'revoke-session'
    ? { method: 'DELETE', path: `/admin/sessions/${encodeURIComponent(action.storeKey)}` }
    : { method: 'POST', path: `/admin/users/${encodeURIComponent(action.sub)}/revoke` };
}

function describe(action: OperatorAction, status: number, body: Record<string, unknown>): string {
  if (action.kind === 'health') {
    const checks = Object.entries((body['checks'] as Record<string, unknown> | undefined) ?? {}).map(
      ([k, v]) => `  ${k.padEnd(9)} ${String(v)}\n`,
    );
    const reason = typeof body['reason'] === 'string' ? ` (${body['reason']})` : '';
    return `${status === 200 ? 'ready' : `not ready${reason}`}\n${checks.join('')}`;
  }
  if (status !== 200) {
    const unconfirmed =
      body['revocation'] === 'unconfirmed'
        ? '\n  not confirmed by Redis: it may still take effect; run the command again until it succeeds\n'
        : '\n';
    return `refused: ${String(body['error'])} (HTTP ${status}): ${String(body['message'] ?? '')}${unconfirmed}`;
  }
  if (action.kind === 'config-get') {
    const from = body['fromAnotherReplica'] === true ? ', made on another replica' : '';
    return `# version ${String(body['version'])}: ${String(body['source'])} by ${String(body['by'])} at ${String(body['at'])}${from}\n${String(body['text'] ?? '')}`;
  }
  if (action.kind === 'sessions-list') return sessionTable(action.sub, body);
  if (action.kind === 'revoke-session') return `session ${action.storeKey} revoked on every replica\n`;
  if (action.kind !== 'revoke-user') return '';
  return `user ${action.sub} revoked: ${String(body['sessions'])} session(s) ended, tokens issued before ${String(body['notBefore'])} refused\n`;
}

function sessionTable(sub: string, body: Record<string, unknown>): string {
  const rows = Array.isArray(body['sessions']) ? (body['sessions'] as Array<Record<string, unknown>>) : [];
  if (rows.length === 0) return `no live sessions for ${sub}\n`;
  const cells = rows.map((r) =>
    [r['storeKey'], r['createdAt'], r['lastSeenAt'], r['ip'] ?? '-', r['userAgent'] ?? '-'].map((c) => String(c)),
  );
  const head = ['STORE KEY', 'CREATED', 'LAST SEEN', 'IP', 'USER AGENT'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]) => `${c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] ?? 0))).join('  ')}\n`;
  return line(head) + cells.map(line).join('');
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function causeCode(e: Error): string | undefined {
  const code = (e.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
