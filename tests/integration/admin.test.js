'use strict';
// The admin console: a kdb+ IPC listener (admin.port) whose sync requests are commands
// such as "show clients". Each test runs a command through node-q and checks its effect
// on the running qmux, or checks the q value it returns.

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');
const nodeq = require('node-q');
const {
  HOST, QMUX, UPSTREAM_PASSWORD, freePort, integrationTest, qmuxConfigText, sleep, waitFor,
} = require('./lib/harness');
const { MSG_ASYNC, MSG_SYNC, RawConnection, encodeHeader, encodeQuery } = require('./lib/rawipc');

const ADMIN_USER = 'ops';

// Starts an upstream and qmux with the admin console on a free port; returns its port.
async function startWithAdmin(env, options = {}) {
  await env.startUpstream();
  const adminPort = await freePort();
  await env.startQmux({ poolSize: 2, admin: { port: adminPort, users: [ADMIN_USER] }, ...options });
  env.adminPort = adminPort;
  return adminPort;
}

// Connects with node-q. Timestamps come back as nanoseconds since 1970 and timespans as
// nanoseconds, so the tests can compare them with Date.now().
function connectAdmin(port, user = ADMIN_USER) {
  return new Promise((resolve, reject) => {
    nodeq.connect({ host: HOST, port, user, password: 'unused', nanos2date: false, socketNoDelay: true },
      (error, connection) => {
        if (error) {
          reject(error);
          return;
        }
        connection.on('error', () => {});
        resolve(connection);
      });
  });
}

// Runs one admin command; resolves with the q value or rejects with the kdb+ error.
function run(connection, command, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`admin command ${command} timed out`)), timeoutMs);
    connection.k(command, (error, result) => {
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(result);
    });
  });
}

function closeAdmin(connection) {
  return new Promise((resolve) => connection.close(() => resolve()));
}

async function connectRawClient(port, credentials = 'rawclient:pass') {
  const client = await RawConnection.connect(port);
  await client.handshake(credentials);
  return client;
}

// Encodes a sync message whose body is the q value body (bytes after the header).
function encodeSync(body) {
  return Buffer.concat([encodeHeader({ type: MSG_SYNC, length: 8 + body.length }), body]);
}

function symbolAtom(text) {
  return Buffer.concat([Buffer.from([0xf5]), Buffer.from(text), Buffer.from([0])]);
}

function charVector(text) {
  const header = Buffer.alloc(6);
  header.writeInt8(10, 0);
  header.writeUInt32LE(text.length, 2);
  return Buffer.concat([header, Buffer.from(text)]);
}

function longAtom(value) {
  const atom = Buffer.alloc(9);
  atom.writeInt8(-7, 0);
  atom.writeBigInt64LE(BigInt(value), 1);
  return atom;
}

function generalList(items) {
  const header = Buffer.alloc(6);
  header.writeUInt32LE(items.length, 2);
  return Buffer.concat([header, ...items]);
}

// Reads one response from a raw admin connection: { error } or { body }.
async function readResponse(connection) {
  const message = await connection.readMessage();
  assert.equal(message.type, 2, 'a response message');
  if (message.body.readInt8(0) === -128) {
    return { error: message.body.subarray(1, message.body.indexOf(0, 1)).toString() };
  }
  return { body: message.body };
}

integrationTest('admin show clients lists a client', async (env) => {
  const adminPort = await startWithAdmin(env);
  const client = await connectRawClient(env.qmux.port, 'alice:secret');
  assert.deepEqual(await client.query('2+3'), { long: 5n });
  const admin = await connectAdmin(adminPort);

  const rows = await run(admin, 'show clients');
  assert.equal(rows.length, 1, 'one client connection; the admin connection is not a client');
  const row = rows[0];
  assert.equal(typeof row.id, 'number');
  assert.equal(row.address, `127.0.0.1:${client.localPort}`);
  assert.equal(row.user, 'alice');
  assert.equal(row.state, 'idle');
  assert.equal(row.requests, 1);
  assert.ok(row.bytes_in > 0, `bytes_in ${row.bytes_in}`);
  assert.ok(row.bytes_out > 0, `bytes_out ${row.bytes_out}`);
  assert.equal(row.wait, 0, 'an idle client waits for nothing');
  const connectedMs = row.connected / 1e6;
  assert.ok(Math.abs(Date.now() - connectedMs) < 10000, `connected ${new Date(connectedMs).toISOString()}`);

  await waitFor(() => (/INFO  admin \d+ 127\.0\.0\.1:\d+: user ops: show clients: ok/).test(env.qmux.stderr), { what: 'the log line' });
  await closeAdmin(admin);
  client.destroy();
});

