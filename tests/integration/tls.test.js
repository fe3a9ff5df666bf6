'use strict';
// TLS on the client listener (tls.mode "on" and "only", as kdb+ -E 1 and -E 2) and to the
// upstreams (upstream_tls), with throwaway certificates made by the openssl command.
// The tests cover queries over TLS, openssl s_client, rejected plain clients, failed
// handshakes, client certificates, certificate reloads on SIGHUP, and upstream
// certificate checks.

const assert = require('node:assert/strict');
const { execFile, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const tls = require('node:tls');
const {
  HOST, QMUX, countMatches, describeRun, integrationTest, qmuxConfigText, reloadQmux, runClient,
  sleep, upstreamIsQ, waitFor,
} = require('./lib/harness');
const { makeCertificates } = require('./lib/certs');
const nodeq = require('./lib/nodeq');
const { MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

// Returns the tls group settings that serve certificate server (from makeCertificates) in
// mode.
function tlsSettings(server, mode = 'only', extra = {}) {
  return { mode, cert_file: server.cert, key_file: server.key, ...extra };
}

// Returns tls.connect options that trust ca and only ca.
function trusting(ca, extra = {}) {
  return { ca: fs.readFileSync(ca.cert), ...extra };
}

async function tlsClient(port, ca, extra = {}) {
  const client = await RawConnection.connectTls(port, trusting(ca, extra));
  assert.equal(await client.handshake('tlsuser:pw'), 3, 'the handshake over TLS is answered');
  return client;
}

async function plainClient(port) {
  const client = await RawConnection.connect(port);
  assert.equal(await client.handshake('plainuser:pw'), 3, 'the plain handshake is answered');
  return client;
}

integrationTest('TLS client query end to end', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  await env.startQmux({ poolSize: 2, tls: tlsSettings(certs.serverA) });

  const client = await tlsClient(env.qmux.port, certs.ca);
  assert.equal(client.socket.getPeerCertificate().subject.CN, 'qmux-test-server-a');
  assert.deepEqual(await client.query('20+22'), { long: 42n });

  // A response of 8 MB streams through TLS whole: a long vector of 1000000 items.
  await client.write(encodeQuery(MSG_SYNC, 'til 1000000'));
  const message = await client.readMessage(10000);
  assert.equal(message.length, 8 + 6 + 8 * 1000000, 'the whole vector arrives');
  assert.equal(message.body.readBigInt64LE(6 + 8 * 999999), 999999n, 'the last item');
  assert.deepEqual(await client.query('1+1'), { long: 2n }, 'the connection goes on');
  client.destroy();

  await waitFor(() => /TLS handshake completed: TLSv1\.[23], cipher \S+/.test(env.qmux.stderr),
    { what: 'the TLS session line' });
});

integrationTest('node-q over TLS', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  await env.startQmux({ poolSize: 2, tls: tlsSettings(certs.serverA) });

  const client = await nodeq.connect(env.qmux.port, { ca: fs.readFileSync(certs.ca.cert) });
  assert.deepEqual(await client.sync('til 5'), [0, 1, 2, 3, 4]);
  await client.async('tlsValue:7');
  assert.equal(await client.sync('tlsValue'), 7, 'an async then a sync, in order');
  await client.close();
});

integrationTest('password login over TLS', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  const password = 'tls-login-Qm4';
  const usersFile = path.join(env.tmpDir, 'users');
  fs.writeFileSync(usersFile, `tlsuser:${password}\n`, { mode: 0o600 });
  env.secrets.push(password);
  await env.startUpstream();
  await env.startQmux({
    poolSize: 1,
    auth: { users_file: usersFile },
    probe: `tlsuser:${password}`,
    tls: tlsSettings(certs.serverA),
  });

  // The password crosses the network encrypted, and qmux checks it as for a plain client.
  const client = await RawConnection.connectTls(env.qmux.port, trusting(certs.ca));
  assert.equal(await client.handshake(`tlsuser:${password}`), 3, 'the login is answered');
  assert.deepEqual(await client.query('3*3'), { long: 9n });
  client.destroy();

  const wrong = await RawConnection.connectTls(env.qmux.port, trusting(certs.ca));
  await wrong.write(Buffer.concat([Buffer.from('tlsuser:not-the-password'), Buffer.from([3, 0])]));
  assert.equal(await wrong.waitClosed(5000), true, 'a wrong password is closed without a reply');
  await waitFor(() => /login rejected for user tlsuser/.test(env.qmux.stderr),
    { what: 'the rejected login line' });
});

