'use strict';
// An upstream connection that dies mid-request: the client whose response had not started
// gets the error "upstream connection lost" at once, a client whose response had started
// is disconnected, and requests not yet sent wait for the reconnect.

const assert = require('node:assert/strict');
const { describeRun, integrationTest, parseLoadSummary, runClient, sleep } = require('./lib/harness');
const { MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

const LOST_PREFIX = 'upstream connection lost';

integrationTest('upstream killed during sync request', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, reconnectMinMs: 50, reconnectMaxMs: 500 });

  const busy = await RawConnection.connect(env.qmux.port);
  await busy.handshake();
  await busy.write(encodeQuery(MSG_SYNC, 'system "sleep 1"'));
  await sleep(200);

  // With one pooled connection, this request waits in the queue behind the sleep.
  const queued = await RawConnection.connect(env.qmux.port);
  await queued.handshake();
  await queued.write(encodeQuery(MSG_SYNC, '2+3'));
  await sleep(100);

  await env.upstream.kill();
  const killedAt = Date.now();
  const message = await busy.readMessage(1000);
  const elapsed = Date.now() - killedAt;
  const body = message.body;
  assert.equal(body.readInt8(0), -128, 'the response is a kdb+ error');
  const text = body.subarray(1, body.indexOf(0, 1)).toString();
  assert.ok(text.startsWith(LOST_PREFIX), `error text "${text}" starts with "${LOST_PREFIX}"`);
  assert.ok(elapsed <= 1000, `error arrived ${elapsed} ms after the kill`);

  // The queued request gets no response while the upstream is down.
  await sleep(300);
  assert.equal(queued.buffered, 0, 'no response while the upstream is down');
  assert.equal(queued.closed, false, 'the queued client stays connected');

  await env.restartUpstream();
  const answer = await queued.readMessage(5000);
  assert.equal(answer.body.readInt8(0), -7, 'queued request answered with a long');
  assert.equal(answer.body.readBigInt64LE(1), 5n);

  const fresh = await RawConnection.connect(env.qmux.port);
  await fresh.handshake();
  assert.deepEqual(await fresh.query('6*7'), { long: 42n });
  busy.destroy();
  queued.destroy();
  fresh.destroy();
});

integrationTest('upstream closes mid-response', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 4, reconnectMinMs: 50, reconnectMaxMs: 500 });
  const port = String(env.qmux.port);

  const load = runClient(['load', '-p', port, '-n', '20', '-r', '100', '--timeout-ms', '10000'],
    { timeoutMs: 30000 });
  const broken = await runClient(['-p', port, '-T', '10000', '.standin.closeMid 10000000'], { timeoutMs: 30000 });

  // Either outcome is allowed; a value (exit 0) would mean a truncated result was accepted.
  if (broken.code === 1) {
    assert.ok(broken.stdout.startsWith(`'${LOST_PREFIX}`), describeRun(broken));
  } else {
    assert.equal(broken.code, 2, describeRun(broken));
    assert.match(broken.stderr, /connection closed by the server while waiting/, describeRun(broken));
  }

  const loadResult = await load;
  const summary = parseLoadSummary(loadResult.stdout);
  assert.equal(loadResult.code, 0, describeRun(loadResult));
  assert.equal(summary.ok, 2000, loadResult.stdout);

  const after = await runClient(['-p', port, '-T', '5000', '2+3']);
  assert.equal(after.code, 0, describeRun(after));
  assert.equal(after.stdout, '5\n');
});
