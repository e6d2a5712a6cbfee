import { expect } from 'vitest';
import { send, type TestBackend } from './backends.ts';

/**
 * Sends `path` to Gatehouse at `baseUrl` and asserts it was answered 200 and reached `backend` with the
 * request-target `url`: the counterpart to a refusal, showing a check is not a blanket one.
 */
export async function expectForwardedAs(baseUrl: string, path: string, backend: TestBackend, url: string): Promise<void> {
  const res = await send(baseUrl, { path });
  expect(res.status).toBe(200);
  expect(backend.last().url).toBe(url);
}
