'use strict';
// A client that disconnects mid-request: qmux drains and discards the rest of the
// response, returns the upstream connection to the pool and logs the close. With a pool
// of one connection, the next client is served only if that connection came back.

const assert = require('node:assert/strict');
const { integrationTest, sleep } = require('./lib/harness');
const nodeq = require('./lib/nodeq');
const { MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

function closedLogPattern(localPort) {
  return new RegExp(`client \\d+ 127\\.0\\.0\\.1:${localPort}: closed`);
}

async function assertNextClientServed(env) {
  const client = await nodeq.connect(env.qmux.port);
  assert.equal(await client.sync('2+3', 5000), 5);
  assert.deepEqual(await client.sync('til 5', 5000), [0, 1, 2, 3, 4]);
  await client.close();
}

integrationTest('disconnect during large response', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });

  const raw = await RawConnection.connect(env.qmux.port);
  assert.equal(await raw.handshake(), 3);
  const localPort = raw.localPort;
  await raw.write(encodeQuery(MSG_SYNC, 'til 5000000'));
  // Wait until part of the 40 MB response arrived, then leave.
  await raw.read(4096, 5000);
  raw.destroy();

  await env.qmux.waitForLog(closedLogPattern(localPort), 3000);
  await assertNextClientServed(env);
});

integrationTest('disconnect before any response byte', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });

  const raw = await RawConnection.connect(env.qmux.port);
  await raw.handshake();
  const localPort = raw.localPort;
  await raw.write(encodeQuery(MSG_SYNC, 'system "sleep 0.2"'));
  await sleep(50);
  raw.destroy();

  await env.qmux.waitForLog(closedLogPattern(localPort), 3000);
  await assertNextClientServed(env);
});

integrationTest('repeated disconnects keep pool usable', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });

  for (let i = 0; i < 5; i++) {
    const raw = await RawConnection.connect(env.qmux.port);
    await raw.handshake();
    await raw.write(encodeQuery(MSG_SYNC, 'til 2000000'));
    raw.destroy();
  }
  await assertNextClientServed(env);
});