integrationTest('admin kill client closes it', async (env) => {
  const adminPort = await startWithAdmin(env);
  const victim = await connectRawClient(env.qmux.port, 'victim:pw');
  const bystander = await connectRawClient(env.qmux.port, 'bystander:pw');
  const admin = await connectAdmin(adminPort);

  const rows = await run(admin, 'show clients');
  const target = rows.find((row) => row.user === 'victim');
  assert.ok(target, 'the victim is listed');
  assert.equal(await run(admin, `kill client ${target.id}`), `client ${target.id} closed`);
  assert.equal(await victim.waitClosed(3000), true, 'the killed client is disconnected');
  await waitFor(() => (new RegExp(`client ${target.id} \\S+: closed: killed by admin`)).test(env.qmux.stderr), { what: 'the log line' });

  const after = await run(admin, 'show clients');
  assert.deepEqual(after.map((row) => row.user), ['bystander']);
  assert.deepEqual(await bystander.query('1+1'), { long: 2n }, 'other clients are not affected');

  await assert.rejects(run(admin, `kill client ${target.id}`),
    (error) => /^kill client: no client with id \d+/.test(error.message));
  await assert.rejects(run(admin, 'kill client abc'), /invalid client id abc/);
  await assert.rejects(run(admin, 'kill client'), /kill client needs an argument/);
  await closeAdmin(admin);
  bystander.destroy();
});

integrationTest('admin pause holds queries until resume', async (env) => {
  const adminPort = await startWithAdmin(env);
  const admin = await connectAdmin(adminPort);
  const client = await connectRawClient(env.qmux.port);

  assert.match(await run(admin, 'pause'), /^paused/);
  await client.write(encodeQuery(MSG_SYNC, '1+1'));
  await sleep(300);
  assert.equal(client.buffered, 0, 'no response while paused');

  const [row] = await run(admin, 'show clients');
  assert.equal(row.state, 'queued');
  assert.ok(row.wait >= 200e6, `the wait column shows the time queued: ${row.wait} ns`);
  const stats = await run(admin, 'show stats');
  assert.equal(stats.queue_length, 1);
  assert.equal(stats.paused, 1);

  assert.equal(await run(admin, 'resume'), 'resumed with 1 requests queued');
  const message = await client.readMessage(3000);
  assert.equal(message.body.readBigInt64LE(1), 2n, 'the held query is answered after resume');
  await closeAdmin(admin);
  client.destroy();
});

integrationTest('admin reconnect replaces connections', async (env) => {
  const adminPort = await startWithAdmin(env);
  const admin = await connectAdmin(adminPort);
  const client = await connectRawClient(env.qmux.port);

  const before = await run(admin, 'show upstreams');
  assert.equal(before.length, 2);
  for (const row of before) {
    assert.equal(row.upstream, `127.0.0.1:${env.upstream.port}`);
    assert.equal(row.state, 'idle');
    assert.ok(row.capability >= 3, `capability ${row.capability}`);
    assert.equal(row.last_error, '');
  }
  assert.deepEqual(before.map((row) => row.slot).sort(), [0, 1]);
  const oldIds = new Set(before.map((row) => row.id));

  // A request in flight during the reconnect is answered; its connection is replaced
  // only after the response.
  await client.write(encodeQuery(MSG_SYNC, 'system "sleep 0.5"'));
  await sleep(100);
  assert.equal(await run(admin, 'reconnect'), 2);
  const message = await client.readMessage(5000);
  assert.equal(message.type, 2);
  assert.notEqual(message.body.readInt8(0), -128, 'the request in flight did not fail');

  const after = await waitFor(async () => {
    const rows = await run(admin, 'show upstreams');
    const replaced = rows.length === 2 && rows.every((row) => !oldIds.has(row.id) && row.state === 'idle');
    return replaced ? rows : null;
  }, { timeoutMs: 5000, what: 'new upstream connection ids in show upstreams' });
  assert.equal(after.length, 2);
  assert.deepEqual(await client.query('2+2'), { long: 4n });

  // requests counts per slot, across reconnects: the sleep and 2+2.
  const served = await run(admin, 'show upstreams');
  assert.equal(served.reduce((sum, row) => sum + row.requests, 0), 2);
  await closeAdmin(admin);
  client.destroy();
});

