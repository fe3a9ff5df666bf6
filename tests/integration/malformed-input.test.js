'use strict';
// Malformed client input: qmux closes that one connection and logs it, while a
// well-behaved client on another connection keeps getting correct results.

const assert = require('node:assert/strict');
const { integrationTest, sleep } = require('./lib/harness');
const nodeq = require('./lib/nodeq');
const { MSG_SYNC, RawConnection, encodeHeader, encodeQuery } = require('./lib/rawipc');

const MAX_MESSAGE_SIZE = 1048576;

// Each case sends bytes after an optional handshake. With vanish set, the test closes the
// connection itself partway through a message instead of waiting for qmux to close it.
const CASES = [
  {
    name: 'invalid byte-order byte',
    bytes: () => { const m = encodeQuery(MSG_SYNC, '2+3'); m[0] = 2; return m; },
  },
  {
    name: 'unknown message type',
    bytes: () => { const m = encodeQuery(MSG_SYNC, '2+3'); m[1] = 3; return m; },
  },
  {
    name: 'invalid compression byte',
    bytes: () => { const m = encodeQuery(MSG_SYNC, '2+3'); m[2] = 7; return m; },
  },
  {
    name: 'length below 10',
    bytes: () => Buffer.concat([encodeHeader({ length: 9 }), Buffer.from([0xf9])]),
  },
  {
    name: 'length zero',
    bytes: () => encodeHeader({ length: 0 }),
  },
  {
    name: 'length above max_message_size',
    bytes: () => Buffer.concat([encodeHeader({ length: MAX_MESSAGE_SIZE + 1 }), Buffer.alloc(64)]),
  },
  {
    name: 'length of 512 GiB',
    bytes: () => encodeHeader({ length: 2 ** 39 }),
  },
  {
    name: 'big-endian length above max_message_size',
    bytes: () => encodeHeader({ endian: 0, length: MAX_MESSAGE_SIZE * 4 }),
  },
  {
    name: 'handshake of 1 MiB without NUL',
    skipHandshake: true,
    bytes: () => Buffer.alloc(1024 * 1024, 'a'),
  },
  {
    name: 'garbage header after handshake',
    bytes: () => Buffer.from([0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7, 0xf6]),
  },
  {
    name: 'client vanishes mid-message',
    vanish: true,
    bytes: () => Buffer.concat([encodeHeader({ length: 1000 }), Buffer.alloc(100, 0x0a)]),
  },
  {
    name: 'client vanishes mid-header',
    vanish: true,
    bytes: () => encodeHeader({ length: 1000 }).subarray(0, 5),
  },
];

// Runs queries on one node-q connection until stop() and records every wrong result.
function startWellBehavedClient(port) {
  const state = { answered: 0, failures: [], running: true };
  state.done = (async () => {
    const client = await nodeq.connect(port);
    let i = 0;
    while (state.running) {
      const key = 7000000 + i;
      try {
        const value = await client.sync(`${key}+0`, 5000);
        if (value !== key) state.failures.push(`query ${i}: expected ${key}, received ${value}`);
        else state.answered++;
      } catch (error) {
        state.failures.push(`query ${i}: ${error.message}`);
      }
      i++;
      await sleep(5);
    }
    await client.close();
  })();
  state.stop = async () => {
    state.running = false;
    await state.done;
  };
  return state;
}

integrationTest('malformed input closes only that client', async (env, t) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 2, maxMessageSize: MAX_MESSAGE_SIZE });
  const wellBehaved = startWellBehavedClient(env.qmux.port);
  await waitForAnswers(wellBehaved, 1);

  for (const testCase of CASES) {
    await t.test(testCase.name, async () => {
      const raw = await RawConnection.connect(env.qmux.port);
      const localPort = raw.localPort;
      if (!testCase.skipHandshake) assert.equal(await raw.handshake(), 3, 'handshake accepted');
      const answeredBefore = wellBehaved.answered;

      // qmux may close while a large write is still going; that is the expected outcome.
      await raw.write(testCase.bytes()).catch(() => {});
      if (testCase.vanish) {
        raw.destroy();
      } else {
        assert.equal(await raw.waitClosed(2000), true, 'qmux closed the connection within 2 s');
      }

      await env.qmux.waitForLog(new RegExp(`client \\d+ 127\\.0\\.0\\.1:${localPort}: closed`), 2000);
      await waitForAnswers(wellBehaved, answeredBefore + 3);
      assert.deepEqual(wellBehaved.failures, [], 'well-behaved client failures');
    });
  }

  await wellBehaved.stop();
  assert.deepEqual(wellBehaved.failures, []);
});

async function waitForAnswers(state, count) {
  const deadline = Date.now() + 3000;
  while (state.answered < count) {
    if (Date.now() > deadline) {
      throw new Error(`well-behaved client has ${state.answered} answers, expected ${count}; failures: ${state.failures.join('; ')}`);
    }
    await sleep(10);
  }
}

integrationTest('qmux serves after malformed storm', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, maxMessageSize: MAX_MESSAGE_SIZE });

  const connections = await Promise.all(Array.from({ length: 50 }, () => RawConnection.connect(env.qmux.port)));
  await Promise.all(connections.map(async (raw, i) => {
    await raw.handshake();
    const bytes = CASES[i % CASES.length].bytes();
    await raw.write(bytes).catch(() => {});
    raw.destroy();
  }));

  const raw = await RawConnection.connect(env.qmux.port);
  await raw.handshake();
  assert.deepEqual(await raw.query('2+3'), { long: 5n });
  raw.destroy();
});