integrationTest('openssl s_client handshake and query', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, tls: tlsSettings(certs.serverA) });

  // -quiet sends standard input as application data and writes what comes back.
  const sClient = spawn('openssl', ['s_client', '-connect', `${HOST}:${env.qmux.port}`,
    '-CAfile', certs.ca.cert, '-verify_return_error', '-quiet'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = Buffer.alloc(0);
  let errors = '';
  sClient.stdout.on('data', (chunk) => { output = Buffer.concat([output, chunk]); });
  sClient.stderr.on('data', (chunk) => { errors += chunk; });

  try {
    sClient.stdin.write(Buffer.concat([Buffer.from('sclient:pw'), Buffer.from([3, 0])]));
    await waitFor(() => output.length >= 1, { what: 'the capability byte from s_client' })
      .catch((error) => { throw new Error(`${error.message}; s_client stderr: ${errors}`); });
    assert.equal(output[0], 3, 'the handshake reply');

    sClient.stdin.write(encodeQuery(MSG_SYNC, '6*7'));
    await waitFor(() => output.length >= 1 + 17, { what: 'the response to 6*7' });
    assert.equal(output.readInt8(1 + 8), -7, 'a long atom');
    assert.equal(output.readBigInt64LE(1 + 9), 42n);
    assert.match(errors, /verify return:1/, 'the certificate chain verified');
  } finally {
    sClient.kill('SIGKILL');
  }
});

integrationTest('plain client rejected when TLS only', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, tls: tlsSettings(certs.serverA) });

  const plain = await RawConnection.connect(env.qmux.port);
  await plain.write(Buffer.concat([Buffer.from('plainuser:pw'), Buffer.from([3, 0])]));
  assert.equal(await plain.waitClosed(3000), true, 'qmux closes the plain connection');
  await waitFor(() => /closed: rejected: plain connection \(first byte 0x70\) while tls\.mode is "only"/
    .test(env.qmux.stderr), { what: 'the rejection line' });

  const client = await tlsClient(env.qmux.port, certs.ca);
  assert.deepEqual(await client.query('2+3'), { long: 5n }, 'TLS clients are still served');
  client.destroy();
});

integrationTest('mode on serves plain and TLS', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  await env.startQmux({ poolSize: 2, tls: tlsSettings(certs.serverA, 'on') });

  const secure = await tlsClient(env.qmux.port, certs.ca);
  const plain = await plainClient(env.qmux.port);
  assert.deepEqual(await secure.query('1+2'), { long: 3n });
  assert.deepEqual(await plain.query('3+4'), { long: 7n });
  assert.deepEqual(await secure.query('5+6'), { long: 11n });

  // The C test client connects in plain to the same port.
  const result = await runClient(['-p', String(env.qmux.port), '-T', '5000', '7*6']);
  assert.equal(result.code, 0, describeRun(result));
  assert.equal(result.stdout.trim(), '42');
  secure.destroy();
  plain.destroy();
});

integrationTest('bad TLS handshakes closed and logged', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, tls: tlsSettings(certs.serverA, 'on') });
  const bystander = await tlsClient(env.qmux.port, certs.ca);
  assert.deepEqual(await bystander.query('1+1'), { long: 2n });

  // A TLS record type followed by bytes that are no ClientHello.
  const garbage = await RawConnection.connect(env.qmux.port);
  await garbage.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]));
  assert.equal(await garbage.waitClosed(3000), true, 'qmux closes the garbage connection');
  await waitFor(() => /closed: TLS handshake failed: \S.*\(user -,/.test(env.qmux.stderr),
    { what: 'the failed handshake line for the garbage' });

  // A client that trusts another CA rejects qmux's certificate. Node.js closes without an
  // alert; openssl s_client sends one, and qmux logs its reason.
  await assert.rejects(RawConnection.connectTls(env.qmux.port, trusting(certs.wrongCa)),
    /unable to get local issuer certificate|self.signed|unable to verify/);
  await waitFor(() => /closed: disconnected during the TLS handshake \(user -,/.test(env.qmux.stderr),
    { what: 'the line for the client that closed' });

  const sClient = spawn('openssl', ['s_client', '-connect', `${HOST}:${env.qmux.port}`,
    '-CAfile', certs.wrongCa.cert, '-verify_return_error'], { stdio: ['ignore', 'ignore', 'ignore'] });
  try {
    await waitFor(() => /closed: TLS handshake failed: .*alert unknown ca/.test(env.qmux.stderr),
      { what: 'the unknown CA line' });
  } finally {
    sClient.kill('SIGKILL');
  }

  assert.deepEqual(await bystander.query('2+2'), { long: 4n }, 'the other client is unaffected');
  bystander.destroy();
});

