'use strict';
// Client handshakes through qmux: the agreed capability is the lower of the client's
// request and the upstream's, a client without a capability byte gets 0 as kdb+ replies,
// and several requests written at once are answered in order.

const assert = require('node:assert/strict');
const { integrationTest, upstreamIsQ } = require('./lib/harness');
const { MSG_ASYNC, MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

// Waits until qmux has logged in upstream, so the pool capability is known.
async function waitForUpstreamLogin(port) {
  const probe = await RawConnection.connect(port);
  await probe.handshake();
  const answer = await probe.query('2+3', 5000);
  assert.deepEqual(answer, { long: 5n }, 'a query succeeds before the handshake checks');
  probe.destroy();
}

integrationTest('capability is min of client and pool', async (env, t) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });
  await waitForUpstreamLogin(env.qmux.port);

  for (const requested of [1, 2, 3, 5, 6]) {
    await t.test(`client requests ${requested}`, async () => {
      const client = await RawConnection.connect(env.qmux.port);
      const reply = await client.handshake('capuser:pw', requested);
      assert.equal(reply, requested, `reply to capability ${requested}`);
      assert.deepEqual(await client.query('1+1'), { long: 2n });
      client.destroy();
    });
  }
});

integrationTest('handshake without capability byte', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });

  // Early Java clients send "user:password" and NUL only, and read one reply byte.
  const client = await RawConnection.connect(env.qmux.port);
  await client.write(Buffer.from('legacy:pw\0'));
  const reply = await client.read(1);
  assert.equal(reply[0], 0, 'the agreed capability is 0');
  assert.deepEqual(await client.query('2*21'), { long: 42n });
  client.destroy();
});

integrationTest('handshake without credentials', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });

  const client = await RawConnection.connect(env.qmux.port);
  await client.write(Buffer.from([3, 0]));
  const reply = await client.read(1);
  assert.equal(reply[0], 3);
  assert.deepEqual(await client.query('til 0; 7'), { long: 7n });
  client.destroy();
});

integrationTest('capability capped by upstream', { skip: upstreamIsQ() && 'q agrees its own capability' },
  async (env) => {
    await env.startUpstream({ args: ['--capability', '3'] });
    await env.startQmux({ poolSize: 2 });
    await waitForUpstreamLogin(env.qmux.port);

    const client = await RawConnection.connect(env.qmux.port);
    const reply = await client.handshake('capuser:pw', 6);
    assert.equal(reply, 3, 'a capability-6 client gets the upstream capability 3');
    client.destroy();
  });

integrationTest('pipelined requests answered in order', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 4 });

  const client = await RawConnection.connect(env.qmux.port);
  await client.handshake();

  // Five syncs and an async in one write: the responses come back in request order,
  // and the sync after the async sees its assignment.
  await client.write(Buffer.concat([
    encodeQuery(MSG_SYNC, '100+1'),
    encodeQuery(MSG_SYNC, 'system "sleep 0.2"; 102'),
    encodeQuery(MSG_SYNC, '100+3'),
    encodeQuery(MSG_ASYNC, 'pipelined:104'),
    encodeQuery(MSG_SYNC, 'pipelined'),
    encodeQuery(MSG_SYNC, '100+5'),
  ]));

  const expected = [101n, 102n, 103n, 104n, 105n];
  for (const value of expected) {
    const message = await client.readMessage(3000);
    assert.equal(message.type, 2, 'a response message');
    assert.equal(message.body.readInt8(0), -7, `a long atom for ${value}`);
    assert.equal(message.body.readBigInt64LE(1), value);
  }
  client.destroy();
});

integrationTest('capability 0 gets type for timestamps', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });
  await waitForUpstreamLogin(env.qmux.port);

  // kdb+ 2.5 clients cannot read timestamps: kdb+ answers them 'type, and so does qmux,
  // though its upstream connection agreed capability 6.
  const legacy = await RawConnection.connect(env.qmux.port);
  await legacy.write(Buffer.from('legacy:pw\0'));
  assert.equal((await legacy.read(1))[0], 0, 'the agreed capability is 0');
  const answer = await legacy.query('.standin.table 2');
  assert.match(answer.error, /^type: the response holds a timestamp, which a client of capability 0 cannot read/);
  assert.deepEqual(await legacy.query('count .standin.table 2'), { long: 2n }, 'the connection goes on');
  legacy.destroy();

  const modern = await RawConnection.connect(env.qmux.port);
  assert.equal(await modern.handshake('modern:pw', 1), 1);
  const table = await modern.query('.standin.table 2');
  assert.equal(table.otherType, 98, 'a capability 1 client gets the table');
  modern.destroy();
});
