'use strict';
// Limits and timeouts: each key below is set low, and the test observes its effect and
// that the error or log line names the key to change.

const assert = require('node:assert/strict');
const { freePort, integrationTest, sleep, upstreamIsQ, waitFor } = require('./lib/harness');
const { MSG_ASYNC, MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

async function connectClient(port) {
  const client = await RawConnection.connect(port);
  await client.handshake();
  return client;
}

async function readAnswer(client, timeoutMs = 3000) {
  const message = await client.readMessage(timeoutMs);
  assert.equal(message.type, 2, 'a response message');
  const type = message.body.readInt8(0);
  if (type === -128) return { error: message.body.subarray(1, message.body.indexOf(0, 1)).toString() };
  if (type === -7) return { long: message.body.readBigInt64LE(1) };
  return { type };
}

integrationTest('query timeout retires the connection', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, clients: { query_timeout_ms: 300 },
    pool: { unavailable_wait_ms: 5000 } });
  const client = await connectClient(env.qmux.port);

  const started = Date.now();
  const answer = await client.query('system "sleep 1.5"', 3000);
  const elapsed = Date.now() - started;
  assert.ok(answer.error, 'the timed-out request gets a kdb+ error');
  assert.match(answer.error, /^query timeout: no response within 300 ms \(clients\.query_timeout_ms\)/);
  assert.ok(elapsed < 1000, `error after ${elapsed} ms, before the query finished`);
  await waitFor(() => (/query not answered within 300 ms \(clients\.query_timeout_ms\); closing the connection/).test(env.qmux.stderr), { what: 'the log line' });

  // A new connection replaces the retired one and serves the next request. Like kdb+,
  // the stand-in accepts the new login only after the abandoned query finished.
  assert.deepEqual(await client.query('2+3', 5000), { long: 5n });
  client.destroy();
});

integrationTest('queue timeout answers a waiting request', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, clients: { queue_timeout_ms: 200 } });
  const busy = await connectClient(env.qmux.port);
  const waiting = await connectClient(env.qmux.port);

  await busy.write(encodeQuery(MSG_SYNC, 'system "sleep 1"'));
  await sleep(100);
  const started = Date.now();
  const answer = await waiting.query('2+3', 3000);
  const elapsed = Date.now() - started;
  assert.ok(answer.error, 'the queued request gets a kdb+ error');
  assert.match(answer.error, /^queue timeout: waited \d+ ms for an upstream connection \(clients\.queue_timeout_ms 200\)/);
  assert.ok(elapsed >= 150, `error after ${elapsed} ms, before the 200 ms limit`);
  assert.ok(elapsed < 800, `error after ${elapsed} ms, long after the 200 ms limit`);

  // The request in flight is not affected.
  const busyAnswer = await readAnswer(busy, 3000);
  assert.equal(busyAnswer.type, 0, 'the sleeping request returns its empty list');
  busy.destroy();
  waiting.destroy();
});

integrationTest('max_queue rejects requests beyond it', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, clients: { max_queue: 2 } });
  const clients = [];
  for (let i = 0; i < 4; i++) clients.push(await connectClient(env.qmux.port));

  await clients[0].write(encodeQuery(MSG_SYNC, 'system "sleep 0.5"'));
  await sleep(100);
  await clients[1].write(encodeQuery(MSG_SYNC, '1+1'));
  await clients[2].write(encodeQuery(MSG_SYNC, '1+2'));
  await sleep(100);

  const started = Date.now();
  const rejected = await clients[3].query('1+3', 3000);
  assert.ok(Date.now() - started < 300, 'the rejection is immediate');
  assert.ok(rejected.error, 'the request beyond max_queue gets a kdb+ error');
  assert.match(rejected.error, /^limit: 2 requests already wait .*raise clients\.max_queue/);

  assert.deepEqual(await readAnswer(clients[1]), { long: 2n });
  assert.deepEqual(await readAnswer(clients[2]), { long: 3n });
  for (const client of clients) client.destroy();
});

integrationTest('no upstream gives a prompt error', async (env) => {
  const port = await freePort();
  await env.startQmux({ upstreamPort: port, poolSize: 1, reconnectMinMs: 50, reconnectMaxMs: 100,
    pool: { unavailable_wait_ms: 300 } });
  const client = await connectClient(env.qmux.port);

  const started = Date.now();
  const answer = await client.query('2+3', 3000);
  const elapsed = Date.now() - started;
  assert.ok(answer.error, 'the request gets a kdb+ error');
  assert.match(answer.error, /^upstream unavailable: no upstream connection is logged in/);
  assert.ok(elapsed >= 250, `error after ${elapsed} ms, before the 300 ms wait`);
  assert.ok(elapsed < 1000, `error after ${elapsed} ms, long after the 300 ms wait`);

  // The first healthy reconnect serves the next request.
  await env.startUpstream({ port });
  await waitFor(() => /connected after \d+ failed attempts?/.test(env.qmux.stderr),
    { timeoutMs: 3000, what: 'the upstream login' });
  assert.deepEqual(await client.query('2+3', 3000), { long: 5n });
  client.destroy();
});

