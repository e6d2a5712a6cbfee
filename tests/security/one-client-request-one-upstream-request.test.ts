import fc from 'fast-check';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CODES } from '../../src/errors.ts';
import { parseSessionSecret } from '../../src/session/crypto.ts';
import { sendRaw } from '../helpers/backends.ts';
import {
  ResponseReader,
  startReferenceParser,
  type ParsedRequest,
  type ParseResult,
  type RawResponse,
  type ReferenceParser,
} from '../helpers/raw-http.ts';
import {
  bodyOf,
  startRecordingBackend,
  type BackendRecord,
  type RecordedAnswer,
  type RecordingBackend,
} from '../helpers/recording-backend.ts';
import { mappingsYaml, SESSION_COOKIE, startProxyStack, type ProxyStack } from '../helpers/proxy-stack.ts';
import { expectError } from '../helpers/expect-error.ts';

/**
 * SMUGGLE / RESPONSE-QUEUE POISONING (issue 10, parts 1 and 2; RFC 9112 §6.3, §9.3, §11.2): whatever a client
 * says (Connection naming the framing, every Content-Length / Transfer-Encoding combination, bodies that are
 * themselves requests, pipelining, uploads cut short), each request a strict HTTP/1.1 parser reads from the
 * client becomes at most one request on Gatehouse's kept-alive upstream connections, with exactly that body
 * and the sender's own identity, and each answer goes back to the request it answers.
 *
 * The reference for "what the client said" is node:http itself, configured as Gatehouse's server is and fed the
 * same bytes (helpers/raw-http.ts): every request the backend's parser reads must carry the nonce of a request
 * the reference read as a request — a nonce only ever seen inside a body, none at all, or one seen twice means
 * the upstream framing let a body become a request.
 *
 * Replay a failure with FUZZ_SEED=<seed> (and FUZZ_PATH=<path> for the shrunk case alone); dig deeper with
 * FUZZ_RUNS=<n>; FUZZ_NO_SHRINK=1 reports the first failing case as found, FUZZ_VERBOSE=1 logs slow cases.
 * Timing (write splits, the backend's delays) is part of each case, so a replay reproduces the inputs exactly
 * and the interleaving closely.
 */

const NONCE = /zq\d+x\d+z/;
const DEFAULT_RUNS = 250;
const NUM_RUNS = Number(process.env['FUZZ_RUNS'] ?? DEFAULT_RUNS);
const SEED = Number(process.env['FUZZ_SEED'] ?? Date.now());
const REPLAY_PATH = process.env['FUZZ_PATH'];
const TEST_TIMEOUT_MS = Math.max(30_000, NUM_RUNS * 600);
/** A case that has not settled by then is a hang: it fails with the seed rather than holding the suite. */
const CASE_TIMEOUT_MS = 12_000;
/** How long a client waits for the answers to the requests it completed before calling it a hang. */
const ANSWER_TIMEOUT_MS = 4_000;

/**
 * Two pipelining faults this test found in node:http are handled in src/http/pipelining.ts, and the examples
 * below guard them: an upgrade pipelined behind pending responses was answered in their place, and an automatic
 * `100 Continue` for a pipelined request landed inside the response before it (RFC 9112 §9.3.2).
 */

/** The mappings' timeoutMs: short, so that nothing a bug leaves hanging could outlast a case unnoticed. */
const ROUTE_TIMEOUT_MS = 2_000;
/** How long after its clients are done the backend may still hold a request open. */
const SETTLE_TIMEOUT_MS = 1_500;

/**
 * The `checked` route (/api/checked/...): its POST, PUT and PATCH bodies are checked by this schema, so Gatehouse
 * reads them whole and writes them upstream from its buffer, head and body in one write: the other upstream writer.
 */
const CHECKED_SCHEMA = {
  type: 'object',
  required: ['n'],
  properties: { n: { type: 'string' }, k: { type: 'integer' } },
  additionalProperties: false,
};
const CHECKED_METHODS = ['POST', 'PUT', 'PATCH'] as const;
/** Every JSON text generated that matches CHECKED_SCHEMA (by construction, not by a parser): what may reach the backend. */
const validJson = new Set<string>();

type User = 'alice' | 'bob' | 'anon';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let backend: RecordingBackend;
let reference: ReferenceParser;
let stack: ProxyStack;
let host: string;
let ghPort: number;
const identities = { alice: { cookie: '', value: '', token: '' }, bob: { cookie: '', value: '', token: '' } };
let executions = 0;
/**
 * Every request node:http read from a client in this file, by nonce: a request Gatehouse forwards after its case
 * settled (its client long gone) is still judged against what its client sent, in whichever case it shows up.
 */
const everSent = new Map<string, ParsedRequest>();
/** What the generated cases amounted to, printed after the run: how much really went through. */
const tally = {
  parsed: 0,
  forwarded: 0,
  forwardedWithBody: 0,
  /** POST, PUT, PATCH on the checked route that reached the backend: bodies read whole, checked and written from the buffer. */
  checkedForwarded: 0,
  answeredByBackend: 0,
  refused: new Map<string, number>(),
};

