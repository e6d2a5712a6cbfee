import type { OperatorAction } from './command.ts';

export interface OperateOptions {
  readonly action: OperatorAction;
  readonly url: string | undefined;
  readonly json: boolean;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
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
  const request = action.kind === 'health' ? { method: 'GET', path: '/readyz' } : adminRequest(action);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (action.kind !== 'health') {
    const token = options.env['GATEHOUSE_ADMIN_TOKEN'];
    if (!token) {
      options.err('gatehouse: GATEHOUSE_ADMIN_TOKEN is not set (the ADMIN_TOKEN of the Gatehouse to call)\n');
      return OPERATE_EXIT.usage;
    }
    headers['x-admin-token'] = token;
  }
  let status: number;
  let body: Record<string, unknown>;
  try {
    const res = await fetch(base + request.path, {
      method: request.method,
      headers,
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
    });
    status = res.status;
    const text = await res.text();
    body = parseObject(text) ?? { error: 'unexpected_answer', message: `HTTP ${status} without a JSON body` };
  } catch (e) {
    options.err(`gatehouse: cannot reach ${base}: ${e instanceof Error ? (causeCode(e) ?? e.message) : String(e)}\n`);
    return OPERATE_EXIT.unreachable;
  }
  if (options.json) options.out(`${JSON.stringify(body)}\n`);
  else options.out(describe(action, status, body));
  return status === 200 ? OPERATE_EXIT.ok : OPERATE_EXIT.refused;
}

function adminRequest(action: Exclude<OperatorAction, { kind: 'health' }>): { method: string; path: string } {
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
  if (action.kind === 'revoke-session') return `session ${action.storeKey} revoked on every replica\n`;
  return `user ${action.sub} revoked: ${String(body['sessions'])} session(s) ended, tokens issued before ${String(body['notBefore'])} refused\n`;
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