integrationTest('idle timeout closes only idle clients', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 2, clients: { idle_timeout_ms: 300 } });
  const idle = await connectClient(env.qmux.port);
  const busy = await connectClient(env.qmux.port);
  await busy.write(encodeQuery(MSG_SYNC, 'system "sleep 1.6"'));

  assert.equal(await idle.waitClosed(2000), true, 'the idle client is closed');
  await waitFor(() => (/closed: idle for \d+ ms \(clients\.idle_timeout_ms 300\)/).test(env.qmux.stderr), { what: 'the log line' });

  const answer = await readAnswer(busy, 3000);
  assert.equal(answer.type, 0, 'the client waiting on a long query stays connected');
  busy.destroy();
});

integrationTest('send timeout closes a client that stops reading', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, highWatermark: 65536, lowWatermark: 16384,
    clients: { send_timeout_ms: 500 } });
  const stalled = await connectClient(env.qmux.port);
  stalled.socket.pause();
  await stalled.write(encodeQuery(MSG_SYNC, 'til 5000000'));

  await waitFor(() => /output made no progress for 500 ms \(clients\.send_timeout_ms\)/.test(env.qmux.stderr),
    { timeoutMs: 4000, what: 'the send timeout close' });

  // The upstream connection the stalled client held serves others again.
  const other = await connectClient(env.qmux.port);
  assert.deepEqual(await other.query('2+3', 3000), { long: 5n });
  other.destroy();
  stalled.destroy();
});

integrationTest('health check replaces a hung connection',
  { skip: upstreamIsQ() && 'stops the upstream process with SIGSTOP' }, async (env) => {
    await env.startUpstream();
    await env.startQmux({ poolSize: 1, reconnectMinMs: 50, reconnectMaxMs: 200,
      pool: { health_check_interval_ms: 200, health_check_timeout_ms: 300 } });
    const client = await connectClient(env.qmux.port);
    assert.deepEqual(await client.query('2+3'), { long: 5n });

    process.kill(env.upstream.pid, 'SIGSTOP');
    try {
      await waitFor(() => /health check not answered within 300 ms \(pool\.health_check_timeout_ms\)/
        .test(env.qmux.stderr), { timeoutMs: 3000, what: 'the health-check failure' });
    } finally {
      process.kill(env.upstream.pid, 'SIGCONT');
    }
    assert.deepEqual(await client.query('3+4', 3000), { long: 7n });
    client.destroy();
  });

integrationTest('unsent request moves to another upstream',
  { skip: upstreamIsQ() && 'stops the upstream process with SIGSTOP' }, async (env) => {
    const first = await env.startUpstream();
    const secondPort = await freePort();
    await env.startQmux({ upstreamPorts: [first.port, secondPort], poolSize: 1,
      reconnectMinMs: 50, reconnectMaxMs: 200, highWatermark: 65536, lowWatermark: 16384 });
    const sender = await connectClient(env.qmux.port);
    assert.deepEqual(await sender.query('2+3'), { long: 5n });

    // With the first upstream stopped, a 30 MB async message fills the connection's
    // output buffer, so the sync request queued behind it is not written at all.
    process.kill(first.pid, 'SIGSTOP');
    await sender.write(encodeQuery(MSG_ASYNC, `big:"${'a'.repeat(30 * 1024 * 1024)}"`));
    await sleep(1000);
    const client = await connectClient(env.qmux.port);
    await client.write(encodeQuery(MSG_SYNC, '40+2'));
    await sleep(200);

    await env.startUpstream({ port: secondPort });
    await waitFor(() => new RegExp(`${secondPort}\\[0\\]: connected after`).test(env.qmux.stderr),
      { timeoutMs: 3000, what: 'the second upstream login' });
    process.kill(first.pid, 'SIGKILL');

    assert.deepEqual(await readAnswer(client, 3000), { long: 42n });
    await waitFor(() => (/request of client \d+ was not sent yet; it goes to another connection/).test(env.qmux.stderr), { what: 'the log line' });
    client.destroy();
    sender.destroy();
  });