beforeAll(async () => {
  backend = await startRecordingBackend({ noncePattern: NONCE });
  reference = await startReferenceParser();
  stack = await startProxyStack({
    // Framing is the subject here, not CSRF: the generated requests carry cookies and no Origin.
    yaml: mappingsYaml(
      [
        { frontendHost: '*', backend: backend.url, timeoutMs: ROUTE_TIMEOUT_MS, csrf: { allowMissingOrigin: true } },
        {
          frontendHost: '*',
          pathPrefix: '/open',
          backend: backend.url,
          auth: 'none',
          timeoutMs: ROUTE_TIMEOUT_MS,
          csrf: { allowMissingOrigin: true },
        },
      ],
      `schemas:\n${CHECKED_METHODS.map((m) => `  - method: ${m}\n    path: /checked/*\n    body: ${JSON.stringify(CHECKED_SCHEMA)}\n`).join('')}`,
    ),
    env: { ACCESS_LOG: 'errors' },
  });
  host = new URL(stack.url).host;
  ghPort = Number(new URL(stack.url).port);
  const bobCookie = await stack.loginAs('bob');
  for (const [user, cookie] of [
    ['alice', stack.sessionCookie],
    ['bob', bobCookie],
  ] as const) {
    const value = cookie.slice(SESSION_COOKIE.length + 1);
    const token = (await stack.gh.app.sessions.load(parseSessionSecret(value)))?.tokens.accessToken;
    if (!token) throw new Error(`no access token for ${user}`);
    identities[user] = { cookie, value, token };
  }
}, 30_000);

afterAll(async () => {
  await stack?.close();
  await reference?.close();
  await backend?.close();
});

// ---- the generated client behaviour ---------------------------------------------------------------------

type Framing =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'cl';
      readonly fit: 'exact' | 'short' | 'long';
      readonly delta: number;
      readonly style: 'plain' | 'dup' | 'list' | 'zeros' | 'plus' | 'spaced' | 'upper';
    }
  | {
      readonly kind: 'te';
      readonly style:
        | 'chunked'
        | 'Chunked'
        | 'spaced'
        | 'tab'
        | 'list'
        | 'gzip'
        | 'identity'
        | 'xchunked'
        | 'two-lines'
        | 'identity-chunked'
        | 'chunked-identity';
      readonly cl: 'none' | 'before' | 'after';
      readonly sizes: readonly number[];
      /** Chunk extension on every chunk (RFC 9112 §7.1.1); node:http refuses whitespace before a name. */
      readonly ext: string;
      readonly upperHex: boolean;
      readonly trailers: readonly string[];
      readonly broken: boolean;
    };

/**
 * One member of a generated JSON object. The key 'k\\' is `k` and a backslash: after a text with it, V8's
 * JSON.parse can misread an escaped `k` as that key (nodejs/node#63785). An escaped key has its first character
 * written as a `\u` escape.
 */
interface JsonMember {
  readonly key: 'n' | 'k' | 'x' | 'k\\';
  readonly escaped: boolean;
  readonly value: 'str' | 'quote' | 'empty' | 'int' | 'float' | 'null' | 'obj';
}

type Content =
  | { readonly kind: 'empty' }
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'big'; readonly size: number; readonly fill: number }
  | {
      readonly kind: 'json';
      readonly members: readonly JsonMember[];
      /** Whitespace around every token (JSON allows space, tab, CR, LF). */
      readonly ws: string;
      readonly shape: 'object' | 'truncated' | 'array';
    }
  | {
      readonly kind: 'smuggle';
      readonly variant: 'get' | 'get-then-post-prefix' | 'chunked-post';
      readonly viaApi: boolean;
      readonly delay: number;
      readonly postLength: number;
    };

interface RequestSpec {
  readonly method: string;
  readonly version: '1.1' | '1.0';
  readonly route: 'auth' | 'open' | 'checked';
  /** The Content-Type line, if any: a checked body must say JSON. */
  readonly contentType: 'json' | 'json-charset' | 'text' | 'none';
  /** What the backend is asked to do: wait before answering, answer before reading the body, answer chunked. */
  readonly delay: number;
  readonly early: boolean;
  readonly chunkedAnswer: boolean;
  readonly host: 'ok' | 'missing' | 'twice' | 'upper' | 'other';
  readonly cookie: boolean;
  readonly connection: readonly string[];
  readonly extras: ReadonlyArray<readonly [string, string]>;
  readonly framing: Framing;
  readonly content: Content;
  /** Raw bytes written right after the message as framed here: what a desync would make the next request. */
  readonly after: Content | null;
  /** Rotates the header lines, so framing, Connection and the nonce come in every order. */
  readonly rotate: number;
}

interface ConnectionSpec {
  readonly user: User;
  readonly startDelay: number;
  /** Waits (briefly) for each answer before writing the next request; otherwise everything is pipelined. */
  readonly sequential: boolean;
  readonly requests: readonly RequestSpec[];
  /** Where the byte stream is split into writes (per mille of its length) and how long to pause there. */
  readonly splits: ReadonlyArray<{ readonly at: number; readonly pause: number }>;
  readonly end:
    { readonly kind: 'wait' } | { readonly kind: 'abort'; readonly at: number } | { readonly kind: 'leave'; readonly after: number };
}

const CONNECTION_TOKENS = [
  'close',
  'keep-alive',
  'Keep-Alive',
  'upgrade',
  'Upgrade',
  'content-length',
  'Content-Length',
  'CONTENT-LENGTH',
  'transfer-encoding',
  'Transfer-Encoding',
  'host',
  'Host',
  'x-user-sub',
  'X-User-Sub',
  'x_user_sub',
  'authorization',
  'Authorization',
  'cookie',
  'x-probe',
  'expect',
  'te',
  'trailer',
  'proxy-connection',
  'x-forwarded-for',
  'x-request-id',
  'x-junk',
  'foo',
  '',
] as const;
const SEPARATORS = [', ', ',', ' , ', ',,', '\t,\t', ' ,'] as const;

const EXTRAS: ReadonlyArray<readonly [string, string]> = [
  ['x-user-sub', 'root'],
  ['X-User-Sub', 'root'],
  ['X_User_Sub', 'root'],
  ['x-user-email', 'root@evil.test'],
  ['Authorization', 'Bearer root'],
  ['x-forwarded-for', '6.6.6.6'],
  ['x-forwarded-host', 'evil.test'],
  ['x-request-id', 'forged-7'],
  ['Proxy-Connection', 'keep-alive'],
  ['Keep-Alive', 'timeout=99'],
  ['TE', 'trailers'],
  ['Trailer', 'x-user-sub'],
  ['Expect', '100-continue'],
  ['expect', '100-Continue'],
  ['Expect', 'fancy'],
  ['Upgrade', 'websocket'],
  ['Upgrade', 'h2c'],
  ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
  ['Sec-WebSocket-Version', '13'],
  ['X-HTTP-Method-Override', 'DELETE'],
  ['x-junk', 'a b\tc'],
];

const connectionValueArb = fc
  .array(fc.record({ token: fc.constantFrom(...CONNECTION_TOKENS), sep: fc.constantFrom(...SEPARATORS) }), { minLength: 1, maxLength: 4 })
  .chain((parts) => fc.record({ parts: fc.constant(parts), pad: fc.constantFrom('', '', ' ', '\t') }))
  .map(({ parts, pad }) => pad + parts.map((p, i) => (i === 0 ? p.token : p.sep + p.token)).join('') + pad);

/** One of `common` most of the time, else one of `rare`. */
function mostly<T>(common: T, rare: readonly T[], odds = 8): fc.Arbitrary<T> {
  return fc.oneof({ weight: odds, arbitrary: fc.constant(common) }, { weight: 1, arbitrary: fc.constantFrom(...rare) });
}

const clArb = (fit: fc.Arbitrary<'exact' | 'short' | 'long'>): fc.Arbitrary<Framing> =>
  fc.record({
    kind: fc.constant('cl' as const),
    fit,
    delta: fc.integer({ min: 1, max: 60 }),
    style: mostly('plain' as const, ['dup', 'list', 'zeros', 'plus', 'spaced', 'upper'] as const, 3),
  });

const teArb: fc.Arbitrary<Framing> = fc.record({
  kind: fc.constant('te' as const),
  style: fc.oneof(
    { weight: 6, arbitrary: fc.constant('chunked' as const) },
    { weight: 1, arbitrary: fc.constantFrom('Chunked', 'spaced', 'tab') },
    { weight: 1, arbitrary: fc.constantFrom('list', 'gzip', 'identity', 'xchunked', 'two-lines', 'identity-chunked', 'chunked-identity') },
  ),
  cl: mostly('none' as const, ['before', 'after'] as const, 10),
  sizes: fc.array(fc.integer({ min: 1, max: 700 }), { maxLength: 5 }),
  ext: mostly('', [';ext=1', ';q="a b"', ';a;b=c', '; bws=1'], 3),
  upperHex: fc.boolean(),
  trailers: fc.oneof(
    { weight: 6, arbitrary: fc.constant([]) },
    { weight: 2, arbitrary: fc.subarray(['x-trailer: 1', 'x-user-sub: root'], { minLength: 1 }) },
    {
      weight: 1,
      arbitrary: fc.subarray(['x-trailer: 1', 'x-user-sub: root', 'content-length: 5', 'transfer-encoding: chunked'], { minLength: 1 }),
    },
  ),
  broken: mostly(false, [true], 20),
});

const smuggleArb: fc.Arbitrary<Content> = fc.record({
  kind: fc.constant('smuggle' as const),
  variant: fc.constantFrom('get', 'get-then-post-prefix', 'chunked-post'),
  viaApi: fc.boolean(),
  delay: fc.integer({ min: 0, max: 60 }),
  postLength: fc.integer({ min: 1, max: 3000 }),
});

const jsonMemberArb: fc.Arbitrary<JsonMember> = fc.record({
  key: fc.constantFrom('n', 'k', 'x', 'k\\'),
  escaped: fc.boolean(),
  value: fc.constantFrom('str', 'quote', 'empty', 'int', 'float', 'null', 'obj'),
});

/** JSON bodies for the checked route: about half match CHECKED_SCHEMA, the rest miss it by one thing or are no JSON at all. */
const jsonArb: fc.Arbitrary<Content> = fc.record({
  kind: fc.constant('json' as const),
  members: fc.oneof(
    {
      weight: 3,
      arbitrary: fc
        .tuple(
          fc.record({
            key: fc.constant('n' as const),
            escaped: fc.boolean(),
            value: fc.constantFrom('str' as const, 'quote' as const, 'empty' as const),
          }),
          fc.option(fc.record({ key: fc.constant('k' as const), escaped: fc.boolean(), value: fc.constant('int' as const) }), {
            nil: undefined,
          }),
          fc.boolean(),
        )
        .map(([n, k, kFirst]) => (k === undefined ? [n] : kFirst ? [k, n] : [n, k])),
    },
    { weight: 2, arbitrary: fc.array(jsonMemberArb, { maxLength: 4 }) },
  ),
  ws: fc.constantFrom('', '', ' ', '\n', '\t', '\r\n '),
  shape: mostly('object' as const, ['truncated', 'array'] as const, 10),
});

const bodyArb: fc.Arbitrary<Content> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Content>({ kind: 'empty' }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 1500 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('big' as const),
      size: fc.integer({ min: 16_000, max: 300_000 }),
      fill: fc.integer({ min: 0, max: 255 }),
    }),
  },
  { weight: 3, arbitrary: smuggleArb },
  { weight: 6, arbitrary: jsonArb },
);

