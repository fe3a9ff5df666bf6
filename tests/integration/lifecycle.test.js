'use strict';
// The service lifecycle: SIGHUP reloads the configuration without dropping clients,
// SIGTERM drains requests in flight before exiting 0, a second signal exits at once,
// systemd notifications, SIGUSR1 log reopening, and the access and slow-request lines.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const {
  CLIENT, countMatches, freePort, integrationTest, qmuxConfigText, reloadQmux, sleep, waitFor,
} = require('./lib/harness');
const { MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

async function connectClient(port) {
  const client = await RawConnection.connect(port);
  await client.handshake();
  return client;
}

integrationTest('reload resizes the pool', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });
  const client = await connectClient(env.qmux.port);
  assert.deepEqual(await client.query('2+3'), { long: 5n });

  reloadQmux(env, { poolSize: 3 });
  await waitFor(() => /pool\.size 1 -> 3/.test(env.qmux.stderr), { what: 'the resize line' });
  await waitFor(() => countMatches(env.qmux.stderr, /\]: connected, capability/g) === 3,
    { what: 'three logged-in connections' });
  assert.deepEqual(await client.query('3+4'), { long: 7n }, 'the client stays connected');

  reloadQmux(env, { poolSize: 1 });
  await waitFor(() => /pool\.size 3 -> 1/.test(env.qmux.stderr), { what: 'the shrink line' });
  await waitFor(() => countMatches(env.qmux.stderr, /closed: removed from the pool by a reload/g) === 2,
    { what: 'two retired connections' });
  assert.deepEqual(await client.query('4+5'), { long: 9n });
  client.destroy();
});

integrationTest('reload adds and removes upstreams', async (env) => {
  const first = await env.startUpstream();
  const second = await env.addUpstream();
  await env.startQmux({ poolSize: 1, upstreamPorts: [first.port] });
  const client = await connectClient(env.qmux.port);

  reloadQmux(env, { poolSize: 1, upstreamPorts: [first.port, second.port] });
  await waitFor(() => new RegExp(`upstream 127\\.0\\.0\\.1:${second.port} added`).test(env.qmux.stderr),
    { what: 'the added line' });

  reloadQmux(env, { poolSize: 1, upstreamPorts: [second.port] });
  await waitFor(() => new RegExp(`upstream 127\\.0\\.0\\.1:${first.port} removed`).test(env.qmux.stderr),
    { what: 'the removed line' });
  await waitFor(() => new RegExp(`${first.port}\\[0\\]: closed: removed from the pool by a reload`)
    .test(env.qmux.stderr), { what: 'the first upstream connection closed' });

  // With the first upstream gone entirely, the second one serves the query.
  await first.kill();
  assert.deepEqual(await client.query('20+1'), { long: 21n });
  assert.equal(client.closed, false, 'the client stayed connected through both reloads');
  client.destroy();
});

integrationTest('invalid reload keeps the running config', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });
  const client = await connectClient(env.qmux.port);

  fs.writeFileSync(env.qmux.configPath, 'pool = { size = 0; };\nlisten = { port = "x"; };\n');
  process.kill(env.qmux.pid, 'SIGHUP');
  await waitFor(() => /reload failed: .*qmux\.conf:1: pool\.size = 0 is out of range; allowed 1\.\.1024 \(more errors in the log\); the running configuration stays in use/
    .test(env.qmux.stderr), { what: 'the rejection line' });
  await waitFor(() => (/reload: .*pool\.size = 0 is out of range/).test(env.qmux.stderr), { what: 'the log line' });
  assert.deepEqual(await client.query('2+3'), { long: 5n }, 'still serving');
  client.destroy();
});