integrationTest('admin reload applies a new pool size', async (env) => {
  const adminPort = await startWithAdmin(env);
  const admin = await connectAdmin(adminPort);
  const configOptions = {
    listenPort: env.qmux.port,
    upstreamPort: env.upstream.port,
    admin: { port: adminPort, users: [ADMIN_USER] },
  };
  assert.equal((await run(admin, 'show pools'))[0].size, 2);

  fs.writeFileSync(env.qmux.configPath, qmuxConfigText({ ...configOptions, poolSize: 3 }));
  assert.match(await run(admin, 'reload'), /^configuration reloaded from /);
  const pools = await waitFor(async () => {
    const rows = await run(admin, 'show pools');
    return rows[0].size === 3 && rows[0].idle === 3 ? rows : null;
  }, { timeoutMs: 5000, what: 'show pools to report 3 idle connections' });
  assert.equal(pools[0].upstream, `127.0.0.1:${env.upstream.port}`);

  // An invalid file is rejected and the running configuration stays.
  fs.writeFileSync(env.qmux.configPath, qmuxConfigText({ ...configOptions, poolSize: 0 }));
  await assert.rejects(run(admin, 'reload'), /^Error: reload failed: .*qmux\.conf:\d+: pool\.size = 0 is out of range; allowed 1\.\.1024; the running configuration stays in use/);
  assert.equal((await run(admin, 'show pools'))[0].size, 3);
  assert.equal((await run(admin, 'show config'))['pool.size'], '3');
  await waitFor(() => (/reload: .*pool\.size = 0 is out of range/).test(env.qmux.stderr), { what: 'the log line' });
  await closeAdmin(admin);
});

integrationTest('admin shutdown stops qmux', async (env) => {
  const adminPort = await startWithAdmin(env);
  const admin = await connectAdmin(adminPort);

  env.qmux.stopRequested = true;   // the exit below is the expected outcome
  assert.equal(await run(admin, 'shutdown'), 'qmux is shutting down');
  await Promise.race([env.qmux.exited, sleep(5000)]);
  assert.equal(env.qmux.running, false, 'qmux exited');
  assert.equal(env.qmux.exitCode, 0);
  await waitFor(() => (/admin shutdown; stopping/).test(env.qmux.stderr), { what: 'the log line' });
});

integrationTest('admin show config hides passwords', async (env) => {
  const adminPort = await startWithAdmin(env);
  const admin = await connectAdmin(adminPort);

  const config = await run(admin, 'show config');
  assert.equal(config['upstreams[0].password'], '********');
  assert.equal(config['upstreams[0].port'], String(env.upstream.port));
  assert.equal(config['pool.size'], '2');
  assert.equal(config['admin.users'], ADMIN_USER);
  assert.equal(config['listen.port'], String(env.qmux.port));
  assert.ok(!JSON.stringify(config).includes(UPSTREAM_PASSWORD), 'the password appears nowhere');
  await closeAdmin(admin);
});

integrationTest('admin show pools counts states', async (env) => {
  const adminPort = await startWithAdmin(env);
  const admin = await connectAdmin(adminPort);

  assert.deepEqual(await run(admin, 'show pools'), [{
    upstream: `127.0.0.1:${env.upstream.port}`,
    size: 2, idle: 2, busy: 0, connecting: 0, down: 0, failed: 0, reconnect_attempts: 0,
  }]);

  await env.upstream.stop();
  const [row] = await waitFor(async () => {
    const rows = await run(admin, 'show pools');
    return rows[0].failed === 2 ? rows : null;
  }, { timeoutMs: 5000, what: 'both connections to fail' });
  assert.equal(row.idle + row.busy, 0);
  assert.equal(row.down + row.connecting, 2);
  assert.ok(row.reconnect_attempts >= 2, `reconnect_attempts ${row.reconnect_attempts}`);

  const upstreams = await run(admin, 'show upstreams');
  assert.ok(upstreams.every((conn) => conn.last_error !== ''), 'each connection shows its last error');
  await closeAdmin(admin);
});