integrationTest('client certificates checked when required', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  // The readiness probe has no client certificate, so wait for the listening line instead.
  await env.startQmux({
    poolSize: 1,
    waitReady: false,
    tls: tlsSettings(certs.serverA, 'only', { ca_file: certs.ca.cert, verify_client: true }),
  });
  await env.qmux.waitForLog(/listening on /, 5000);

  const withCertificate = await tlsClient(env.qmux.port, certs.ca, {
    cert: fs.readFileSync(certs.client.cert),
    key: fs.readFileSync(certs.client.key),
  });
  assert.deepEqual(await withCertificate.query('3+3'), { long: 6n });
  await waitFor(() => /TLS handshake completed: .*client certificate \/CN=qmux-test-client/
    .test(env.qmux.stderr), { what: 'the client certificate in the session line' });

  // TLS 1.3 finishes the client's side of the handshake before the server checks its
  // certificate, so the rejection shows as a closed connection.
  let rejected = false;
  try {
    const without = await RawConnection.connectTls(env.qmux.port, trusting(certs.ca));
    await without.write(Buffer.concat([Buffer.from('nocert:pw'), Buffer.from([3, 0])]));
    rejected = await without.waitClosed(3000);
    without.destroy();
  } catch {
    rejected = true;
  }
  assert.equal(rejected, true, 'a client without a certificate is closed');
  await waitFor(() => /closed: TLS handshake failed: .*peer did not return a certificate/
    .test(env.qmux.stderr), { what: 'the missing client certificate line' });
  assert.deepEqual(await withCertificate.query('4+4'), { long: 8n });
  withCertificate.destroy();
});

integrationTest('reload serves a new certificate', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, tls: tlsSettings(certs.serverA) });
  const before = await tlsClient(env.qmux.port, certs.ca);
  const fingerprintA = before.socket.getPeerCertificate().fingerprint256;
  assert.equal(before.socket.getPeerCertificate().subject.CN, 'qmux-test-server-a');

  reloadQmux(env, { poolSize: 1, tls: tlsSettings(certs.serverB) });
  await waitFor(() => env.qmux.stderr.includes(`TLS: clients get the certificate of ${certs.serverB.cert}`),
    { what: 'the new certificate line' });
  await waitFor(() => countMatches(env.qmux.stderr, /configuration reloaded from/g) === 1,
    { what: 'the reload line' });

  const after = await tlsClient(env.qmux.port, certs.ca);
  const served = after.socket.getPeerCertificate();
  assert.equal(served.subject.CN, 'qmux-test-server-b', 'new connections get the new certificate');
  assert.notEqual(served.fingerprint256, fingerprintA);
  assert.ok(env.qmux.stderr.includes(`SHA-256 ${served.fingerprint256}`),
    'the log names the fingerprint of the certificate served');
  assert.deepEqual(await before.query('1+1'), { long: 2n }, 'the open connection goes on');

  // A certificate file that is missing: the reload is rejected and B stays in use.
  const missing = `${env.tmpDir}/tls/missing.pem`;
  reloadQmux(env, { poolSize: 1, tls: tlsSettings({ cert: missing, key: certs.serverB.key }) });
  await waitFor(() => /reload failed: cannot set up TLS: .*; the running configuration and its TLS certificates stay in use/
    .test(env.qmux.stderr), { what: 'the rejected reload line' });
  assert.ok(env.qmux.stderr.includes(`reload failed: cannot set up TLS: tls.cert_file "${missing}": cannot open: No such file or directory`),
    'the log names the key, the file and the reason');

  const still = await tlsClient(env.qmux.port, certs.ca);
  assert.equal(still.socket.getPeerCertificate().fingerprint256, served.fingerprint256,
    'the certificate of the last good reload is still served');
  assert.deepEqual(await still.query('2+2'), { long: 4n });
  before.destroy();
  after.destroy();
  still.destroy();
});