integrationTest('reload warns about restart-only keys', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });
  const other = await freePort();
  const text = qmuxConfigText({ listenPort: other, upstreamPort: env.upstream.port, poolSize: 1 });
  fs.writeFileSync(env.qmux.configPath, text);
  process.kill(env.qmux.pid, 'SIGHUP');
  await waitFor(() => /listen\.address, listen\.port and listen\.backlog change only with a restart/
    .test(env.qmux.stderr), { what: 'the restart-only warning' });
  const client = await connectClient(env.qmux.port);
  assert.deepEqual(await client.query('2+3'), { long: 5n }, 'still on the old port');
  client.destroy();
});

integrationTest('SIGTERM drains requests in flight', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });
  const busy = await connectClient(env.qmux.port);
  const queued = await connectClient(env.qmux.port);
  await busy.write(encodeQuery(MSG_SYNC, 'system "sleep 0.6"; 42'));
  await sleep(100);
  await queued.write(encodeQuery(MSG_SYNC, '2+3'));
  await sleep(100);

  env.qmux.stopRequested = true;
  process.kill(env.qmux.pid, 'SIGTERM');

  const queuedAnswer = await queued.readMessage(2000);
  const text = queuedAnswer.body.subarray(1, queuedAnswer.body.indexOf(0, 1)).toString();
  assert.equal(text, 'qmux is shutting down', 'the queued request gets the shutdown error');

  const busyAnswer = await busy.readMessage(3000);
  assert.equal(busyAnswer.body.readInt8(0), -7, 'the request in flight finishes');
  assert.equal(busyAnswer.body.readBigInt64LE(1), 42n);

  await waitFor(() => !env.qmux.running, { timeoutMs: 3000, what: 'qmux to exit' });
  assert.equal(env.qmux.exitCode, 0, 'exit status 0');
  await assert.rejects(RawConnection.connect(env.qmux.port), 'no longer accepting');
});

integrationTest('second SIGTERM exits at once', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, clients: { shutdown_timeout_ms: 30000 } });
  const busy = await connectClient(env.qmux.port);
  await busy.write(encodeQuery(MSG_SYNC, 'system "sleep 3"'));
  await sleep(100);

  env.qmux.stopRequested = true;
  process.kill(env.qmux.pid, 'SIGTERM');
  await sleep(200);
  assert.equal(env.qmux.running, true, 'the first signal waits for the request in flight');
  const started = Date.now();
  process.kill(env.qmux.pid, 'SIGTERM');
  await waitFor(() => !env.qmux.running, { timeoutMs: 2000, what: 'qmux to exit' });
  assert.ok(Date.now() - started < 1000, 'the second signal exits at once');
  assert.equal(env.qmux.exitCode, 0);
  assert.equal(await busy.waitClosed(1000), true, 'the client is disconnected');
});

integrationTest('systemd notifications', async (env) => {
  const socketPath = path.join(env.tmpDir, 'notify.sock');
  const listener = spawn(CLIENT, ['notify-socket', socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let received = '';
  listener.stdout.setEncoding('utf8');
  listener.stdout.on('data', (chunk) => { received += chunk; });
  try {
    await waitFor(() => received.includes('listening'), { what: 'the notification socket' });
    await env.startUpstream();
    await env.startQmux({ poolSize: 1, processEnv: { NOTIFY_SOCKET: socketPath } });

    await waitFor(() => /READY=1 \| MAINPID=\d+/.test(received), { what: 'READY=1' });
    await waitFor(() => /STATUS=\d+ clients, \d+ requests queued, \d+ upstream connections logged in/
      .test(received), { what: 'a STATUS line' });

    process.kill(env.qmux.pid, 'SIGHUP');
    await waitFor(() => /RELOADING=1 \| MONOTONIC_USEC=\d+/.test(received), { what: 'RELOADING=1' });
    await waitFor(() => countMatches(received, /READY=1/g) >= 2, { what: 'READY=1 after the reload' });

    env.qmux.stopRequested = true;
    process.kill(env.qmux.pid, 'SIGTERM');
    await waitFor(() => /STOPPING=1/.test(received), { what: 'STOPPING=1' });
  } finally {
    listener.kill('SIGTERM');
  }
});

integrationTest('log file reopens on SIGUSR1', async (env) => {
  const logPath = path.join(env.tmpDir, 'qmux.log');
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, log: { target: 'file', file: logPath } });
  await waitFor(() => fs.existsSync(logPath) && /started/.test(fs.readFileSync(logPath, 'utf8')),
    { what: 'the start line in the log file' });

  fs.renameSync(logPath, `${logPath}.1`);
  process.kill(env.qmux.pid, 'SIGUSR1');
  await waitFor(() => fs.existsSync(logPath) && /log file .* reopened/.test(fs.readFileSync(logPath, 'utf8')),
    { what: 'the reopened file' });
  const client = await connectClient(env.qmux.port);
  await client.query('2+3');
  client.destroy();
  await waitFor(() => /logged in as user rawclient/.test(fs.readFileSync(logPath, 'utf8')),
    { what: 'new lines in the new file' });
  assert.doesNotMatch(fs.readFileSync(`${logPath}.1`, 'utf8'), /logged in as user rawclient/);
});