/**
 * Framing and body together: mostly messages node:http frames cleanly (so most requests really go through and
 * their bodies are compared byte for byte), the rest the hostile combinations, which it or Gatehouse refuses.
 */
const messageArb: fc.Arbitrary<{ framing: Framing; content: Content }> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ framing: fc.constant<Framing>({ kind: 'none' }), content: fc.constant<Content>({ kind: 'empty' }) }),
  },
  // No framing and a body: the body is the next request (or garbage) as far as any parser is concerned.
  { weight: 1, arbitrary: fc.record({ framing: fc.constant<Framing>({ kind: 'none' }), content: fc.oneof(smuggleArb, bodyArb) }) },
  { weight: 7, arbitrary: fc.record({ framing: clArb(fc.constant('exact')), content: bodyArb }) },
  { weight: 1, arbitrary: fc.record({ framing: clArb(fc.constantFrom('short', 'long')), content: bodyArb }) },
  { weight: 5, arbitrary: fc.record({ framing: teArb, content: bodyArb }) },
);

/** The checked route's messages: mostly a JSON body, framed either way, so most of them reach the schema check. */
const checkedMessageArb: fc.Arbitrary<{ framing: Framing; content: Content }> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ framing: clArb(fc.constant('exact')), content: jsonArb }) },
  { weight: 3, arbitrary: fc.record({ framing: teArb, content: jsonArb }) },
  { weight: 2, arbitrary: messageArb },
);

const requestArb: fc.Arbitrary<RequestSpec> = fc
  .record({
    method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
    version: fc.oneof({ weight: 12, arbitrary: fc.constant('1.1' as const) }, { weight: 1, arbitrary: fc.constant('1.0' as const) }),
    route: fc.constantFrom('auth', 'auth', 'open', 'checked', 'checked'),
    contentType: fc.oneof(
      { weight: 8, arbitrary: fc.constant('json' as const) },
      { weight: 1, arbitrary: fc.constantFrom('json-charset' as const, 'text' as const, 'none' as const) },
    ),
    delay: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 25 }) }),
    early: fc.oneof({ weight: 9, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    chunkedAnswer: fc.boolean(),
    host: fc.oneof(
      { weight: 16, arbitrary: fc.constant('ok' as const) },
      { weight: 1, arbitrary: fc.constantFrom('missing', 'twice', 'upper', 'other') },
    ),
    cookie: fc.oneof({ weight: 12, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    connection: fc.oneof(
      { weight: 5, arbitrary: fc.constant([]) },
      { weight: 2, arbitrary: fc.array(connectionValueArb, { minLength: 1, maxLength: 2 }) },
    ),
    extras: fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.subarray([...EXTRAS], { maxLength: 4 }) }),
    message: messageArb,
    checkedMessage: checkedMessageArb,
    after: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: smuggleArb }),
    rotate: fc.nat(20),
  })
  .map(({ message, checkedMessage, ...rest }) => ({ ...rest, ...(rest.route === 'checked' ? checkedMessage : message) }));

const connectionArb: fc.Arbitrary<ConnectionSpec> = fc.record({
  user: fc.constantFrom('alice', 'alice', 'bob', 'bob', 'anon'),
  startDelay: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 20 }) }),
  sequential: fc.boolean(),
  requests: fc.array(requestArb, { minLength: 1, maxLength: 4 }),
  splits: fc.array(
    fc.record({
      at: fc.integer({ min: 0, max: 999 }),
      pause: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) }),
    }),
    { maxLength: 4 },
  ),
  end: fc.oneof(
    { weight: 6, arbitrary: fc.constant({ kind: 'wait' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('abort' as const), at: fc.integer({ min: 0, max: 999 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('leave' as const), after: fc.integer({ min: 0, max: 15 }) }) },
  ),
});

const caseArb = fc.array(connectionArb, { minLength: 1, maxLength: 4 });

// ---- turning a spec into bytes ----------------------------------------------------------------------------

interface Builder {
  readonly user: User;
  nonce(): string;
}

function contentBytes(c: Content, b: Builder): Buffer {
  switch (c.kind) {
    case 'empty':
      return Buffer.alloc(0);
    case 'bytes':
      return Buffer.from(c.bytes);
    case 'big': {
      const out = Buffer.allocUnsafe(c.size);
      for (let i = 0; i < c.size; i++) out[i] = (i * 31 + c.fill + (i >> 8)) & 0xff;
      return out;
    }
    case 'json': {
      const text = jsonText(c);
      if (jsonMatches(c)) validJson.add(text);
      return Buffer.from(text, 'latin1');
    }
    case 'smuggle': {
      // Aimed at the backend: identity headers of its choosing, and a nonce that a client only ever sends in a body.
      const prefix = c.viaApi ? '/api' : '';
      const n1 = b.nonce();
      let text = `GET ${prefix}/p/${n1}?d=${c.delay} HTTP/1.1\r\nHost: backend\r\nx-user-sub: root\r\nx-probe: ${n1}\r\nContent-Length: 0\r\n\r\n`;
      if (c.variant === 'get-then-post-prefix') {
        const n2 = b.nonce();
        // The start of a request whose body is whatever comes next on the connection: the next user's request.
        text += `POST ${prefix}/p/${n2}?echo=1 HTTP/1.1\r\nHost: backend\r\nx-user-sub: root\r\nx-probe: ${n2}\r\nContent-Length: ${c.postLength}\r\n\r\n`;
      } else if (c.variant === 'chunked-post') {
        const n2 = b.nonce();
        text = `POST ${prefix}/p/${n2} HTTP/1.1\r\nHost: backend\r\nx-user-sub: root\r\nx-probe: ${n2}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`;
      }
      return Buffer.from(text, 'latin1');
    }
  }
}