integrationTest('upstream TLS with the right CA', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream({ tlsFiles: certs.serverA });
  await env.startQmux({ poolSize: 2, upstreamTls: { enabled: true, ca_file: certs.ca.cert } });

  const client = await plainClient(env.qmux.port);
  assert.deepEqual(await client.query('40+2', 5000), { long: 42n });

  // A response of 8 MB crosses the TLS upstream and the plain client whole.
  await client.write(encodeQuery(MSG_SYNC, 'til 1000000'));
  const message = await client.readMessage(10000);
  assert.equal(message.length, 8 + 6 + 8 * 1000000);
  assert.equal(message.body.readBigInt64LE(6 + 8 * 999999), 999999n);
  client.destroy();
  if (env.upstream.name === 'qmux-standin') {
    assert.match(env.upstream.stderr, /TLS handshake completed: TLSv1\.[23]/);
  }
});

integrationTest('upstream TLS with a wrong CA', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream({ tlsFiles: certs.serverA });
  await env.startQmux({
    poolSize: 1,
    pool: { unavailable_wait_ms: 300 },
    upstreamTls: { enabled: true, ca_file: certs.wrongCa.cert },
  });
  await waitFor(() => /TLS handshake failed: certificate verify failed \((unable to get local issuer certificate|self-signed certificate in certificate chain)\); check upstream_tls/
    .test(env.qmux.stderr), { what: 'the verification failure line' });

  const client = await plainClient(env.qmux.port);
  const answer = await client.query('1+1', 5000);
  assert.ok(answer.error, `the client gets an error, got ${JSON.stringify(answer)}`);
  assert.match(answer.error, /^upstream unavailable/);

  // A reload with the right CA replaces the failing connections.
  reloadQmux(env, {
    poolSize: 1,
    pool: { unavailable_wait_ms: 300 },
    upstreamTls: { enabled: true, ca_file: certs.ca.cert },
  });
  await waitFor(() => /reload: upstream_tls changed; replacing/.test(env.qmux.stderr),
    { what: 'the upstream_tls reload line' });
  // The connection waiting for its retry is connected at once, as a new one.
  await waitFor(() => /\]: connected(, capability \d| after \d+ failed attempts?)/.test(env.qmux.stderr),
    { timeoutMs: 15000, what: 'the TLS upstream connection' });
  assert.deepEqual(await client.query('2+3', 5000), { long: 5n }, 'served after the reload');
  client.destroy();
});

integrationTest('upstream TLS login rejection', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream({ tlsFiles: certs.serverA });
  await env.startQmux({
    poolSize: 1,
    password: 'not-the-password',
    upstreamTls: { enabled: true, ca_file: certs.ca.cert },
  });
  // The upstream closes without a TLS close_notify; qmux still reads it as the rejection.
  await waitFor(() => /login rejected by upstream \(check user and password of upstreams entry 1\)/
    .test(env.qmux.stderr), { what: 'the login rejection line' });
});

integrationTest('slow reader over TLS both ways', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream({ tlsFiles: certs.serverA });
  await env.startQmux({
    poolSize: 1,
    tls: tlsSettings(certs.serverB),
    upstreamTls: { enabled: true, ca_file: certs.ca.cert },
  });
  const client = await tlsClient(env.qmux.port, certs.ca);

  // 40 MB while the client reads nothing for a while: qmux stops reading the TLS
  // upstream at clients.output_high_watermark (1 MiB here) and resumes as it drains.
  client.socket.pause();
  await client.write(encodeQuery(MSG_SYNC, 'til 5000000'));
  await sleep(500);
  client.socket.resume();
  const message = await client.readMessage(30000);
  assert.equal(message.length, 8 + 6 + 8 * 5000000);
  assert.equal(message.body.readBigInt64LE(6 + 8 * 4999999), 4999999n, 'the last item');
  assert.deepEqual(await client.query('1+1'), { long: 2n });
  client.destroy();
});

integrationTest('upstream lost mid-response to a TLS client',
  { skip: upstreamIsQ() && 'uses the stand-in .standin.closeMid helper' }, async (env) => {
    const certs = makeCertificates(env.tmpDir);
    await env.startUpstream();
    await env.startQmux({ poolSize: 2, tls: tlsSettings(certs.serverA) });
    const client = await tlsClient(env.qmux.port, certs.ca);

    // Half of an 8 MB response, then the upstream closes. Bytes still in qmux's buffer may
    // give way to the error; once some reached TLS, the client must be closed instead.
    await client.write(encodeQuery(MSG_SYNC, '.standin.closeMid 1000000'));
    let outcome;
    try {
      const message = await client.readMessage(10000);
      outcome = message.body.readInt8(0) === -128 ? 'error' : `a message of type ${message.body.readInt8(0)}`;
    } catch (error) {
      outcome = client.closed ? 'closed' : error.message;
    }
    assert.ok(outcome === 'error' || outcome === 'closed', `the client gets the error or is closed: ${outcome}`);
    await waitFor(() => /connection closed by upstream; reconnecting/.test(env.qmux.stderr),
      { what: 'the upstream loss line' });

    const other = await tlsClient(env.qmux.port, certs.ca);
    assert.deepEqual(await other.query('1+1', 5000), { long: 2n }, 'other clients are served');
    other.destroy();
    client.destroy();
  });

