import { describe, expect, it } from 'vitest';
import { clientFrame, closeCodeOf, frame, openRawWs, sleep, startRawWsBackend, type RawPeer } from '../helpers/raw-ws.ts';
import { useBareProxy } from '../helpers/proxy-stack.ts';

/**
 * WS-ILLEGAL-FRAMES (issue 10; RFC 6455 §5.2, §5.4, §5.5, §7.4.1; RFC 7692 §6): a frame that breaks the framing
 * rules, from either side, ends the connection with 1002 instead of being relayed. A frame the relay cannot
 * delimit (a length that never ends) or does not understand (reserved opcode, RSV bits nobody negotiated)
 * would otherwise leave Gatehouse unable to find the next frame boundary, the only place its own close frame
 * (revocation, logout, session end) can go.
 */
describe('illegal WebSocket frames', () => {
  const proxy = useBareProxy({ backend: startRawWsBackend });

  const DEFLATE = { 'Sec-WebSocket-Extensions': 'permessage-deflate' };
  const connect = async (deflate: boolean): Promise<{ client: RawPeer; server: RawPeer }> => {
    const index = proxy.backend.peers.length;
    const client = await openRawWs(proxy.url, '/api/frames', deflate ? DEFLATE : {});
    return { client, server: await proxy.backend.waitForPeer(index) };
  };
  const received = (peer: RawPeer, n: number, what: string) => peer.waitFor(() => peer.bytes().length >= n, what);
  const total = (frames: readonly Buffer[]) => frames.reduce((n, f) => n + f.length, 0);

  /** Gatehouse's close frame 1002 is the last thing the client gets, and both connections end. */
  const expectClosed1002 = async (client: RawPeer, server: RawPeer, expectedBefore: readonly Buffer[]) => {
    expect(await client.endsWithin(2000), 'client connection ends').toBe(true);
    expect(await server.endsWithin(2000), 'backend connection ends').toBe(true);
    const bytes = client.bytes();
    const prefix = Buffer.concat(expectedBefore);
    expect(bytes.subarray(0, prefix.length).equals(prefix), 'legal frames before it arrive unchanged').toBe(true);
    const frames = client.frames();
    expect(frames).toHaveLength(expectedBefore.length + 1);
    expect(closeCodeOf(frames.at(-1))).toBe(1002);
  };

  const text = (s: string, extra = {}) => frame({ opcode: 0x1, payload: s, ...extra });

  // [name, legal frames first, the illegal frame, permessage-deflate negotiated]
  const fromClient: ReadonlyArray<[string, Buffer[], Buffer, boolean?]> = [
    ['a 64-bit length with the top bit set', [], clientFrame(0x2, '', { declaredLength: 1n << 63n })],
    ['a ping over 125 bytes', [], clientFrame(0x9, Buffer.alloc(126))],
    ['a close over 125 bytes', [clientFrame(0x1, 'first')], clientFrame(0x8, Buffer.alloc(200))],
    ['a fragmented ping (FIN=0)', [], clientFrame(0x9, 'x', { fin: false })],
    ['reserved opcode 0x3', [], clientFrame(0x3, 'x')],
    ['reserved opcode 0x7', [], clientFrame(0x7, 'x')],
    ['reserved opcode 0xB', [], clientFrame(0xb, 'x')],
    ['reserved opcode 0xF', [], clientFrame(0xf, 'x')],
    ['RSV1 without an extension', [], clientFrame(0x1, 'x', { rsv: 0x40 })],
    ['RSV2 without an extension', [], clientFrame(0x1, 'x', { rsv: 0x20 })],
    ['RSV3 without an extension', [], clientFrame(0x2, 'x', { rsv: 0x10 })],
    ['an unmasked client frame', [clientFrame(0x1, 'masked')], frame({ opcode: 0x1, payload: 'unmasked' })],
    ['a continuation frame with no message to continue', [], clientFrame(0x0, 'x')],
    ['a new message inside a fragmented one', [clientFrame(0x1, 'part', { fin: false })], clientFrame(0x1, 'new')],
    ['RSV1 on a ping, with permessage-deflate', [], clientFrame(0x9, 'x', { rsv: 0x40 }), true],
    [
      'RSV1 on a continuation frame, with permessage-deflate',
      [clientFrame(0x1, 'a', { fin: false, rsv: 0x40 })],
      clientFrame(0x0, 'b', { rsv: 0x40 }),
      true,
    ],
    ['RSV2 with permessage-deflate', [], clientFrame(0x1, 'x', { rsv: 0x20 }), true],
  ];

  it.each(fromClient)(
    'from the client, %s: close 1002 to the client, the backend is cut off before the frame',
    async (_name, legal, illegal, deflate) => {
      const { client, server } = await connect(deflate === true);
      for (const f of legal) client.send(f);
      await received(server, total(legal), 'the legal frames');
      client.send(illegal);
      await expectClosed1002(client, server, []);
      expect(server.bytes().equals(Buffer.concat(legal)), 'the backend never saw the illegal frame').toBe(true);
    },
  );

  const fromBackend: ReadonlyArray<[string, Buffer[], Buffer, boolean?]> = [
    ['a 64-bit length with the top bit set', [text('first')], frame({ opcode: 0x2, declaredLength: (1n << 63n) + 1n })],
    ['a ping over 125 bytes', [], frame({ opcode: 0x9, payload: Buffer.alloc(126) })],
    ['a close over 125 bytes', [], frame({ opcode: 0x8, payload: Buffer.alloc(300) })],
    ['a fragmented pong (FIN=0)', [], frame({ opcode: 0xa, payload: 'x', fin: false })],
    ['reserved opcode 0x3', [], frame({ opcode: 0x3, payload: 'x' })],
    ['reserved opcode 0x7', [], frame({ opcode: 0x7, payload: 'x' })],
    ['reserved opcode 0xB', [], frame({ opcode: 0xb, payload: 'x' })],
    ['reserved opcode 0xF', [], frame({ opcode: 0xf, payload: 'x' })],
    ['RSV1 without an extension', [], text('x', { rsv: 0x40 })],
    ['RSV2 without an extension', [], text('x', { rsv: 0x20 })],
    ['RSV3 without an extension', [text('first')], text('x', { rsv: 0x10 })],
    ['a masked backend frame', [text('first')], frame({ opcode: 0x1, payload: 'masked', mask: true })],
    ['a continuation frame with no message to continue', [], frame({ opcode: 0x0, payload: 'x' })],
    ['a new message inside a fragmented one', [text('part', { fin: false })], frame({ opcode: 0x2, payload: 'new' })],
    ['RSV1 on a ping, with permessage-deflate', [], frame({ opcode: 0x9, payload: 'x', rsv: 0x40 }), true],
    ['RSV3 with permessage-deflate', [], text('x', { rsv: 0x10 }), true],
  ];

  it.each(fromBackend)(
    'from the backend, %s: the legal frames, then close 1002 to the client; the backend is cut off',
    async (_name, legal, illegal, deflate) => {
      const { client, server } = await connect(deflate === true);
      for (const f of legal) server.send(f);
      await received(client, total(legal), 'the legal frames');
      server.send(illegal);
      await expectClosed1002(client, server, legal);
    },
  );

  it.each([false, true])('a legal conversation passes byte for byte both ways (permessage-deflate: %s)', async (deflate) => {
    const { client, server } = await connect(deflate);
    const rsv1 = deflate ? 0x40 : 0;
    const up = [
      clientFrame(0x1, 'hello', { rsv: rsv1 }),
      clientFrame(0x2, Buffer.from([0, 1, 0x88, 0xff])),
      clientFrame(0x2, Buffer.alloc(70_000, 3), { rsv: rsv1 }),
      clientFrame(0x9, 'ping'),
      clientFrame(0x1, 'frag', { fin: false, rsv: rsv1 }),
      clientFrame(0xa, 'unsolicited pong'),
      clientFrame(0x0, 'men', { fin: false }),
      clientFrame(0x0, 'ted'),
      clientFrame(0x1, ''),
    ];
    const down = [
      text('welcome', { rsv: rsv1 }),
      frame({ opcode: 0x2, payload: Buffer.alloc(300, 9) }),
      frame({ opcode: 0xa, payload: 'ping' }),
      frame({ opcode: 0x2, payload: Buffer.alloc(70_000, 4), fin: false }),
      frame({ opcode: 0x9, payload: '' }),
      frame({ opcode: 0x0, payload: Buffer.alloc(10, 5) }),
    ];
    for (const f of up) client.send(f);
    for (const f of down) server.send(f);
    await received(server, total(up), 'the client frames');
    await received(client, total(down), 'the backend frames');
    expect(server.bytes().equals(Buffer.concat(up))).toBe(true);
    expect(client.bytes().equals(Buffer.concat(down))).toBe(true);

    // The backend's close frame and the client's answer pass too, and only then does the connection end.
    const bye = frame({ opcode: 0x8, payload: Buffer.from([0x0f, 0xa1, 0x62, 0x79, 0x65]) });
    server.send(bye);
    await received(client, total(down) + bye.length, 'the close frame');
    expect(closeCodeOf(client.frames().at(-1))).toBe(4001);
    const answer = clientFrame(0x8, Buffer.from([0x0f, 0xa1]));
    client.send(answer);
    await received(server, total(up) + answer.length, 'the close answer');
    await sleep(50);
    expect(client.closedAt).toBeUndefined();
    server.socket.end();
    expect(await client.endsWithin(2000)).toBe(true);
  });
});