const JSON_VALUES: Record<JsonMember['value'], string> = {
  str: '"v"',
  quote: '"a\\"b\\\\"',
  empty: '""',
  int: '7',
  float: '7.5',
  null: 'null',
  obj: '{"n":"v"}',
};

function jsonText(c: Extract<Content, { kind: 'json' }>): string {
  const { ws } = c;
  const key = (m: JsonMember) =>
    m.escaped
      ? `"\\u${m.key.charCodeAt(0).toString(16).padStart(4, '0')}${JSON.stringify(m.key.slice(1)).slice(1)}`
      : JSON.stringify(m.key);
  const members = c.members.map((m) => `${ws}${key(m)}${ws}:${ws}${JSON_VALUES[m.value]}${ws}`);
  // Nothing after the closing brace: a Content-Length that cuts a text short then always cuts it to no JSON at all,
  // never to another valid text the oracle (validJson) does not know.
  const object = `${ws}{${members.join(',')}${members.length === 0 ? ws : ''}}`;
  if (c.shape === 'array') return `[${object}]`;
  return c.shape === 'truncated' ? object.slice(0, -1) : object;
}

/** CHECKED_SCHEMA, decided on the generated structure: one string `n`, at most one integer `k`, nothing else. */
function jsonMatches(c: Extract<Content, { kind: 'json' }>): boolean {
  if (c.shape !== 'object') return false;
  const n = c.members.filter((m) => m.key === 'n');
  const k = c.members.filter((m) => m.key === 'k');
  return (
    n.length === 1 &&
    ['str', 'quote', 'empty'].includes((n[0] as JsonMember).value) &&
    k.length <= 1 &&
    k.every((m) => m.value === 'int') &&
    n.length + k.length === c.members.length
  );
}

function chunked(body: Buffer, f: Extract<Framing, { kind: 'te' }>): Buffer {
  const parts: Buffer[] = [];
  const hex = (n: number) => (f.upperHex ? n.toString(16).toUpperCase() : n.toString(16));
  const { ext } = f;
  let at = 0;
  const sizes = [...f.sizes];
  while (at < body.length) {
    const size = Math.min(sizes.shift() ?? body.length - at, body.length - at);
    parts.push(Buffer.from(`${hex(size)}${ext}\r\n`, 'latin1'), body.subarray(at, at + size), Buffer.from('\r\n', 'latin1'));
    at += size;
  }
  if (f.broken) parts.unshift(Buffer.from(parts.length > 0 ? 'zz\r\n' : '1\r\nab\r\n', 'latin1'));
  parts.push(Buffer.from(`0${ext}\r\n${f.trailers.map((t) => `${t}\r\n`).join('')}\r\n`, 'latin1'));
  return Buffer.concat(parts);
}