integrationTest('max_clients rejects extra connections', async (env) => {
  await env.startUpstream();
  // The harness's readiness probe connects once before the test's clients.
  await env.startQmux({ poolSize: 1, clients: { max_clients: 2 } });
  const first = await connectClient(env.qmux.port);
  const second = await connectClient(env.qmux.port);

  const third = await RawConnection.connect(env.qmux.port);
  assert.equal(await third.waitClosed(2000), true, 'the third connection is closed');
  await waitFor(() => (/2 clients connected, the clients\.max_clients limit; raise it/).test(env.qmux.stderr), { what: 'the log line' });

  assert.deepEqual(await first.query('2+3'), { long: 5n }, 'connected clients are served');
  second.destroy();
  await sleep(100);
  const replacement = await connectClient(env.qmux.port);
  assert.deepEqual(await replacement.query('1+1'), { long: 2n }, 'a freed slot is reusable');
  first.destroy();
  replacement.destroy();
});

integrationTest('max_per_user limits one user name', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, clients: { max_per_user: 2 } });
  const alice = [];
  for (let i = 0; i < 2; i++) {
    const client = await RawConnection.connect(env.qmux.port);
    await client.handshake('alice:pw');
    alice.push(client);
  }

  const extra = await RawConnection.connect(env.qmux.port);
  assert.equal(await extra.handshake('alice:pw'), 3, 'the handshake completes');
  const message = await extra.readMessage(2000);
  const text = message.body.subarray(1, message.body.indexOf(0, 1)).toString();
  assert.match(text, /^limit: user alice already has 2 connections \(clients\.max_per_user\)/);
  assert.equal(await extra.waitClosed(2000), true, 'the extra connection is closed');

  const bob = await RawConnection.connect(env.qmux.port);
  await bob.handshake('bob:pw');
  assert.deepEqual(await bob.query('2+3'), { long: 5n }, 'another user is not limited');
  assert.deepEqual(await alice[0].query('1+1'), { long: 2n }, 'the first two stay connected');
  for (const client of [...alice, bob]) client.destroy();
});

integrationTest('out of descriptors pauses accepting', async (env) => {
  await env.startUpstream();
  // ASan and the event loop use some descriptors; 64 leaves room for a few dozen clients.
  await env.startQmux({ poolSize: 1, openFiles: 64 });

  const crowd = [];
  for (let i = 0; i < 100; i++) {
    crowd.push(await RawConnection.connect(env.qmux.port).catch(() => null));
  }
  await waitFor(() => /accept failed: Too many open files with \d+ clients connected; pausing accepts for 100 ms/
    .test(env.qmux.stderr), { timeoutMs: 3000, what: 'the pause line' });
  await sleep(1000);
  const lines = (env.qmux.stderr.match(/accept failed/g) || []).length;
  assert.ok(lines <= 3, `accept failures logged ${lines} times in about a second, not once per retry`);

  for (const connection of crowd) if (connection) connection.destroy();
  await sleep(300);
  const client = await connectClient(env.qmux.port);
  assert.deepEqual(await client.query('2+3', 3000), { long: 5n }, 'accepting resumes');
  client.destroy();
});

integrationTest('handshake timeout closes a silent client', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, clients: { handshake_timeout_ms: 300 } });

  const silent = await RawConnection.connect(env.qmux.port);
  const started = Date.now();
  assert.equal(await silent.waitClosed(2000), true, 'the silent client is closed');
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 250, `closed after ${elapsed} ms, before the 300 ms timeout`);
  assert.ok(elapsed < 1500, `closed after ${elapsed} ms, long after the 300 ms timeout`);
  await waitFor(() => (/handshake not completed within 300 ms \(clients\.handshake_timeout_ms\)/).test(env.qmux.stderr), { what: 'the log line' });

  const client = await connectClient(env.qmux.port);
  assert.deepEqual(await client.query('2+3'), { long: 5n }, 'a client that logs in is served');
  client.destroy();
});

integrationTest('connect timeout gives up on a silent upstream',
  { skip: upstreamIsQ() && 'stops the upstream process with SIGSTOP' }, async (env) => {
    await env.startUpstream();
    // While the stand-in is stopped, its kernel still completes TCP connects but no login
    // reply comes, so only pool.connect_timeout_ms ends the attempt.
    process.kill(env.upstream.pid, 'SIGSTOP');
    try {
      await env.startQmux({ poolSize: 1, connectTimeoutMs: 300, reconnectMinMs: 50,
        reconnectMaxMs: 100 });
      await waitFor(() => /login timed out after 300 ms \(pool\.connect_timeout_ms\)/.test(env.qmux.stderr),
        { timeoutMs: 3000, what: 'the login timeout' });
    } finally {
      process.kill(env.upstream.pid, 'SIGCONT');
    }
    const client = await connectClient(env.qmux.port);
    assert.deepEqual(await client.query('2+3', 5000), { long: 5n }, 'served once the upstream answers');
    client.destroy();
  });
