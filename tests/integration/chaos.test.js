'use strict';
// Chaos: 200 clients query qmux without pause while the two upstreams behind it are
// killed mid-response, stalled, made to reject logins and restarted on the same ports.
// Every request must end within its deadline with its own correct result, a documented
// kdb+ error, or a closed connection after part of its response had arrived. Once the
// faults stop, the pool must heal and serve every client correctly again.

const assert = require('node:assert/strict');
const {
  UPSTREAM_PASSWORD, UPSTREAM_USER, describeRun, integrationTest, parseLoadSummary, runClient,
  sleep, upstreamIsQ, waitFor,
} = require('./lib/harness');
const { MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

const CLIENTS = 200;
// Every 10th request of each load client is "K+til 20000", a 160 KB long vector, so an
// upstream killed mid-response often has part of a load client's response relayed.
const VECTOR_ITEMS = 20000;
const VECTOR_EVERY = 10;

// kdb+ cannot cancel a query, and a stopped or stalled upstream keeps its sockets open,
// so without clients.query_timeout_ms a request in flight to it would wait forever. The
// timeout counts from the write to the upstream, and the stand-in evaluates these
// requests in well under a millisecond (the load tool's latencies are mostly queueing).
// So one second fires only on a fault, and it is below the 2 s stall, which therefore
// ends requests with the error.
const QUERY_TIMEOUT_MS = 1000;
// While no connection is logged in, a request waits this long before 'upstream
// unavailable'. It covers a restart of both stand-ins plus the first reconnect delays
// (50 to 150 ms), and keeps the error prompt during a longer outage.
const UNAVAILABLE_WAIT_MS = 1000;
// Each response must arrive within this deadline, or qmux-client counts a timeout and
// the test fails. The slowest documented path is a request sent to a stopped upstream:
// the 1 s query timeout, then up to 1 s waiting for a login, then the 50 ms tick that
// expires waiters.
const RESPONSE_DEADLINE_MS = 10000;

const UNAVAILABLE = /^upstream unavailable/;
const DOCUMENTED_ERROR = /^(upstream connection lost|upstream unavailable|query timeout)/;

// Sends one sync query on a new qmux connection and returns how it ended:
// { kind: 'response', body }, { kind: 'error', text }, or { kind: 'closed', received }
// where received counts the response bytes that arrived before the close. Throws when
// nothing ends it within deadlineMs.
async function sideQuery(port, text, { deadlineMs = RESPONSE_DEADLINE_MS, onBytes } = {}) {
  const connection = await RawConnection.connect(port);
  try {
    await connection.handshake();
    await connection.write(encodeQuery(MSG_SYNC, text));
    if (onBytes) await onBytes(connection);
    return await readOutcome(connection, deadlineMs);
  } finally {
    connection.destroy();
  }
}

async function readOutcome(connection, deadlineMs) {
  const deadline = Date.now() + deadlineMs;
  let received = 0;
  for (;;) {
    if (connection.buffered >= 8) {
      const header = connection.chunks.length === 1 ? connection.chunks[0] : Buffer.concat(connection.chunks);
      const length = header.readUInt32LE(4);
      if (connection.buffered >= length) {
        const message = await connection.readMessage(1000);
        assert.equal(message.type, 2, 'qmux relays a response message');
        if (message.body.readInt8(0) === -128) {
          return { kind: 'error', text: message.body.subarray(1, message.body.indexOf(0, 1)).toString() };
        }
        return { kind: 'response', body: message.body };
      }
    }
    received = Math.max(received, connection.buffered);
    if (connection.closed) return { kind: 'closed', received };
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no response, error or close within ${deadlineMs} ms for a side query`);
    await connection.waitForChange(left);
  }
}

function describeOutcome(outcome) {
  if (outcome.kind === 'error') return `error '${outcome.text}`;
  if (outcome.kind === 'closed') return `closed after ${outcome.received} response bytes`;
  return `response of ${outcome.body.length} body bytes, type ${outcome.body.readInt8(0)}`;
}

// Returns true when body is the long vector 0 .. count-1, as `til count` returns it.
function isTil(body, count) {
  if (body.readInt8(0) !== 7 || body.readUInt32LE(2) !== count || body.length !== 6 + 8 * count) return false;
  for (let i = 0; i < count; i++) {
    if (body.readBigInt64LE(6 + 8 * i) !== BigInt(i)) return false;
  }
  return true;
}

// Logs into a stand-in directly, as qmux does. The connection stays open, because once
// the stand-in rejects logins a new connection could not switch that off again.
async function directConnect(port) {
  const connection = await RawConnection.connect(port);
  await connection.handshake(`${UPSTREAM_USER}:${UPSTREAM_PASSWORD}`);
  return connection;
}

integrationTest('chaos under 200 clients', {
  timeout: 120000,
  skip: upstreamIsQ() && 'kills, stops and restarts the stand-in processes',
}, async (env, t) => {
  let upstreams = [await env.startUpstream(), await env.addUpstream()];
  await env.startQmux({
    upstreamPorts: upstreams.map((upstream) => upstream.port),
    poolSize: 2,
    reconnectMinMs: 50,
    reconnectMaxMs: 500,
    pool: { unavailable_wait_ms: UNAVAILABLE_WAIT_MS },
    clients: { query_timeout_ms: QUERY_TIMEOUT_MS },
  });
  const port = env.qmux.port;
  const sideOutcomes = [];

  // Records a side query's outcome after checking that it is one qmux documents.
  function expectOutcome(step, outcome, { complete }) {
    sideOutcomes.push(`${step}: ${describeOutcome(outcome)}`);
    if (outcome.kind === 'error') {
      assert.match(outcome.text, DOCUMENTED_ERROR, `${step}: a documented kdb+ error`);
    } else if (outcome.kind === 'closed') {
      assert.ok(outcome.received > 0, `${step}: qmux closes a client only after part of its response was relayed`);
    } else {
      assert.ok(complete(outcome.body), `${step}: a complete response is the requested value`);
    }
  }

  async function restart(index, how) {
    if (how === 'SIGKILL') await upstreams[index].kill();
    upstreams[index] = await env.restartUpstream(upstreams[index]);
  }

  async function withStopped(indexes, ms) {
    for (const index of indexes) process.kill(upstreams[index].pid, 'SIGSTOP');
    try {
      await sleep(ms);
    } finally {
      for (const index of indexes) process.kill(upstreams[index].pid, 'SIGCONT');
    }
  }

  // The load runs through every fault and a quiet period after the last one.
  const loadStarted = Date.now();
  const load = runClient(['load', '-p', String(port), '-n', String(CLIENTS), '--duration-ms', '32000',
    '--keep-going', '--timeout-ms', String(RESPONSE_DEADLINE_MS),
    '--vector-items', String(VECTOR_ITEMS), '--vector-every', String(VECTOR_EVERY)], { timeoutMs: 90000 });
  await sleep(1000);

  // 1. An upstream closes a connection halfway through a response.
  for (let i = 0; i < 3; i++) {
    const outcome = await sideQuery(port, '.standin.closeMid 2000000');
    expectOutcome('closeMid', outcome, { complete: () => false });
    await sleep(300);
  }

  // 2. Both upstreams are killed while a 40 MB response streams to a client. The client
  // pauses reading, so the response cannot finish first. Then both restart on their ports.
  const killed = await sideQuery(port, 'til 5000000', {
    onBytes: async (connection) => {
      await waitFor(() => connection.buffered >= 65536, { timeoutMs: 5000, what: 'the first 64 KiB of til 5000000' });
      connection.socket.pause();
      await Promise.all([upstreams[0].kill(), upstreams[1].kill()]);
      connection.socket.resume();
    },
  });
  expectOutcome('SIGKILL mid-response', killed, { complete: () => false });
  assert.equal(killed.kind, 'closed', 'a client with part of its response relayed is disconnected');
  await Promise.all([restart(0, 'SIGKILL'), restart(1, 'SIGKILL')]);
  await sleep(1000);

  // 3. An upstream blocks for 2 s after sending half a response. The query timeout
  // closes that client, and requests in flight to the same upstream get 'query timeout'.
  const stalled = await sideQuery(port, '.standin.stallMid 2');
  expectOutcome('stallMid 2', stalled, { complete: (body) => isTil(body, 1000000) });
  await sleep(1500);

  // 4. SIGSTOP one upstream, then both: requests in flight time out, and with no login
  // possible the queued ones get 'upstream unavailable'.
  await withStopped([0], 2500);
  await sleep(1000);
  await withStopped([0, 1], 2500);
  await sleep(1500);

  // 5. Both upstreams reject new logins, and closeMid requests drop the pool's
  // connections one by one until qmux has none logged in. Then logins are accepted again.
  const directs = await Promise.all(upstreams.map((upstream) => directConnect(upstream.port)));
  for (const direct of directs) {
    assert.deepEqual(await direct.query('.standin.refuse 1b'), { otherType: 101 }, 'refuse 1b returns ::');
  }
  let unavailableSeen = false;
  for (let attempt = 0; attempt < 20 && !unavailableSeen; attempt++) {
    const outcome = await sideQuery(port, '.standin.closeMid 200000');
    expectOutcome('closeMid while logins are rejected', outcome, { complete: () => false });
    unavailableSeen = outcome.kind === 'error' && UNAVAILABLE.test(outcome.text);
  }
  assert.ok(unavailableSeen, 'with every login rejected, a request gets "upstream unavailable"');
  await sleep(1000);
  for (const direct of directs) {
    assert.deepEqual(await direct.query('.standin.refuse 0b'), { otherType: 101 }, 'refuse 0b returns ::');
    direct.destroy();
  }
  await sleep(1000);

  // 6. Repeated restarts on the same ports, one upstream at a time and then both.
  for (let i = 0; i < 3; i++) {
    await restart(0, 'SIGKILL');
    await sleep(300);
    await restart(1, 'SIGTERM');
    await sleep(300);
  }
  await Promise.all([restart(0, 'SIGTERM'), restart(1, 'SIGKILL')]);
  const faultsEnded = Date.now() - loadStarted;

  const result = await load;
  const summary = parseLoadSummary(result.stdout);
  const context = `${describeRun(result)}\nside queries:\n${sideOutcomes.join('\n')}`;
  assert.ok(summary, `summary line missing\n${context}`);
  t.diagnostic(`chaos load: ${result.stdout.trim()}`);
  t.diagnostic(`side queries: ${sideOutcomes.join('; ')}`);
  assert.ok(faultsEnded < 30000, `the faults ended at ${faultsEnded} ms, before the load's quiet period`);

  // Never another client's data, never a hang, never an undocumented error.
  assert.equal(summary.wrong, 0, context);
  assert.equal(summary.timeouts, 0, context);
  assert.equal(summary.other_errors, 0, context);
  assert.equal(summary.connect_failures, 0, context);
  assert.equal(summary.closed_empty, 0, `a connection closed before any response byte\n${context}`);
  assert.ok(summary.max_us < RESPONSE_DEADLINE_MS * 1000, context);
  assert.equal(result.code, 0, context);

  // The faults reached the load clients, and most requests still succeeded.
  assert.ok(summary.lost > 0, `some requests got "upstream connection lost"\n${context}`);
  assert.ok(summary.unavailable > 0, `some requests got "upstream unavailable"\n${context}`);
  assert.ok(summary.query_timeouts > 0, `some requests got "query timeout"\n${context}`);
  assert.ok(summary.ok > summary.requests / 2, context);

  // After the faults, the healed pool serves every client correctly.
  const healed = await runClient(['load', '-p', String(port), '-n', String(CLIENTS), '-r', '5',
    '--timeout-ms', '10000', '--vector-items', '1000', '--vector-every', '5'], { timeoutMs: 60000 });
  const healedSummary = parseLoadSummary(healed.stdout);
  assert.ok(healedSummary, describeRun(healed));
  assert.equal(healedSummary.ok, CLIENTS * 5, describeRun(healed));
  assert.equal(healed.code, 0, describeRun(healed));

  await waitFor(() => /connection closed: .*; reconnecting/.test(env.qmux.stderr),
    { what: 'qmux logs each lost connection' });
  await waitFor(() => /reconnected after \d+ attempts?/.test(env.qmux.stderr),
    { what: 'qmux logs each reconnect' });
});