/** The bytes of one request; its nonce goes in the target and in x-probe. */
function requestBytes(spec: RequestSpec, b: Builder): Buffer {
  const nonce = b.nonce();
  const query = `?d=${spec.delay}${spec.early ? '&early=1' : ''}${spec.chunkedAnswer ? '&chunked=1' : ''}`;
  const target = `/api${spec.route === 'auth' ? '' : `/${spec.route}`}/p/${nonce}${query}`;
  const lines: Array<readonly [string, string]> = [];
  if (spec.host === 'ok') lines.push(['Host', host]);
  else if (spec.host === 'upper') lines.push(['HOST', host]);
  else if (spec.host === 'twice') lines.push(['Host', host], ['Host', host]);
  else if (spec.host === 'other') lines.push(['Host', 'backend.internal']);
  if (spec.cookie && b.user !== 'anon') lines.push(['Cookie', identities[b.user].cookie]);
  lines.push(['x-probe', nonce]);
  if (spec.contentType !== 'none')
    lines.push([
      'Content-Type',
      spec.contentType === 'json'
        ? 'application/json'
        : spec.contentType === 'json-charset'
          ? 'application/json; charset=utf-8'
          : 'text/plain',
    ]);
  for (const value of spec.connection) lines.push(['Connection', value]);
  for (const extra of spec.extras) lines.push(extra);
  const content = contentBytes(spec.content, b);
  let body = content;
  const f = spec.framing;
  if (f.kind === 'cl') {
    const declared =
      f.fit === 'exact' ? content.length : f.fit === 'short' ? Math.max(0, content.length - f.delta) : content.length + f.delta;
    const d = String(declared);
    if (f.style === 'plain') lines.push(['Content-Length', d]);
    else if (f.style === 'dup') lines.push(['Content-Length', d], ['Content-Length', d]);
    else if (f.style === 'list') lines.push(['Content-Length', `${d}, ${d}`]);
    else if (f.style === 'zeros') lines.push(['Content-Length', `00${d}`]);
    else if (f.style === 'plus') lines.push(['Content-Length', `+${d}`]);
    else if (f.style === 'spaced') lines.push(['Content-Length', ` ${d}\t `]);
    else lines.push(['CONTENT-LENGTH', d]);
  } else if (f.kind === 'te') {
    body = f.style === 'identity' ? content : chunked(content, f);
    const te: Record<typeof f.style, string[]> = {
      chunked: ['chunked'],
      Chunked: ['Chunked'],
      spaced: [' chunked '],
      tab: ['\tchunked'],
      list: ['chunked, chunked'],
      gzip: ['gzip, chunked'],
      identity: ['identity'],
      xchunked: ['xchunked'],
      'two-lines': ['chunked', 'chunked'],
      'identity-chunked': ['identity', 'chunked'],
      'chunked-identity': ['chunked', 'identity'],
    };
    const cl: readonly [string, string] = ['Content-Length', String(body.length)];
    if (f.cl === 'before') lines.push(cl);
    for (const v of te[f.style]) lines.push(['Transfer-Encoding', v]);
    if (f.cl === 'after') lines.push(cl);
  }
  const r = spec.rotate % lines.length;
  const rotated = [...lines.slice(r), ...lines.slice(0, r)];
  const head = `${spec.method} ${target} HTTP/${spec.version}\r\n${rotated.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  const after = spec.after ? contentBytes(spec.after, b) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from(head, 'latin1'), body, after]);
}

// ---- running a case ---------------------------------------------------------------------------------------

interface ConnectionRun {
  readonly index: number;
  readonly spec: ConnectionSpec;
  readonly stream: Buffer;
  /** Offsets where each generated request starts in `stream`. */
  readonly starts: readonly number[];
  /** How much of `stream` is written before an abort (all of it otherwise). */
  readonly limit: number;
  /** What node:http reads from the bytes written. */
  parsed: ParseResult;
  readonly reader: ResponseReader;
  readonly received: Buffer[];
  hung: boolean;
}

function nonceOf(msg: ParsedRequest | undefined): string | undefined {
  return msg?.headers.get('x-probe')?.[0];
}

/** Responses a client that stays can count on: one per message node:http read whole (nothing after an upgrade). */
function answersDue(parsed: ParseResult): number {
  let n = 0;
  for (const m of parsed.messages) {
    if (!m.complete) break;
    n++;
    if (m.kind === 'upgrade') break;
  }
  return n;
}

async function runConnection(run: ConnectionRun, sockets: Set<Socket>): Promise<void> {
  const { spec } = run;
  if (spec.startDelay > 0) await sleep(spec.startDelay);
  const socket = connect(ghPort, '127.0.0.1');
  sockets.add(socket);
  socket.setNoDelay(true);
  let closed = false;
  const closedPromise = new Promise<void>((resolve) => {
    socket.once('close', () => {
      closed = true;
      run.reader.end();
      resolve();
    });
  });
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    run.received.push(chunk);
    run.reader.push(chunk);
  });
  socket.on('end', () => run.reader.end());
  await new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => resolve());
  });
  const waitFor = async (done: () => boolean, timeoutMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (closed || Date.now() > deadline) return done();
      await sleep(2);
    }
    return true;
  };
  const cuts = new Map<number, { pause: number; request: number }>();
  for (const s of spec.splits) {
    const at = Math.floor((s.at / 1000) * run.limit);
    if (at > 0 && at < run.limit) cuts.set(at, { pause: s.pause, request: cuts.get(at)?.request ?? -1 });
  }
  if (spec.sequential) {
    run.starts.forEach((at, k) => {
      if (k > 0 && at < run.limit) cuts.set(at, { pause: cuts.get(at)?.pause ?? 0, request: k });
    });
  }
  const points = [...cuts.keys()].sort((a, b) => a - b);
  let from = 0;
  for (const at of [...points, run.limit]) {
    if (closed) break;
    if (at > from) socket.write(run.stream.subarray(from, at));
    from = at;
    const cut = cuts.get(at);
    if (!cut) continue;
    if (cut.request > 0) await waitFor(() => run.reader.responses.length >= cut.request, 150);
    if (cut.pause > 0) await sleep(cut.pause);
  }
  if (spec.end.kind === 'abort') {
    socket.destroy();
  } else if (spec.end.kind === 'leave') {
    if (spec.end.after > 0) await sleep(spec.end.after);
    socket.destroy();
  } else {
    const due = answersDue(run.parsed);
    if (!(await waitFor(() => run.reader.responses.length >= due, ANSWER_TIMEOUT_MS))) run.hung = !closed;
    // A little longer: an answer too many would show now.
    if (!closed) await sleep(5);
    socket.destroy();
  }
  await closedPromise;
}

function describeBytes(buf: Buffer, max = 600): string {
  const text = buf.toString('latin1');
  const shown = text.length > max ? `${text.slice(0, max)}…(+${text.length - max} bytes)` : text;
  return JSON.stringify(shown);
}

const CHECKED = /^\/api\/checked\//;

function expectedIdentity(msg: ParsedRequest): { route: 'auth' | 'open'; user: 'alice' | 'bob' | undefined } {
  const route = /^\/api\/open(\/|\?|$)/.test(msg.url) ? 'open' : 'auth';
  const cookies = (msg.headers.get('cookie') ?? []).join('; ');
  const user = cookies.includes(identities.alice.value) ? 'alice' : cookies.includes(identities.bob.value) ? 'bob' : undefined;
  return { route, user };
}

/** Checks the invariants of one settled case; returns what broke (empty when nothing did). */
function check(runs: readonly ConnectionRun[], records: readonly BackendRecord[], stillOpen: readonly BackendRecord[]): string[] {
  const problems: string[] = [];

  const byNonce = new Map<string, BackendRecord>();
  const describeRecord = (r: BackendRecord) =>
    `${r.method} ${r.url} (x-user-sub ${JSON.stringify(r.headers.get('x-user-sub') ?? [])}, upstream connection ${r.connection}, body ${bodyOf(r).length} bytes${r.complete ? '' : ', incomplete'})`;

  // (a) + (b): every request the backend parsed is one a client sent, once, with its body and its sender's identity.
  for (const r of records) {
    if (r.nonce === undefined) {
      problems.push(`the backend parsed a request no client sent (no nonce): ${describeRecord(r)}`);
      continue;
    }
    const probe = r.headers.get('x-probe');
    if (probe && (probe.length !== 1 || probe[0] !== r.nonce))
      problems.push(`backend request ${describeRecord(r)} carries x-probe ${JSON.stringify(probe)}`);
    if (byNonce.has(r.nonce)) problems.push(`the backend parsed ${r.nonce} twice: ${describeRecord(r)}`);
    byNonce.set(r.nonce, r);
    const msg = everSent.get(r.nonce);
    if (!msg || msg.kind === 'expectation-failed') {
      problems.push(
        `SMUGGLED: the backend parsed ${describeRecord(r)}, but ${r.nonce} was never a request a client sent (only inside a body)`,
      );
      continue;
    }
    if (r.method !== msg.method || r.url !== msg.url.slice('/api'.length))
      problems.push(`${r.nonce}: the backend got ${r.method} ${r.url}, the client sent ${msg.method} ${msg.url}`);
    const body = bodyOf(r);
    if (r.complete) {
      if (!msg.complete)
        problems.push(
          `${r.nonce}: the backend got a whole body (${body.length} bytes) of a request the client never finished (${msg.body.length} bytes sent)`,
        );
      else if (!body.equals(msg.body))
        problems.push(`${r.nonce}: body differs: backend ${describeBytes(body, 200)}, client ${describeBytes(msg.body, 200)}`);
    } else if (body.length > msg.body.length || !body.equals(msg.body.subarray(0, body.length))) {
      problems.push(
        `${r.nonce}: the backend's (unfinished) body is not a prefix of the client's: backend ${describeBytes(body, 200)}, client ${describeBytes(msg.body, 200)}`,
      );
    }
    if (msg.kind === 'upgrade' && body.length > 0) problems.push(`${r.nonce}: an upgrade request reached the backend with a body`);
    if (CHECKED.test(msg.url) && (CHECKED_METHODS as readonly string[]).includes(msg.method)) {
      tally.checkedForwarded++;
      const types = msg.headers.get('content-type') ?? [];
      if (!msg.complete || !validJson.has(msg.body.toString('latin1')))
        problems.push(`${r.nonce}: a body CHECKED_SCHEMA refuses reached the backend: ${describeBytes(msg.body, 200)}`);
      else if (types.length !== 1 || !/^application\/json(; charset=utf-8)?$/.test(types[0] as string))
        problems.push(`${r.nonce}: a checked body reached the backend with Content-Type ${JSON.stringify(types)}`);
    }
    const hostHeader = r.headers.get('host') ?? [];
    if (hostHeader.length !== 1 || hostHeader[0] !== `127.0.0.1:${backend.port}`) {
      problems.push(`${r.nonce}: the backend got Host ${JSON.stringify(hostHeader)}`);
    }
    const { route, user } = expectedIdentity(msg);
    const sub = r.headers.get('x-user-sub') ?? [];
    const authorization = r.headers.get('authorization') ?? [];
    if (route === 'open') {
      if (sub.length > 0 || authorization.length > 0)
        problems.push(`${r.nonce}: auth:none request reached the backend with identity ${JSON.stringify({ sub, authorization })}`);
    } else if (user === undefined) {
      problems.push(`${r.nonce}: an auth:required request without a session reached the backend: ${describeRecord(r)}`);
    } else if (
      sub.length !== 1 ||
      sub[0] !== user ||
      authorization.length !== 1 ||
      authorization[0] !== `Bearer ${identities[user].token}`
    ) {
      problems.push(
        `${r.nonce}: sent by ${user}, reached the backend as ${JSON.stringify(sub)} with ${authorization.length === 1 && authorization[0] === `Bearer ${identities.alice.token}` ? "alice's token" : authorization.length === 1 && authorization[0] === `Bearer ${identities.bob.token}` ? "bob's token" : JSON.stringify(authorization)}`,
      );
    }
    for (let i = 1; i < r.rawHeaders.length; i += 2) {
      if (/root/i.test(r.rawHeaders[i] as string)) problems.push(`${r.nonce}: the backend got ${r.rawHeaders[i - 1]}: ${r.rawHeaders[i]}`);
    }
  }
  for (const r of stillOpen) problems.push(`backend request still open after its clients were done: ${describeRecord(r)}`);

  // (c) + (d): every answer a client got is for its own request, in order; Gatehouse's refusals are coded and final.
  for (const run of runs) {
    const msgs = run.parsed.messages;
    const label = `connection ${run.index} (${run.spec.user})`;
    const answered = new Set<string | null>();
    run.reader.responses.forEach((res: RawResponse, k: number) => {
      const recorded = res.headers.get('x-recorded-nonce')?.[0];
      const text = res.body.toString('utf8');
      if (recorded !== undefined || text.includes('"recorder":true')) {
        let answer: RecordedAnswer | undefined;
        try {
          answer = JSON.parse(text) as RecordedAnswer;
        } catch {
          problems.push(`${label}: answer ${k} from the backend is not whole: ${describeBytes(res.body, 200)}`);
          return;
        }
        if (answered.has(answer.nonce)) problems.push(`${label}: ${answer.nonce} answered twice`);
        answered.add(answer.nonce);
        const expected = nonceOf(msgs[k]);
        if (answer.nonce !== expected || recorded !== expected) {
          problems.push(
            `${label}: answer ${k} is the backend's answer to ${answer.nonce} (${answer.method} ${answer.url}, x-user-sub ${JSON.stringify(answer.sub)}), but request ${k} was ${expected ?? 'nothing'}`,
          );
        } else if (!byNonce.has(expected)) {
          problems.push(`${label}: answer ${k} names ${expected}, which the backend has no record of`);
        }
        if (res.status !== 200) problems.push(`${label}: answer ${k} from the backend has status ${res.status}`);
        return;
      }
      let code: unknown;
      try {
        code = (JSON.parse(text) as { error?: unknown }).error;
      } catch {
        code = undefined;
      }
      const nonce = nonceOf(msgs[k]);
      if (typeof code === 'string') {
        const known = (CODES as Record<string, { status: number } | undefined>)[code];
        if (!known || known.status !== res.status)
          problems.push(`${label}: answer ${k} is ${res.status} ${code}, not a Gatehouse error code with that status`);
        else if (res.status >= 500)
          problems.push(`${label}: answer ${k} to ${nonce ?? 'nothing'} is ${res.status} ${code}, though the backend is healthy`);
        if (nonce !== undefined && byNonce.has(nonce))
          problems.push(`${label}: ${nonce} was refused with ${res.status} ${code}, but the backend got it`);
        return;
      }
      // node:http's own answers: 400 on a parse error (the last thing on the connection), 417 for an unknown Expect.
      if (res.status === 417) {
        if (msgs[k]?.kind !== 'expectation-failed')
          problems.push(`${label}: answer ${k} is 417 but request ${k} was ${nonce ?? 'nothing'}`);
        return;
      }
      if (
        (res.status === 400 || res.status === 431 || res.status === 413) &&
        k === run.reader.responses.length - 1 &&
        res.body.length === 0
      )
        return;
      problems.push(
        `${label}: answer ${k} came neither from the backend nor from Gatehouse's error path: ${res.status} ${describeBytes(res.body, 200)}`,
      );
    });
    // (e) RFC 9112 §9.6: nothing read after an answer (Gatehouse's or the backend's) that closes the connection is
    // processed, let alone forwarded. node:http's bare answer to a parse error is not one: the requests before the
    // error were read, and may be under way, before it is written.
    const closedAt = run.reader.responses.findIndex(
      (res) => res.body.length > 0 && (res.headers.get('connection') ?? []).some((v) => /(^|,)\s*close\s*(,|$)/i.test(v)),
    );
    if (closedAt !== -1)
      for (const m of msgs.slice(closedAt + 1)) {
        const nonce = nonceOf(m);
        if (nonce !== undefined && byNonce.has(nonce))
          problems.push(`${label}: ${nonce} reached the backend, though answer ${closedAt} before it closed the connection`);
      }
    if (run.reader.responses.length > msgs.length + 1)
      problems.push(`${label}: ${run.reader.responses.length} answers to ${msgs.length} requests`);
    if (run.reader.garbage !== undefined) problems.push(`${label}: bytes that are no response: ${JSON.stringify(run.reader.garbage)}`);
    if (run.reader.switched) problems.push(`${label}: got 101 Switching Protocols`);
    if (run.hung)
      problems.push(
        `${label}: ${answersDue(run.parsed)} requests complete, ${run.reader.responses.length} answered within ${ANSWER_TIMEOUT_MS} ms, connection still open`,
      );
    const received = Buffer.concat(run.received).toString('latin1');
    for (const other of ['alice', 'bob'] as const) {
      if (other === run.spec.user) continue;
      if (received.includes(identities[other].token)) problems.push(`${label}: received ${other}'s access token`);
      if (received.includes(`"sub":["${other}"]`)) problems.push(`${label}: received an answer to a request made as ${other}`);
    }
  }
  return problems;
}

