'use strict';
// An upstream that rejects qmux's login: qmux logs the rejection with the upstreams entry
// to check, keeps retrying with backoff, holds client requests in the queue meanwhile,
// and serves them once the upstream accepts the login again.

const assert = require('node:assert/strict');
const { UPSTREAM_PASSWORD, UPSTREAM_USER, integrationTest, sleep, upstreamIsQ, waitFor } =
  require('./lib/harness');
const { MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

integrationTest('upstream rejecting login, then accepting',
  { skip: upstreamIsQ() && 'uses the stand-in .standin.refuse helper' }, async (env) => {
    await env.startUpstream();

    // A direct connection made before the refusal switches login refusal on and off.
    const control = await RawConnection.connect(env.upstream.port);
    await control.handshake(`${UPSTREAM_USER}:${UPSTREAM_PASSWORD}`);
    await control.query('.standin.refuse 1b');

    await env.startQmux({ poolSize: 2, reconnectMinMs: 50, reconnectMaxMs: 200 });
    await waitFor(() => /login rejected by upstream \(check user and password of upstreams entry 1\)/
      .test(env.qmux.stderr), { timeoutMs: 5000, what: 'the login rejection log line' });

    const client = await RawConnection.connect(env.qmux.port);
    await client.handshake();
    await client.write(encodeQuery(MSG_SYNC, '20+22'));
    await sleep(500);
    assert.equal(client.buffered, 0, 'no response while every login is rejected');
    assert.equal(client.closed, false, 'the client stays connected');

    // Retries are logged once, not once per attempt.
    const rejections = env.qmux.stderr.match(/login rejected by upstream/g).length;
    assert.ok(rejections <= 2, `login rejection logged ${rejections} times for 2 connections`);

    await control.query('.standin.refuse 0b');
    const message = await client.readMessage(5000);
    assert.equal(message.body.readInt8(0), -7, 'a long atom');
    assert.equal(message.body.readBigInt64LE(1), 42n);
    await waitFor(() => /connected after \d+ failed attempts? and [\d.]+ s/.test(env.qmux.stderr),
      { timeoutMs: 2000, what: 'the reconnect log line' });

    client.destroy();
    control.destroy();
  });
