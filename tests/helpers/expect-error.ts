import { expect } from 'vitest';
import type { WsOutcome } from './backends.ts';

/**
 * An error answer as the helpers hand it over: `send`'s RawResponse (`body` a Buffer), a raw-socket or
 * WebSocket answer (`body` JSON text) or `jsonOf`'s result (`body` already parsed).
 */
export interface ErrorAnswer {
  readonly status: number;
  readonly body: string | Buffer | object;
}

function codeIn(body: string | Buffer | object): unknown {
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    const text = body.toString('utf8');
    try {
      body = JSON.parse(text) as object;
    } catch {
      return `(not JSON: ${text.slice(0, 200)})`;
    }
  }
  return body && typeof body === 'object' ? (body as Record<string, unknown>)['error'] : body;
}

function check(actual: { status: number; error: unknown }, status: number, code: string, label: string): void {
  expect(actual, `${label} status and error code`.trim()).toEqual({ status, error: code });
}

/**
 * Asserts an error answer the one way the tests do: the status and the stable `error` code together.
 * A fetch Response has to be read first, so for one it returns a promise to await.
 */
export function expectError(res: Response, status: number, code: string, label?: string): Promise<void>;
export function expectError(res: ErrorAnswer, status: number, code: string, label?: string): void;
export function expectError(res: Response | ErrorAnswer, status: number, code: string, label = ''): Promise<void> | void {
  if (res instanceof Response) return res.text().then((text) => check({ status: res.status, error: codeIn(text) }, status, code, label));
  check({ status: res.status, error: codeIn(res.body) }, status, code, label);
}

/**
 * Asserts `request`'s error answer as `expectError` does, and that `reached()` (the requests or connections the
 * backends behind Gatehouse received) did not move: the refusal came before anything was forwarded.
 */
export async function expectErrorUnforwarded(
  reached: () => number,
  request: () => Promise<ErrorAnswer>,
  status: number,
  code: string,
  label?: string,
): Promise<void> {
  const before = reached();
  expectError(await request(), status, code, label);
  expect(reached()).toBe(before);
}

/** The HTTP answer that refused a WebSocket upgrade, failing the test when the socket opened instead. */
export async function upgradeRefusal(pending: Promise<WsOutcome>, label?: string): Promise<Extract<WsOutcome, { ok: false }>> {
  const out = await pending;
  expect(out.ok, label).toBe(false);
  if (out.ok) throw new Error('the upgrade was accepted');
  return out;
}