/** One generated case: connections run together against the shared stack; throws with what broke. */
async function runCase(specs: readonly ConnectionSpec[]): Promise<void> {
  const execution = ++executions;
  let counter = 0;
  const runs: ConnectionRun[] = specs.map((spec, index) => {
    const b: Builder = { user: spec.user, nonce: () => `zq${execution}x${counter++}z` };
    const starts: number[] = [];
    const parts: Buffer[] = [];
    let length = 0;
    for (const r of spec.requests) {
      starts.push(length);
      const bytes = requestBytes(r, b);
      parts.push(bytes);
      length += bytes.length;
    }
    const stream = Buffer.concat(parts);
    const limit = spec.end.kind === 'abort' ? Math.floor((spec.end.at / 1000) * stream.length) : stream.length;
    const run: ConnectionRun = {
      index,
      spec,
      stream,
      starts,
      limit,
      parsed: { messages: [], error: undefined },
      reader: new ResponseReader((i) => run.parsed.messages[i]?.method),
      received: [],
      hung: false,
    };
    return run;
  });
  // What each client said, as node:http reads it: the reference every invariant is checked against.
  await Promise.all(
    runs.map(async (run) => {
      run.parsed = await reference.parse(run.stream.subarray(0, run.limit));
      for (const msg of run.parsed.messages) {
        const nonce = nonceOf(msg);
        if (nonce !== undefined) everSent.set(nonce, msg);
      }
    }),
  );
  // A fresh upstream pool per case: what one case did to a connection cannot surface in another, so a
  // failure replays from its seed and shrinks to the case that caused it.
  await backend.dropConnections();
  // Gatehouse sees its idle upstream connections close before the case starts (else a POST could meet one closing).
  await sleep(3);
  const from = backend.records.length;
  const sockets = new Set<Socket>();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`case did not settle within ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS);
  });
  let stillOpen: BackendRecord[];
  try {
    await Promise.race([Promise.all(runs.map((run) => runConnection(run, sockets))), timeout]);
    stillOpen = await Promise.race([backend.settle(10, SETTLE_TIMEOUT_MS), timeout]);
  } finally {
    clearTimeout(timer);
    for (const s of sockets) s.destroy();
  }
  const records = backend.records.slice(from);
  const problems = check(runs, records, stillOpen);
  tally.forwarded += records.length;
  tally.forwardedWithBody += records.filter((r) => bodyOf(r).length > 0).length;
  for (const run of runs) {
    tally.parsed += run.parsed.messages.length;
    if (run.parsed.error) tally.refused.set(`parse ${run.parsed.error}`, (tally.refused.get(`parse ${run.parsed.error}`) ?? 0) + 1);
    for (const res of run.reader.responses) {
      if (res.headers.has('x-recorded-nonce')) tally.answeredByBackend++;
      else {
        const key = `${res.status} ${/"error":"([a-z_]+)"/.exec(res.body.toString('utf8'))?.[1] ?? 'node:http'}`;
        tally.refused.set(key, (tally.refused.get(key) ?? 0) + 1);
      }
    }
  }
  if (problems.length > 0) {
    const streams = runs.map(
      (run) =>
        `  connection ${run.index} (${run.spec.user}${run.spec.end.kind === 'wait' ? '' : `, ${run.spec.end.kind}s after ${run.limit} bytes`}): ${describeBytes(run.stream.subarray(0, run.limit), 1500)}\n    read by node:http as ${JSON.stringify(run.parsed.messages.map((m) => `${m.kind} ${m.method} ${m.url} ${m.body.length}${m.complete ? '' : ' incomplete'}`))}${run.parsed.error ? ` then ${run.parsed.error}` : ''}\n    answers: ${JSON.stringify(run.reader.responses.map((r) => `${r.status} ${r.headers.get('x-recorded-nonce')?.[0] ?? r.body.toString('utf8').slice(0, 60)}`))}`,
    );
    throw new Error(
      `${problems.join('\n')}\n-- what the clients sent (execution ${execution}, FUZZ_SEED=${SEED}):\n${streams.join('\n')}\n-- what the backend parsed:\n${backend.records
        .slice(from)
        .map(
          (r) =>
            `  ${r.method} ${r.url} conn ${r.connection} body ${bodyOf(r).length}${r.complete ? '' : ' incomplete'} sub ${JSON.stringify(r.headers.get('x-user-sub') ?? [])}`,
        )
        .join('\n')}`,
    );
  }
}

// ---- the tests --------------------------------------------------------------------------------------------

/** Opens a raw connection, writes `bytes`, and collects the answers until `count` have come or the connection closed. */
async function rawAnswers(bytes: string, count: number, timeoutMs = 5_000): Promise<{ responses: RawResponse[]; received: string }> {
  const socket = connect(ghPort, '127.0.0.1');
  const reader = new ResponseReader(() => 'GET');
  const chunks: Buffer[] = [];
  socket.on('error', () => {});
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    reader.push(c);
  });
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      reader.end();
      resolve();
    }),
  );
  socket.write(bytes, 'latin1');
  const deadline = Date.now() + timeoutMs;
  while (reader.responses.length < count && !socket.destroyed && Date.now() < deadline) {
    await Promise.race([closed, sleep(5)]);
    if (socket.readableEnded) break;
  }
  socket.destroy();
  await closed;
  return { responses: reader.responses, received: Buffer.concat(chunks).toString('latin1') };
}

describe('one client request becomes at most one upstream request (issue 10)', () => {
  it('Connection: close, content-length → 400 bad_request; the body never reaches the backend as a request', async () => {
    await backend.dropConnections();
    const from = backend.records.length;
    // The issue's request as sent: a body that is itself a request, behind a Content-Length the client asks to drop.
    const smuggled = 'GET /smuggled-admin HTTP/1.1\r\nHost: backend\r\nx-user-sub: root\r\nContent-Length: 0\r\n\r\n\r\n';
    expect(smuggled.length).toBe(86);
    const res = await sendRaw(
      stack.url,
      `POST /api/upload HTTP/1.1\r\nHost: ${host}\r\nCookie: ${identities.alice.cookie}\r\nConnection: close, content-length\r\nContent-Length: 86\r\n\r\n${smuggled}`,
    );
    await backend.settle(50, 2_000);
    expect(backend.records.slice(from).map((r) => `${r.method} ${r.url}`)).toEqual([]);
    expectError(res, 400, 'bad_request', res.raw.slice(0, 300));
    expect(res.head).toMatch(/\r\nconnection: close/i);
  });

  it("response-queue poisoning: Bob's GET /api/profile gets his own answer and Alice never sees Bob's request", async () => {
    await backend.dropConnections();
    await sleep(10);
    // How much Bob's upstream request weighs, so the smuggled POST's body ends inside Alice's next request.
    const measure = await rawAnswers(`GET /api/profile HTTP/1.1\r\nHost: ${host}\r\nCookie: ${identities.bob.cookie}\r\n\r\n`, 1);
    expect(measure.responses[0]?.status).toBe(200);
    const bobHead = (backend.records.at(-1) as BackendRecord).headLength;
    const from = backend.records.length;
    const smuggle =
      'GET /slow?d=400 HTTP/1.1\r\nHost: backend\r\nx-user-sub: root\r\n\r\n' +
      `POST /capture?echo=1 HTTP/1.1\r\nHost: backend\r\nx-user-sub: root\r\nContent-Length: ${bobHead + 40}\r\n\r\n`;
    const alice1 = await rawAnswers(
      `POST /api/upload HTTP/1.1\r\nHost: ${host}\r\nCookie: ${identities.alice.cookie}\r\nConnection: content-length\r\nContent-Length: ${smuggle.length}\r\n\r\n${smuggle}`,
      1,
    );
    const bob = await rawAnswers(`GET /api/profile HTTP/1.1\r\nHost: ${host}\r\nCookie: ${identities.bob.cookie}\r\n\r\n`, 1);
    const alice2 = await rawAnswers(`GET /api/next HTTP/1.1\r\nHost: ${host}\r\nCookie: ${identities.alice.cookie}\r\n\r\n`, 1);
    await backend.settle(50, 2_000);
    for (const [what, got] of [
      ['first', alice1],
      ['second', alice2],
    ] as const) {
      expect(got.received, `Alice's ${what} connection received Bob's token`).not.toContain(identities.bob.token);
      expect(got.received, `Alice's ${what} connection received an answer made for Bob`).not.toMatch(/"sub":\["bob"\]|x-user-sub: bob/);
    }
    const bobAnswer = JSON.parse(bob.responses[0]?.body.toString('utf8') ?? '{}') as Partial<RecordedAnswer>;
    expect({ url: bobAnswer.url, sub: bobAnswer.sub }, "Bob's answer").toEqual({ url: '/profile', sub: ['bob'] });
    const aliceAnswer = JSON.parse(alice2.responses[0]?.body.toString('utf8') ?? '{}') as Partial<RecordedAnswer>;
    expect({ url: aliceAnswer.url, sub: aliceAnswer.sub }, "Alice's next answer").toEqual({ url: '/next', sub: ['alice'] });
    expectError(alice1.responses[0] ?? { status: 0, body: '' }, 400, 'bad_request');
    expect(backend.records.slice(from).map((r) => `${r.method} ${r.url}`)).toEqual(['GET /profile', 'GET /next']);
  });

  it('an upgrade pipelined behind a pending request is never answered in that request’s place', async () => {
    const first = `GET /api/p/zq9101x0z?d=150 HTTP/1.1\r\nHost: ${host}\r\nCookie: ${identities.alice.cookie}\r\nx-probe: zq9101x0z\r\n\r\n`;
    // Refused at once (no Host), while the first request waits 150 ms for the backend.
    const upgrade = `GET /api/p/zq9101x1z HTTP/1.1\r\nCookie: ${identities.alice.cookie}\r\nx-probe: zq9101x1z\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`;
    const { responses } = await rawAnswers(first + upgrade, 2);
    const answers = responses.map(
      (r) =>
        `${r.status} ${r.headers.get('x-recorded-nonce')?.[0] ?? (JSON.parse(r.body.toString('utf8') || '{}') as { error?: string }).error}`,
    );
    // In order, or nothing: never the upgrade's refusal where the first request's answer belongs.
    expect(answers[0] ?? '200 zq9101x0z', JSON.stringify(answers)).toBe('200 zq9101x0z');
  });

  it('a pipelined Expect: 100-continue never lands inside another response', async () => {
    const first = `GET /api/p/zq9102x0z?d=50 HTTP/1.1\r\nHost: ${host}\r\nCookie: ${identities.alice.cookie}\r\nx-probe: zq9102x0z\r\n\r\n`;
    const second = `PATCH /api/p/zq9102x1z HTTP/1.1\r\nHost: ${host}\r\nCookie: ${identities.alice.cookie}\r\nx-probe: zq9102x1z\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n`;
    const { responses, received } = await rawAnswers(first + second, 2);
    expect(received, 'a 100 Continue after a final response head').not.toMatch(/\r\n\r\nHTTP\/1\.1 100 Continue\r\n\r\n\{/);
    expect(responses.map((r) => r.headers.get('x-recorded-nonce')?.[0])).toEqual(['zq9102x0z', 'zq9102x1z']);
  });

  it('a request whose client is gone before admission finishes leaves nothing open upstream', async () => {
    // A user this process has not checked against the revocation list yet: admission awaits Redis.
    const carol = await stack.loginAs('carol');
    const from = backend.records.length;
    // node:http reads the POST's head, then refuses its body and destroys the connection in the same tick.
    const res = await sendRaw(
      stack.url,
      `POST /api/p/zqcarolx0z HTTP/1.1\r\nHost: ${host}\r\nCookie: ${carol}\r\nx-probe: zqcarolx0z\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n`,
    );
    try {
      expect(res.status).toBe(400);
      await sleep(300);
      const open = backend.records
        .slice(from)
        .filter((r) => !r.settled)
        .map((r) => `${r.method} ${r.url} body ${bodyOf(r).length}${r.complete ? '' : ' incomplete'}`);
      expect(open).toEqual([]);
    } finally {
      // Should this regress, what it leaves open would hold the next test up to the route timeout.
      await backend.dropConnections();
    }
  });

  it(
    `generated hostile clients: ${NUM_RUNS} cases (FUZZ_RUNS), seed ${SEED} (FUZZ_SEED)`,
    async () => {
      console.log(
        `one-client-request-one-upstream-request: FUZZ_SEED=${SEED} FUZZ_RUNS=${NUM_RUNS}${REPLAY_PATH ? ` FUZZ_PATH=${REPLAY_PATH}` : ''}`,
      );
      const started = Date.now();
      let cases = 0;
      let requests = 0;
      const property = fc.asyncProperty(caseArb, async (specs) => {
        cases++;
        requests += specs.reduce((n, c) => n + c.requests.length, 0);
        const t0 = Date.now();
        await runCase(specs);
        if (process.env['FUZZ_VERBOSE'] && Date.now() - t0 > 300)
          console.log(
            `slow case ${executions}: ${Date.now() - t0} ms ${JSON.stringify(specs.map((c) => ({ user: c.user, end: c.end, seq: c.sequential, reqs: c.requests.map((r) => `${r.method} ${r.framing.kind}${r.framing.kind === 'cl' ? `:${r.framing.fit}:${r.framing.style}` : r.framing.kind === 'te' ? `:${r.framing.style}:${r.framing.cl}` : ''} ${r.content.kind}${r.after ? '+after' : ''} conn=${JSON.stringify(r.connection)} ${r.extras.map((e) => e[0]).join(',')}`) })))}`,
          );
      });
      try {
        await fc.assert(property, {
          numRuns: NUM_RUNS,
          seed: SEED,
          ...(REPLAY_PATH ? { path: REPLAY_PATH } : {}),
          endOnFailure: REPLAY_PATH !== undefined || process.env['FUZZ_NO_SHRINK'] !== undefined,
          includeErrorInReport: true,
          // A failure that is a hang shrinks slowly: report what was found before the test's own timeout strikes.
          interruptAfterTimeLimit: TEST_TIMEOUT_MS - 10_000,
          markInterruptAsFailure: true,
        });
      } catch (err) {
        throw new Error(
          `Replay with FUZZ_SEED=${SEED}${REPLAY_PATH ? ` FUZZ_PATH=${REPLAY_PATH}` : ''} (fast-check's path below replays the shrunk case alone).\n${(err as Error).message}`,
        );
      }
      console.log(
        `one-client-request-one-upstream-request: ${cases} cases, ${requests} generated requests in ${Date.now() - started} ms; ` +
          `node:http read ${tally.parsed} requests, ${tally.forwarded} reached the backend (${tally.forwardedWithBody} with a body, ` +
          `${tally.checkedForwarded} checked by a schema), ` +
          `${tally.answeredByBackend} answers from the backend, other answers ${JSON.stringify(Object.fromEntries([...tally.refused].sort((a, b) => b[1] - a[1])))}`,
      );
    },
    TEST_TIMEOUT_MS,
  );
});