integrationTest('access and slow request lines', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, log: { access: true, slow_request_ms: 150 } });
  const client = await connectClient(env.qmux.port);
  assert.deepEqual(await client.query('2+3'), { long: 5n });
  await waitFor(() => /INFO  client \d+ 127\.0\.0\.1:\d+: access user=rawclient upstream=\d+ type=sync request_bytes=17 response_bytes=17 queue_us=\d+ total_us=\d+ outcome=ok/
    .test(env.qmux.stderr), { what: 'the access line' });

  await client.query('system "sleep 0.2"; 1');
  await waitFor(() => /WARN  client \d+ .*: slow request user=rawclient .* total_us=(\d{6,}) outcome=ok/
    .test(env.qmux.stderr), { what: 'the slow request line' });
  client.destroy();
});

integrationTest('syslog target sends RFC 3164 lines', async (env) => {
  const socketPath = path.join(env.tmpDir, 'syslog.sock');
  const listener = spawn(CLIENT, ['notify-socket', socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  let received = '';
  listener.stdout.setEncoding('utf8');
  listener.stdout.on('data', (chunk) => { received += chunk; });
  try {
    await waitFor(() => received.includes('listening'), { what: 'the syslog socket' });
    await env.startUpstream();
    await env.startQmux({ poolSize: 1, log: { target: 'syslog', syslog_path: socketPath } });

    // Facility daemon (3): info is <30>, warn <28>.
    await waitFor(() => new RegExp(`^<30>qmux\\[${env.qmux.pid}\\]: listening on 127\\.0\\.0\\.1:\\d+$`, 'm')
      .test(received), { what: 'the listening line over syslog' });
    const client = await RawConnection.connect(env.qmux.port);
    await client.write(Buffer.from('x'.repeat(2000)));
    await waitFor(() => /^<30>qmux\[\d+\]: client \d+ 127\.0\.0\.1:\d+: closed: invalid handshake/m
      .test(received), { what: 'a client line over syslog' });
    client.destroy();
    assert.equal(env.qmux.stderr, '', 'nothing goes to stderr with target syslog');
  } finally {
    listener.kill('SIGTERM');
  }
});

integrationTest('missing syslog socket fails the start', async (env) => {
  await env.startUpstream();
  const qmux = await env.startQmux({ poolSize: 1, waitReady: false,
    log: { target: 'syslog', syslog_path: path.join(env.tmpDir, 'absent.sock') } });
  qmux.stopRequested = true;
  await waitFor(() => !qmux.running, { timeoutMs: 3000, what: 'qmux to exit' });
  assert.equal(qmux.exitCode, 3, 'exit status 3, a start-up failure');
  assert.match(qmux.stderr, /cannot connect to the syslog socket .*absent\.sock: .*; check log\.syslog_path/);
});