integrationTest('admin show stats counts requests', async (env) => {
  const adminPort = await startWithAdmin(env);
  const admin = await connectAdmin(adminPort);
  const client = await connectRawClient(env.qmux.port);

  const before = await run(admin, 'show stats');   // also starts the rate interval
  // Requests of 20 ms: qmux times requests with libevent's cached clock, which may not
  // advance within a millisecond.
  for (let i = 0; i < 3; i++) assert.equal((await client.query('system "sleep 0.02"')).otherType, 0);
  const stats = await run(admin, 'show stats');
  assert.equal(stats.requests - before.requests, 3);
  assert.equal(stats.requests_failed, 0);
  assert.ok(stats.clients_accepted >= 1, `clients_accepted ${stats.clients_accepted}`);
  assert.equal(stats.clients, 1);
  assert.equal(stats.upstream_connections, 2);
  assert.ok(stats.requests_per_second > 0, `requests_per_second ${stats.requests_per_second}`);
  assert.ok(stats.latency_p50_us >= 15000, `latency_p50_us ${stats.latency_p50_us}`);
  assert.ok(stats.latency_p50_us <= stats.latency_p90_us);
  assert.ok(stats.latency_p90_us <= stats.latency_p99_us);
  assert.ok(stats.latency_p99_us <= stats.latency_p999_us);
  assert.ok(stats.latency_p999_us <= stats.latency_max_us);
  assert.ok(stats.bytes_from_clients > 0);
  assert.ok(stats.bytes_to_clients > 0);
  for (const key of ['queue_length', 'queue_wait_p50_us', 'queue_wait_p99_us', 'upstream_logins']) {
    assert.equal(typeof stats[key], 'number', `show stats has ${key}`);
  }
  await closeAdmin(admin);
  client.destroy();
});

integrationTest('admin unknown command errors', async (env) => {
  const adminPort = await startWithAdmin(env);
  const admin = await connectAdmin(adminPort);

  await assert.rejects(run(admin, 'foo bar'), (error) => {
    assert.equal(error.message, 'unknown admin command: foo bar; try help');
    return true;
  });
  await assert.rejects(run(admin, 'show clients now'), /show clients takes no argument/);
  const help = await run(admin, 'help');
  assert.ok(help.some((row) => row.command === 'show stats'), 'help lists the commands');
  assert.equal(await run(admin, '  reconnect  '), 2, 'blanks around a command are ignored');
  await closeAdmin(admin);
});

integrationTest('admin rejects other users', async (env) => {
  const adminPort = await startWithAdmin(env);

  await assert.rejects(connectAdmin(adminPort, 'mallory'));
  const raw = await RawConnection.connect(adminPort);
  await raw.write(Buffer.concat([Buffer.from('mallory:pw'), Buffer.from([3, 0])]));
  await assert.rejects(raw.read(1, 2000), /connection closed/, 'closed without a capability byte');
  await waitFor(() => (/admin \d+ \S+: login rejected for user mallory: the user is not in admin\.users/).test(env.qmux.stderr), { what: 'the log line' });

  // The client listener does not accept admin commands.
  const client = await connectRawClient(env.qmux.port, `${ADMIN_USER}:pw`);
  const answer = await client.query('show clients');
  assert.ok(answer.error, 'the upstream answers, not the admin console');
  client.destroy();
});

integrationTest('admin accepts symbol and list forms', async (env) => {
  const adminPort = await startWithAdmin(env);
  const raw = await RawConnection.connect(adminPort);
  assert.equal(await raw.handshake(`${ADMIN_USER}:pw`, 6), 3, 'the console agrees at most capability 3');

  await raw.write(encodeSync(symbolAtom('reconnect')));
  const symbolAnswer = await readResponse(raw);
  assert.equal(symbolAnswer.body.readInt8(0), -7);
  assert.equal(symbolAnswer.body.readBigInt64LE(1), 2n);

  const victim = await connectRawClient(env.qmux.port, 'victim:pw');
  const admin = await connectAdmin(adminPort);
  const [row] = await run(admin, 'show clients');
  await raw.write(encodeSync(generalList([charVector('kill client'), longAtom(row.id)])));
  const listAnswer = await readResponse(raw);
  assert.equal(listAnswer.error, undefined);
  assert.equal(await victim.waitClosed(3000), true);

  await raw.write(encodeSync(generalList([longAtom(1), charVector('x')])));
  const badAnswer = await readResponse(raw);
  assert.match(badAnswer.error, /^type: an admin command is a string or a symbol/);

  // An async message is ignored: qmux keeps running and answers the next request.
  await raw.write(encodeQuery(MSG_ASYNC, 'shutdown'));
  await raw.write(encodeQuery(MSG_SYNC, 'show pools'));
  const after = await readResponse(raw);
  assert.equal(after.body.readInt8(0), 98, 'a table');
  assert.equal(env.qmux.running, true);
  await closeAdmin(admin);
  raw.destroy();
});