integrationTest('silent client times out before TLS', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  await env.startQmux({
    poolSize: 1,
    clients: { handshake_timeout_ms: 300 },
    tls: tlsSettings(certs.serverA, 'on'),
  });

  // Neither TLS nor plain: qmux waits for a first byte that never comes.
  const silent = await RawConnection.connect(env.qmux.port);
  assert.equal(await silent.waitClosed(3000), true, 'the silent client is closed');
  await waitFor(() => /closed: handshake not completed within 300 ms/.test(env.qmux.stderr),
    { what: 'the timeout line' });

  // One more is still waiting when the test stops qmux: the shutdown closes it, and the
  // sanitizer build reports anything it leaks.
  const waiting = await RawConnection.connect(env.qmux.port);
  assert.equal(waiting.closed, false);
});

integrationTest('mismatched key rejected at check and start', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  const text = qmuxConfigText({
    listenPort: 5010,
    upstreamPort: 5001,
    tls: tlsSettings({ cert: certs.serverA.cert, key: certs.serverB.key }),
  });
  const configPath = `${env.tmpDir}/mismatch.conf`;
  fs.writeFileSync(configPath, text);
  const result = await new Promise((resolve) => {
    execFile(QMUX, ['-t', '-c', configPath], { timeout: 5000 }, (error, stdout, stderr) =>
      resolve({ code: error ? error.code : 0, stderr }));
  });
  assert.equal(result.code, 1, result.stderr);
  assert.ok(result.stderr.includes(`tls.key_file "${certs.serverB.key}": does not match the certificate of tls.cert_file`),
    result.stderr);

  // Started with that file, qmux logs the reason and exits with status 3.
  await env.startUpstream();
  const proc = await env.startQmux({
    waitReady: false,
    tls: tlsSettings({ cert: certs.serverA.cert, key: certs.serverB.key }),
  });
  proc.stopRequested = true;
  await proc.exited;
  assert.equal(proc.exitCode, 3, proc.stderr);
  assert.match(proc.stderr, /cannot set up TLS: tls\.key_file ".*": does not match the certificate/);
});

integrationTest('TLS client on a plain listener is told why', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });
  const socket = tls.connect({ host: HOST, port: env.qmux.port, ca: fs.readFileSync(certs.ca.cert), servername: 'localhost' });
  await new Promise((resolve) => { socket.on('error', resolve); socket.on('close', resolve); });
  await waitFor(() => /closed: rejected: the client started TLS \(first byte 0x16\) on a plain connection/.test(env.qmux.stderr),
    { what: 'the TLS-on-plain log line' });
});

integrationTest('a directory as cert_file is named as such', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  const configPath = `${env.tmpDir}/directory.conf`;
  fs.writeFileSync(configPath, qmuxConfigText({
    listenPort: 5010,
    upstreamPort: 5001,
    tls: tlsSettings({ cert: env.tmpDir, key: certs.serverA.key }),
  }));
  const result = await new Promise((resolve) => {
    execFile(QMUX, ['-t', '-c', configPath], { timeout: 5000 }, (error, stdout, stderr) =>
      resolve({ code: error ? error.code : 0, stderr }));
  });
  assert.equal(result.code, 1, result.stderr);
  assert.ok(result.stderr.includes(`tls.cert_file "${env.tmpDir}": not a regular file; name the PEM file itself`),
    result.stderr);
});

integrationTest('plain connection to a TLS-only upstream is explained', async (env) => {
  const certs = makeCertificates(env.tmpDir);
  await env.startUpstream({ tlsFiles: certs.serverA });
  await env.startQmux({ poolSize: 1 });
  await waitFor(() => /connection reset during the login; a kdb\+ that serves TLS only \(-E 2\) resets plain connections/.test(env.qmux.stderr)
    || /login rejected by upstream/.test(env.qmux.stderr),
  { what: 'the reason the upstream login failed' });
  assert.match(env.qmux.stderr, /connection reset during the login/,
    'the upstream reset the plain connection, and the log says what to check');
});
