'use strict';
// One client cannot hurt others: a malformed message body is refused before it reaches
// a shared upstream connection, and clients that pin themselves with async messages do
// not starve the shared queue.

const assert = require('node:assert/strict');
const { integrationTest, sleep } = require('./lib/harness');
const { MSG_ASYNC, MSG_SYNC, RawConnection, encodeHeader, encodeQuery } = require('./lib/rawipc');

async function connectClient(port, credentials) {
  const client = await RawConnection.connect(port);
  await client.handshake(credentials);
  return client;
}

// Messages whose header is valid and whose body kdb+ would reject as 'badmsg.
const MALFORMED = [
  {
    name: 'compressed flag with a garbage body',
    bytes: () => Buffer.concat([encodeHeader({ compressed: 1, length: 40 }), Buffer.alloc(32, 0xee)]),
    reason: /^badmsg: /,
  },
  {
    name: 'vector count beyond the message',
    bytes: () => {
      const message = encodeQuery(MSG_SYNC, 'abc');
      message.writeUInt32LE(1000, 10);
      return message;
    },
    reason: /^badmsg: offset \d+: /,
  },
  {
    name: 'unknown type byte',
    bytes: () => {
      const message = encodeQuery(MSG_SYNC, 'abc');
      message.writeInt8(90, 8);
      return message;
    },
    reason: /^badmsg: offset 8: /,
  },
];

integrationTest('malformed body closes only its client', async (env, t) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });

  for (const testCase of MALFORMED) {
    await t.test(testCase.name, async () => {
      // Victims leave async assignments queued on the one shared connection.
      const victims = [];
      for (let i = 0; i < 3; i++) {
        const victim = await connectClient(env.qmux.port, `victim${i}:pw`);
        await victim.write(encodeQuery(MSG_ASYNC, `iso${i}:${100 + i}`));
        victims.push(victim);
      }

      const attacker = await connectClient(env.qmux.port, 'attacker:pw');
      await attacker.write(testCase.bytes());
      const message = await attacker.readMessage(2000);
      const text = message.body.subarray(1, message.body.indexOf(0, 1)).toString();
      assert.match(text, testCase.reason, 'the attacker gets a badmsg error');
      assert.equal(await attacker.waitClosed(2000), true, 'the attacker is disconnected');

      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await victims[i].query(`iso${i}`), { long: BigInt(100 + i) },
          `victim ${i} still sees its async assignment`);
        victims[i].destroy();
      }
    });
  }
  assert.doesNotMatch(env.upstream.stderr, /closed: (invalid|bad)/i, 'the upstream saw no bad message');
});

integrationTest('pinned clients do not starve the queue', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });

  // Three clients loop async-then-sync for 3 s, always pinned to the one connection.
  const deadline = Date.now() + 3000;
  const loopers = [];
  for (let i = 0; i < 3; i++) {
    loopers.push((async () => {
      const client = await connectClient(env.qmux.port, `looper${i}:pw`);
      while (Date.now() < deadline) {
        await client.write(encodeQuery(MSG_ASYNC, `pin${i}:1`));
        await client.query('system "sleep 0.2"; 1', 5000);
      }
      client.destroy();
    })());
  }

  await sleep(300);
  const plain = await connectClient(env.qmux.port, 'plain:pw');
  const started = Date.now();
  assert.deepEqual(await plain.query('2+3', 5000), { long: 5n });
  const waited = Date.now() - started;
  assert.ok(waited < 1500, `the plain request waited ${waited} ms behind 3 pinned loopers`);
  plain.destroy();
  await Promise.all(loopers);
});