integrationTest('admin malformed input closes one connection', async (env) => {
  const adminPort = await startWithAdmin(env);
  const admin = await connectAdmin(adminPort);

  // A char vector that claims more bytes than the message holds.
  const bad = await RawConnection.connect(adminPort);
  await bad.handshake(`${ADMIN_USER}:pw`);
  const body = charVector('show stats');
  body.writeUInt32LE(1000, 2);
  await bad.write(encodeSync(body));
  const answer = await readResponse(bad);
  assert.match(answer.error, /^badmsg: /);
  assert.equal(await bad.waitClosed(3000), true);

  // A header announcing more than 64 KiB gets 'limit before any body byte is read.
  const big = await RawConnection.connect(adminPort);
  await big.handshake(`${ADMIN_USER}:pw`);
  await big.write(encodeHeader({ type: MSG_SYNC, length: 100000 }));
  const limit = await readResponse(big);
  assert.equal(limit.error, 'limit: admin message of 100000 bytes exceeds 65536');
  assert.equal(await big.waitClosed(3000), true);

  // An invalid header byte closes without a reply.
  const garbage = await RawConnection.connect(adminPort);
  await garbage.handshake(`${ADMIN_USER}:pw`);
  await garbage.write(Buffer.from([9, 9, 9, 9, 9, 9, 9, 9]));
  assert.equal(await garbage.waitClosed(3000), true);

  assert.equal((await run(admin, 'show pools')).length, 1, 'other admin connections still work');
  await closeAdmin(admin);
});

integrationTest('admin console off by default', async (env) => {
  await env.startUpstream();
  await env.startQmux();
  assert.doesNotMatch(env.qmux.stderr, /admin console listening/);
});

// Runs qmux -t on a configuration with the given admin and http groups.
function checkConfig(dir, groups) {
  const file = path.join(dir, 'qmux.conf');
  fs.writeFileSync(file, qmuxConfigText({ listenPort: 5010, upstreamPort: 5001, ...groups }));
  return new Promise((resolve) => {
    execFile(QMUX, ['-t', '-c', file], { timeout: 5000 }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code : 0, stderr });
    });
  });
}

test('admin and http config errors', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qmux-admin-config-'));
  try {
    const cases = [
      { admin: { port: 5011 }, error: /admin\.anonymous = true needs admin\.users/ },
      { admin: { port: 5011, users: ['a:b'] }, error: /admin\.users\[0\] is invalid; a name has 1\.\.63 bytes and no ':'/ },
      { admin: { port: 5011, users: 'ops' }, error: /admin\.users must be a list of strings/ },
      { admin: { port: 5010, users: ['ops'] }, error: /admin\.port = 5010 is already used by listen\.port/ },
      { admin: { port: 5011, users: ['ops'] }, http: { port: 5011 }, error: /http\.port = 5011 is already used by admin\.port/ },
      { http: { port: 70000 }, error: /http\.port = 70000 is out of range; allowed 0\.\.65535/ },
    ];
    for (const { error, ...groups } of cases) {
      const result = await checkConfig(dir, groups);
      assert.equal(result.code, 1, `${JSON.stringify(groups)} is rejected`);
      assert.match(result.stderr, error);
    }
    const valid = await checkConfig(dir, { admin: { port: 5011, users: ['ops', 'alice'] }, http: { port: 5012 } });
    assert.equal(valid.code, 0, valid.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

integrationTest('admin reconnect skips the backoff', async (env) => {
  const adminPort = await startWithAdmin(env, { reconnectMinMs: 20000, reconnectMaxMs: 60000 });
  const admin = await connectAdmin(adminPort);

  await env.upstream.stop();
  await waitFor(async () => (await run(admin, 'show pools'))[0].down === 2,
    { timeoutMs: 5000, what: 'both connections to wait for their backoff' });
  await env.restartUpstream();

  // Without the command the connections would wait 20 s or more.
  assert.equal(await run(admin, 'reconnect'), 2);
  await waitFor(async () => (await run(admin, 'show pools'))[0].idle === 2,
    { timeoutMs: 3000, what: 'both connections to log in at once' });
  await closeAdmin(admin);
});
