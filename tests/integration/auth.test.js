'use strict';
// Client authentication against a users file: each password format, rejected logins
// closed as kdb+ closes them, the failed-login delay, per-user rights (listeners, the
// admin console, connection limits), query policies in both request forms, reloads,
// and no password in any log line.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { BUILD_DIR, freePort, integrationTest, sleep, waitFor } = require('./lib/harness');
const nodeq = require('./lib/nodeq');
const Long = require('long');
const { long: typedLong } = require('node-q');

const long = (value) => typedLong(Long.fromNumber(value));
const { MSG_ASYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

const PASSWORDS = {
  alice: 'alice-pbkdf2-Zq8',
  md5user: 'md5-pass-Kx3',
  sha1user: 'sha1-pass-Wm5',
  plainuser: 'plain-pass-Jr6',
  ops: 'ops-admin-Pv2',
  feed: 'feed-pass-Hd9',
  reader: 'reader-pass-Tc4',
  httponly: 'http-only-Ln7',
};

function hashLine(user, password) {
  const output = execFileSync(path.join(BUILD_DIR, 'qmux-passwd'), ['-i', '1000', user],
    { input: `${password}\n`, encoding: 'utf8' });
  return output.trim();
}

const digest = (algorithm, text) => crypto.createHash(algorithm).update(text).digest('hex');

// Writes the users file of these tests (mode 600) and returns its path.
function writeUsers(env, extraLines = []) {
  const lines = [
    '# users of auth.test.js',
    `${hashLine('alice', PASSWORDS.alice)}`,
    `md5user:${digest('md5', PASSWORDS.md5user)}`,
    `sha1user:${digest('sha1', PASSWORDS.sha1user)}`,
    `plainuser:${PASSWORDS.plainuser}`,
    `${hashLine('ops', PASSWORDS.ops)}:admin`,
    `${hashLine('feed', PASSWORDS.feed)}:max_connections=2,policy=api`,
    `${hashLine('reader', PASSWORDS.reader)}:policy=readonly`,
    `${hashLine('httponly', PASSWORDS.httponly)}:listeners=http`,
    ...extraLines,
  ];
  const file = path.join(env.tmpDir, 'users');
  fs.writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
  env.secrets.push(...Object.values(PASSWORDS));
  return file;
}

const POLICIES = `(
  { name = "readonly"; mode = "allow"; entries = ( "til", "count", ".standin.*" ); },
  { name = "api"; mode = "api"; entries = ( ".standin.table", "til" ); },
  { name = "nowrite"; mode = "deny"; entries = ( "system", "\\\\*" ); }
)`;

async function startWithUsers(env, options = {}) {
  await env.startUpstream();
  const usersFile = writeUsers(env, options.extraLines);
  await env.startQmux({
    poolSize: 1,
    auth: { users_file: usersFile, ...options.auth },
    policies: POLICIES,
    probe: `alice:${PASSWORDS.alice}`,
    ...options.qmux,
  });
  return usersFile;
}

// Resolves true when qmux closed the connection without a reply byte.
async function loginRejected(port, credentials) {
  const client = await RawConnection.connect(port);
  try {
    await client.handshake(credentials, 3, 5000);
    client.destroy();
    return false;
  } catch (error) {
    assert.match(error.message, /closed/, `the login of ${credentials.split(':')[0]} ends with a close`);
    return true;
  }
}

async function rawLogin(port, credentials) {
  const client = await RawConnection.connect(port);
  assert.equal(await client.handshake(credentials, 3, 5000), 3, `${credentials.split(':')[0]} logs in`);
  return client;
}

integrationTest('each password format logs in; wrong passwords and unknown users are rejected', async (env) => {
  await startWithUsers(env);
  const port = env.qmux.port;

  for (const user of ['alice', 'md5user', 'sha1user', 'plainuser']) {
    const client = await nodeq.connect(port, { user, password: PASSWORDS[user] });
    assert.equal(await client.sync('2+3'), 5, `${user} runs a query`);
    await client.close();
  }

  assert.ok(await loginRejected(port, 'alice:wrong-password-1'), 'a wrong PBKDF2 password is rejected');
  assert.ok(await loginRejected(port, `md5user:${digest('md5', PASSWORDS.md5user)}`),
    'the MD5 digest itself is not a password');
  assert.ok(await loginRejected(port, 'nobody:whatever-2'), 'an unknown user is rejected');

  await waitFor(() => /login rejected for user alice: wrong password/.test(env.qmux.stderr),
    { what: 'the wrong-password log line' });
  await waitFor(() => /login rejected for user nobody: unknown user/.test(env.qmux.stderr),
    { what: 'the unknown-user log line' });
  assert.match(env.qmux.stderr, /user md5user has an unsalted MD5 hash/, 'MD5 entries are warned about');
  assert.match(env.qmux.stderr, /user plainuser has a plain-text password/, 'plain entries are warned about');
  assert.doesNotMatch(env.qmux.stderr, /wrong-password-1|whatever-2/, 'rejected passwords are not logged');
});

integrationTest('node-q reports a rejected login as an error', async (env) => {
  await startWithUsers(env);
  await assert.rejects(nodeq.connect(env.qmux.port, { user: 'alice', password: 'not-it-3' }),
    'node-q fails to connect with a wrong password');
  const client = await nodeq.connect(env.qmux.port, { user: 'alice', password: PASSWORDS.alice });
  assert.deepEqual(await client.sync('til 3'), [0, 1, 2], 'a correct login still works afterwards');
  await client.close();
});

integrationTest('repeated failures from one address are delayed, and a good login still gets in', async (env) => {
  await startWithUsers(env);
  const port = env.qmux.port;

  // The first three failures of an address cost nothing; the fourth waits 250 ms.
  for (let i = 0; i < 3; i++) assert.ok(await loginRejected(port, `alice:bad-${i}`));
  const started = Date.now();
  assert.ok(await loginRejected(port, 'alice:bad-3'));
  const held = Date.now() - started;
  assert.ok(held >= 200, `the fourth failure is closed after the delay (held ${held} ms)`);

  // A login from the address still gets in. It does not reset the failures, so that an
  // account holder cannot clear the delays of guesses at another account.
  const client = await rawLogin(port, `md5user:${PASSWORDS.md5user}`);
  assert.deepEqual(await client.query('1+1'), { long: 2n });
  client.destroy();
  const again = Date.now();
  assert.ok(await loginRejected(port, 'alice:bad-4'));
  const heldAgain = Date.now() - again;
  assert.ok(heldAgain >= 400, `the fifth failure waits 500 ms after a success (held ${heldAgain} ms)`);
  await waitFor(() => /closing in 250 ms, the failed-login delay/.test(env.qmux.stderr),
    { what: 'the delay log line' });
  assert.match(env.qmux.stderr, /closing in 500 ms, the failed-login delay/);
});

integrationTest('listeners=, max_connections= and anonymous logins', async (env) => {
  await startWithUsers(env, { qmux: { listen: { anonymous: true } } });
  const port = env.qmux.port;

  assert.ok(await loginRejected(port, `httponly:${PASSWORDS.httponly}`), 'an http-only user is rejected on IPC');
  await waitFor(() => /login rejected for user httponly: its listeners= option/.test(env.qmux.stderr),
    { what: 'the listeners log line' });

  // Anonymous: a name without an account logs in with any password; an account's name
  // still needs its password.
  const guest = await rawLogin(port, 'guest:anything');
  assert.deepEqual(await guest.query('3*3'), { long: 9n });
  guest.destroy();
  assert.ok(await loginRejected(port, 'alice:guessing-5'), 'an account name without its password is rejected');

  const first = await rawLogin(port, `feed:${PASSWORDS.feed}`);
  const second = await rawLogin(port, `feed:${PASSWORDS.feed}`);
  const third = await rawLogin(port, `feed:${PASSWORDS.feed}`);
  const rejection = await third.readMessage(3000);
  assert.match(rejection.body.toString('latin1'), /limit: user feed already has 2 connections \(max_connections in auth.users_file\)/);
  await third.waitClosed(3000);
  first.destroy();
  second.destroy();
  const later = await rawLogin(port, `feed:${PASSWORDS.feed}`);
  later.destroy();
});

integrationTest('policies: allow, deny and api, in text and list form', async (env) => {
  await startWithUsers(env, { auth: { default_policy: 'nowrite' } });
  const port = env.qmux.port;
  const reader = await nodeq.connect(port, { user: 'reader', password: PASSWORDS.reader });
  const feed = await nodeq.connect(port, { user: 'feed', password: PASSWORDS.feed });
  const alice = await nodeq.connect(port, { user: 'alice', password: PASSWORDS.alice });

  // allow (readonly): listed names pass in both forms; anything else is denied by name.
  assert.deepEqual(await reader.sync('til 3'), [0, 1, 2]);
  assert.deepEqual(await reader.call('til', long(2)), [0, 1]);
  await assert.rejects(reader.sync('hiddenvar:42'), /access: policy readonly: .*hiddenvar/);
  await assert.rejects(reader.call('hiddenvar', long(1)), /access: policy readonly: .*hiddenvar/);

  // api (feed): only list calls of listed functions.
  assert.equal((await feed.call('.standin.table', long(2))).length, 2, 'a listed API call returns its rows');
  await assert.rejects(feed.sync('.standin.table 2'), /access: policy api: /);
  await assert.rejects(feed.call('count', long(1)), /access: policy api: count/);

  // deny (the default policy, for alice who has no policy= option).
  await assert.rejects(alice.sync('system "sleep 0"'), /access: policy nowrite: /);
  assert.equal(await alice.sync('count 1 2 3'), 3);

  // A denied request never reached the upstream: the assignment did not happen.
  await assert.rejects(alice.sync('hiddenvar'), /hiddenvar/, 'hiddenvar is undefined upstream');
  assert.ok(!/hiddenvar:42/.test(env.upstream.stderr), 'the upstream never saw the assignment');

  // A denied async message is dropped with a log line, and the client goes on.
  const raw = await rawLogin(port, `reader:${PASSWORDS.reader}`);
  await raw.write(encodeQuery(MSG_ASYNC, 'asyncvar:1'));
  assert.deepEqual(await raw.query('count 1 2'), { long: 2n });
  raw.destroy();
  await waitFor(() => /dropped an async message of \d+ bytes: access: policy readonly/.test(env.qmux.stderr),
    { what: 'the dropped async message line' });
  assert.match(env.qmux.stderr, /denied a sync request of user reader: policy readonly/);
  await Promise.all([reader.close(), feed.close(), alice.close()]);
});

integrationTest('the admin console admits only users with the admin option', async (env) => {
  const adminPort = await freePort();
  await startWithUsers(env, { qmux: { admin: { port: adminPort } } });

  const ops = await nodeq.connect(adminPort, { user: 'ops', password: PASSWORDS.ops });
  const clients = await ops.sync('show clients');
  assert.ok(Array.isArray(clients), 'show clients answers a table for an admin user');
  await ops.close();

  assert.ok(await loginRejected(adminPort, `alice:${PASSWORDS.alice}`), 'an ordinary user is rejected');
  assert.ok(await loginRejected(adminPort, 'ops:wrong-admin-6'), 'an admin with a wrong password is rejected');
  await waitFor(() => /login rejected for user alice: the account has no admin option/.test(env.qmux.stderr),
    { what: 'the admin refusal line' });
});

integrationTest('a reload applies a changed users file to open and new connections', async (env) => {
  const usersFile = await startWithUsers(env);
  const port = env.qmux.port;
  const md5 = await rawLogin(port, `md5user:${PASSWORDS.md5user}`);
  const alice = await rawLogin(port, `alice:${PASSWORDS.alice}`);

  // md5user is removed, and alice gets a new password.
  const text = fs.readFileSync(usersFile, 'utf8').split('\n')
    .filter((line) => !line.startsWith('md5user:') && !line.startsWith('alice:'));
  text.push(hashLine('alice', 'alice-new-pw-8'));
  env.secrets.push('alice-new-pw-8');
  fs.writeFileSync(usersFile, `${text.join('\n')}\n`, { mode: 0o600 });
  env.qmux.child.kill('SIGHUP');
  await waitFor(() => /configuration reloaded/.test(env.qmux.stderr), { what: 'the reload' });

  assert.ok(await md5.waitClosed(3000), 'the client of a removed account is closed');
  assert.match(env.qmux.stderr, /closed: its account was removed from auth.users_file by a reload/);
  assert.deepEqual(await alice.query('1+2'), { long: 3n }, 'a kept account stays connected');
  alice.destroy();
  assert.ok(await loginRejected(port, `alice:${PASSWORDS.alice}`), 'the old password no longer works');
  const renewed = await rawLogin(port, 'alice:alice-new-pw-8');
  renewed.destroy();

  // An invalid users file is rejected, and the running one stays.
  fs.writeFileSync(usersFile, 'broken line without a password\n', { mode: 0o600 });
  env.qmux.child.kill('SIGHUP');
  await waitFor(() => /reload: .*users:1: /.test(env.qmux.stderr), { what: 'the rejected reload' });
  const still = await rawLogin(port, 'alice:alice-new-pw-8');
  still.destroy();
});

integrationTest('config checks: listeners need users or anonymous, and readable files are warned about', async (env) => {
  await env.startUpstream();
  const usersFile = writeUsers(env);
  fs.chmodSync(usersFile, 0o644);
  await env.startQmux({ poolSize: 1, auth: { users_file: usersFile }, policies: POLICIES,
    probe: `alice:${PASSWORDS.alice}` });
  fs.chmodSync(env.qmux.configPath, 0o644);
  assert.match(env.qmux.stderr, /users: .*readable .*by other users|users.*other users/);

  const config = fs.readFileSync(env.qmux.configPath, 'utf8').replace(/auth = \{[^}]*\};/, '');
  const noUsers = path.join(env.tmpDir, 'no-users.conf');
  fs.writeFileSync(noUsers, config.replace(/policies = [\s\S]*$/, ''));
  let output = '';
  try {
    execFileSync(path.join(BUILD_DIR, 'qmux'), ['-t', '-c', noUsers], { encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    output = error.stderr;
  }
  assert.match(output, /listen.anonymous is false and auth.users_file is not set/);

  const checked = spawnSync(path.join(BUILD_DIR, 'qmux'), ['-t', '-c', env.qmux.configPath],
    { encoding: 'utf8' });
  assert.equal(checked.status, 0);
  assert.match(checked.stdout, /is valid/);
  assert.match(checked.stderr, /qmux\.conf: the file holds upstream passwords and other users may read it \(mode 644\)/);
  fs.chmodSync(env.qmux.configPath, 0o640);
  const quiet = spawnSync(path.join(BUILD_DIR, 'qmux'), ['-t', '-c', env.qmux.configPath], { encoding: 'utf8' });
  assert.doesNotMatch(quiet.stderr, /holds upstream passwords/, 'mode 640 is not warned about');
});

integrationTest('a slow password check does not stall other clients', async (env) => {
  // About a second of PBKDF2: qmux must run it off the event loop.
  const slowLine = execFileSync(path.join(BUILD_DIR, 'qmux-passwd'), ['-i', '2000000', 'slow'],
    { input: 'slow-pass-Bq1\n', encoding: 'utf8' }).trim();
  await startWithUsers(env, { extraLines: [slowLine] });
  env.secrets.push('slow-pass-Bq1');
  const alice = await rawLogin(env.qmux.port, `alice:${PASSWORDS.alice}`);

  const started = Date.now();
  const slowLogin = rawLogin(env.qmux.port, 'slow:slow-pass-Bq1');
  await sleep(50);
  const queryStarted = Date.now();
  assert.deepEqual(await alice.query('4+4'), { long: 8n });
  const queryMs = Date.now() - queryStarted;
  const slow = await slowLogin;
  const loginMs = Date.now() - started;
  assert.ok(loginMs > 300, `the check itself is slow (${loginMs} ms), so the test means something`);
  assert.ok(queryMs < loginMs / 2, `a query during the check took ${queryMs} ms of the check's ${loginMs} ms`);
  slow.destroy();
  alice.destroy();
});

integrationTest('HTTP queries need Basic credentials of the users file', async (env) => {
  const httpPort = await freePort();
  await startWithUsers(env, { qmux: { http: { port: httpPort } } });
  const base = `http://127.0.0.1:${httpPort}`;
  const basic = (user, password) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

  const anonymous = await fetch(`${base}/q?query=til%203`);
  assert.equal(anonymous.status, 401, 'a query without credentials gets 401');
  assert.match(anonymous.headers.get('www-authenticate'), /^Basic realm="qmux"/);
  assert.match((await anonymous.json()).error, /^access: /);

  const alice = await fetch(`${base}/q?query=til%203`, { headers: basic('alice', PASSWORDS.alice) });
  assert.equal(alice.status, 200);
  assert.deepEqual(await alice.json(), [0, 1, 2]);

  const httpOnly = await fetch(`${base}/q?query=2%2B2`, { headers: basic('httponly', PASSWORDS.httponly) });
  assert.equal(httpOnly.status, 200, 'listeners=http allows this listener');
  assert.equal(await httpOnly.json(), 4);

  const wrong = await fetch(`${base}/q?query=til%203`, { headers: basic('alice', 'not-alice-9') });
  assert.equal(wrong.status, 401, 'a wrong password gets 401');
  await wrong.text();
  env.secrets.push('not-alice-9');

  const denied = await fetch(`${base}/q?query=hiddenvar%3A1`, { headers: basic('reader', PASSWORDS.reader) });
  assert.equal(denied.status, 403, 'a query the policy denies gets 403');
  assert.match((await denied.json()).error, /^access: policy readonly: /);

  const health = await fetch(`${base}/health`);
  assert.equal(health.status, 200, '/health needs no credentials');
  await health.text();
  await waitFor(() => /http 127\.0\.0\.1:\d+: login rejected for user alice: wrong password/.test(env.qmux.stderr),
    { what: 'the HTTP rejection line' });
});

integrationTest('abandoned password checks do not hold up other logins', async (env) => {
  // Checks of about 0.1 s each; 80 of them queued on 2 workers would take 4 s.
  const slowLine = execFileSync(path.join(BUILD_DIR, 'qmux-passwd'), ['-i', '200000', 'slow'],
    { input: 'slow-pass-Bq1\n', encoding: 'utf8' }).trim();
  await startWithUsers(env, { extraLines: [slowLine] });
  env.secrets.push('slow-pass-Bq1');

  const abandoned = [];
  for (let i = 0; i < 80; i++) {
    const client = await RawConnection.connect(env.qmux.port);
    await client.write(Buffer.from(`slow:guess-${i}\x03\x00`));
    abandoned.push(client);
  }
  for (const client of abandoned) client.destroy();
  await sleep(50);

  const started = Date.now();
  const alice = await rawLogin(env.qmux.port, `alice:${PASSWORDS.alice}`);
  const loginMs = Date.now() - started;
  alice.destroy();
  assert.ok(loginMs < 1500, `a login after 80 abandoned slow checks took ${loginMs} ms`);
  await waitFor(() => /too many password checks in progress/.test(env.qmux.stderr),
    { what: 'the line about checks over the per-address limit' });
});

integrationTest('a password changed during its check is checked again', async (env) => {
  const slowLine = execFileSync(path.join(BUILD_DIR, 'qmux-passwd'), ['-i', '2000000', 'slow'],
    { input: 'slow-old-Pw2\n', encoding: 'utf8' }).trim();
  const usersFile = await startWithUsers(env, { extraLines: [slowLine] });
  env.secrets.push('slow-old-Pw2', 'slow-new-Pw3');

  const oldLogin = loginRejected(env.qmux.port, 'slow:slow-old-Pw2');
  await sleep(100);
  const lines = fs.readFileSync(usersFile, 'utf8').split('\n').filter((line) => !line.startsWith('slow:'));
  lines.push(hashLine('slow', 'slow-new-Pw3'));
  fs.writeFileSync(usersFile, `${lines.join('\n')}\n`, { mode: 0o600 });
  env.qmux.child.kill('SIGHUP');
  assert.ok(await oldLogin, 'the old password, still being checked at the reload, is rejected');
  const renewed = await rawLogin(env.qmux.port, 'slow:slow-new-Pw3');
  renewed.destroy();
});

integrationTest('anonymous names never use up an account', async (env) => {
  await startWithUsers(env, {
    extraLines: [`${hashLine('jürgen', 'juergen-pw-4')}:max_connections=1`],
    qmux: { listen: { anonymous: true } },
  });
  env.secrets.push('juergen-pw-4');

  // "j??rgen" is how the logs write jürgen; the anonymous client must not take his slot.
  const impostor = await rawLogin(env.qmux.port, 'j??rgen:x');
  const real = await rawLogin(env.qmux.port, 'jürgen:juergen-pw-4');
  assert.deepEqual(await real.query('1+1'), { long: 2n }, 'the account keeps its one connection');
  real.destroy();
  impostor.destroy();
});

integrationTest('failure_delay_ms = 0 turns the delays off', async (env) => {
  await startWithUsers(env, { auth: { failure_delay_ms: 0 } });
  for (let i = 0; i < 6; i++) {
    const started = Date.now();
    assert.ok(await loginRejected(env.qmux.port, `alice:bad-${i}`));
    assert.ok(Date.now() - started < 200, `failure ${i + 1} is closed at once`);
  }
  const alice = await rawLogin(env.qmux.port, `alice:${PASSWORDS.alice}`);
  alice.destroy();
  assert.doesNotMatch(env.qmux.stderr, /closing in \d+ ms/);
});
