'use strict';
// Soak: for SOAK_SECONDS (default 30; `make soak` runs 600) clients send every kind of
// traffic through qmux while the upstream restarts now and then. Clients disconnect at
// every stage of a request, read slowly, pipeline sync requests and send async-then-sync
// pairs, and every response is checked against its request. At the end qmux's open file
// descriptors must be back at their baseline and its resident memory near it.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const {
  describeRun, integrationTest, parseLoadSummary, runClient, sleep, upstreamIsQ, waitFor,
} = require('./lib/harness');
const { MSG_ASYNC, MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

const SOAK_SECONDS = Number(process.env.SOAK_SECONDS || 30);
const WARMUP_MS = 6000;
const ACTORS = 16;
const LOAD_CLIENTS = 50;
const POOL_SIZE = 4;
const RESTART_EVERY_MS = 7000;
// Each response must arrive within this deadline; a slower one fails the test as a hang.
const RESPONSE_DEADLINE_MS = 10000;

// Resident memory may grow this much over the baseline. The baseline is taken after a
// warm-up that runs the same traffic, so the allocator's caches (glibc arenas, or the
// ASan allocator with the 16 MiB quarantine that the harness sets) are already full.
// What remains is the difference between two peaks of concurrent buffers: a slow reader
// holds up to output_high_watermark (64 KiB here), a streamed vector a few chunks, and
// qmux reads upstream sockets into chains of up to 256 KiB. In a 100 s run under the
// sanitizers the samples moved between 33 and 48 MiB with no trend, so 24 MiB leaves
// room for that swing. A leak of
// one libevent buffer chain per request (at least 1 KiB on 64-bit) grows RSS by 1 KiB
// per request. So the test also requires enough requests after the baseline for that
// to pass twice this tolerance. A 30 s run sends over 100000, enough to catch a leak of
// about 250 bytes per request; a deliberate 1 KiB leak grew RSS by 345 MiB in 30 s.
const RSS_TOLERANCE_BYTES = 24 * 1024 * 1024;
const LEAK_PER_REQUEST_BYTES = 1024;

// Outcomes that a restart of the upstream may cause for a request in flight or queued.
const OUTAGE_ERROR = /^(upstream connection lost|upstream unavailable)/;

// Deterministic pseudo-random numbers (mulberry32), so a failing run can be repeated
// with the seed it prints.
function makeRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function readProcStatus(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(status.match(/^VmRSS:\s+(\d+) kB$/m)[1]);
  return { rss: rssKb * 1024, fds: fs.readdirSync(`/proc/${pid}/fd`).length };
}

// Decodes a response body: { error } for a kdb+ error, { long } for a long atom, { longs }
// for a long vector, { type } for anything else.
function decodeBody(body) {
  const type = body.readInt8(0);
  if (type === -128) return { error: body.subarray(1, body.indexOf(0, 1)).toString() };
  if (type === -7 && body.length === 9) return { long: body.readBigInt64LE(1) };
  if (type === 7) {
    const count = body.readUInt32LE(2);
    if (body.length !== 6 + 8 * count) return { type };
    return { longs: { count, first: count ? body.readBigInt64LE(6) : null, body } };
  }
  return { type };
}

// Returns null when body is the long vector start .. start+count-1, else what differs.
function vectorMismatch(body, start, count) {
  const decoded = decodeBody(body);
  if (!decoded.longs) return `expected a long vector, received ${JSON.stringify(decoded, (k, v) => (typeof v === 'bigint' ? String(v) : v))}`;
  if (decoded.longs.count !== count) return `expected ${count} items, received ${decoded.longs.count}`;
  for (let i = 0; i < count; i++) {
    const item = body.readBigInt64LE(6 + 8 * i);
    if (item !== start + BigInt(i)) return `item ${i}: expected ${start + BigInt(i)}, received ${item}`;
  }
  return null;
}

// Tracks upstream restarts, so a request whose lifetime overlapped one may end with an
// outage error or a closed connection, and any other request may not.
class OutageClock {
  constructor() {
    this.generation = 0;
    this.active = false;
  }

  begin() {
    this.generation++;
    this.active = true;
  }

  end() {
    this.active = false;
  }

  mark() {
    return { generation: this.generation, active: this.active };
  }

  overlapped(mark) {
    return mark.active || this.active || mark.generation !== this.generation;
  }
}

// Counts outcomes and keeps the first failures for the assertion message.
class Tally {
  constructor() {
    this.counts = {};
    this.failures = [];
  }

  add(name, amount = 1) {
    this.counts[name] = (this.counts[name] || 0) + amount;
  }

  fail(text) {
    this.add('failures');
    if (this.failures.length < 20) this.failures.push(text);
  }
}

// One simulated client: a loop of randomly chosen scenarios, each on its own connection,
// until stop() is called.
class Actor {
  constructor(number, port, outages, tally, random) {
    this.number = number;
    this.port = port;
    this.outages = outages;
    this.tally = tally;
    this.random = random;
    this.sequence = 0;
    this.stopping = false;
  }

  nextKey() {
    this.sequence++;
    return BigInt(this.number) * 1000000n + BigInt(this.sequence);
  }

  async connect() {
    const connection = await RawConnection.connect(this.port, { timeoutMs: RESPONSE_DEADLINE_MS });
    const capability = await connection.handshake(`soak${this.number}:pass`, 3, RESPONSE_DEADLINE_MS);
    assert.equal(capability, 3, 'qmux agrees capability 3');
    return connection;
  }

  // Reads the response to a request sent at mark. Returns the body, or null when an
  // outage explains an error or a close (counted); records a failure otherwise.
  async readResponse(connection, what, mark) {
    const before = connection.buffered;
    let message;
    try {
      message = await connection.readMessage(RESPONSE_DEADLINE_MS);
    } catch (error) {
      const received = connection.buffered - before;
      if (connection.closed && received > 0 && this.outages.overlapped(mark)) {
        this.tally.add('closed mid-response during restart');
        return null;
      }
      this.tally.fail(`${what}: ${error.message} (${received} response bytes received, restart overlapped: ${this.outages.overlapped(mark)})`);
      return null;
    }
    if (message.type !== 2) {
      this.tally.fail(`${what}: expected a response message, received type ${message.type}`);
      return null;
    }
    const decoded = decodeBody(message.body);
    if (decoded.error !== undefined && OUTAGE_ERROR.test(decoded.error) && this.outages.overlapped(mark)) {
      this.tally.add('outage error during restart');
      return null;
    }
    return message.body;
  }

  expectLong(body, expected, what) {
    if (body === null) return;
    const decoded = decodeBody(body);
    if (decoded.long === expected) {
      this.tally.add('verified responses');
    } else {
      this.tally.fail(`${what}: expected ${expected}, received ${JSON.stringify(decoded, (k, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    }
  }

  expectVector(body, start, count, what) {
    if (body === null) return;
    const mismatch = vectorMismatch(body, start, count);
    if (mismatch === null) this.tally.add('verified responses');
    else this.tally.fail(`${what}: ${mismatch}`);
  }

  async sync(connection) {
    const key = this.nextKey();
    const mark = this.outages.mark();
    await connection.write(encodeQuery(MSG_SYNC, `${key}+0`));
    this.expectLong(await this.readResponse(connection, `sync ${key}+0`, mark), key, `sync ${key}+0`);
  }

  async pipelined(connection) {
    const keys = Array.from({ length: 2 + Math.floor(this.random() * 6) }, () => this.nextKey());
    const mark = this.outages.mark();
    await connection.write(Buffer.concat(keys.map((key) => encodeQuery(MSG_SYNC, `${key}+0`))));
    for (const key of keys) {
      const body = await this.readResponse(connection, `pipelined ${key}+0`, mark);
      if (connection.closed && body === null) return;
      this.expectLong(body, key, `pipelined ${key}+0`);
    }
  }

  // neg[h]"name:K" then h"name": qmux pins the client to the connection that took the
  // async message, so the sync request reads the value. Each pair uses a new name, so a
  // value lost in a restart shows as the error 'name, never as an older value.
  async asyncThenSync(connection) {
    const key = this.nextKey();
    const name = `s${this.number}x${this.sequence}`;
    const mark = this.outages.mark();
    await connection.write(Buffer.concat([encodeQuery(MSG_ASYNC, `${name}:${key}`), encodeQuery(MSG_SYNC, name)]));
    const body = await this.readResponse(connection, `async-then-sync ${name}`, mark);
    if (body !== null && decodeBody(body).error === name && this.outages.overlapped(mark)) {
      this.tally.add('async message lost in restart');
      return;
    }
    this.expectLong(body, key, `async-then-sync ${name}`);
  }

  async vector(connection) {
    const key = this.nextKey();
    const count = 1000 + Math.floor(this.random() * 50000);
    const mark = this.outages.mark();
    await connection.write(encodeQuery(MSG_SYNC, `${key}+til ${count}`));
    this.expectVector(await this.readResponse(connection, `vector ${key}+til ${count}`, mark), key, count, `vector ${key}`);
  }

  // Reads a 2.4 MB vector in pauses, so qmux's output buffer for this client passes the
  // high watermark and qmux stops reading the upstream connection until it drains.
  async slowReader(connection) {
    const key = this.nextKey();
    const count = 300000;
    const mark = this.outages.mark();
    connection.socket.pause();
    await connection.write(encodeQuery(MSG_SYNC, `${key}+til ${count}`));
    let finished = false;
    const reading = this.readResponse(connection, `slow reader ${key}`, mark).finally(() => { finished = true; });
    // readResponse() ends within RESPONSE_DEADLINE_MS, and so does this loop.
    while (!finished) {
      connection.socket.resume();
      await connection.waitForChange(20);
      connection.socket.pause();
      await sleep(10);
    }
    connection.socket.resume();
    this.expectVector(await reading, key, count, `slow reader ${key}`);
  }

  async dropMidHandshake() {
    const connection = await RawConnection.connect(this.port);
    await connection.write(Buffer.from(`soak${this.number}:pa`));
    connection.destroy();
    this.tally.add('dropped mid-handshake');
  }

  async dropMidHeader(connection) {
    await connection.write(encodeQuery(MSG_SYNC, '1+1').subarray(0, 1 + Math.floor(this.random() * 7)));
    this.tally.add('dropped mid-header');
  }

  async dropMidBody(connection) {
    const message = encodeQuery(MSG_SYNC, `${this.nextKey()}+til 10`);
    await connection.write(message.subarray(0, 9 + Math.floor(this.random() * (message.length - 10))));
    this.tally.add('dropped mid-body');
  }

  // With 50 load clients over 4 connections the queue is rarely empty, so a request
  // dropped right after it is written is usually still waiting in it.
  async dropWhileQueued(connection) {
    await connection.write(encodeQuery(MSG_SYNC, `${this.nextKey()}+0`));
    await sleep(this.random() * 5);
    this.tally.add('dropped after the request');
  }

  async dropWhileStreaming(connection) {
    await connection.write(encodeQuery(MSG_SYNC, 'til 2000000'));
    await waitFor(() => connection.buffered >= 32768 || connection.closed,
      { timeoutMs: RESPONSE_DEADLINE_MS, what: 'the first 32 KiB of til 2000000' });
    this.tally.add('dropped while streaming');
  }

  async runOne() {
    const scenarios = [
      [25, 'sync', (c) => this.sync(c)],
      [15, 'pipelined', (c) => this.pipelined(c)],
      [15, 'async-then-sync', (c) => this.asyncThenSync(c)],
      [10, 'vector', (c) => this.vector(c)],
      [4, 'slow reader', (c) => this.slowReader(c)],
      [4, 'drop mid-handshake', null],
      [6, 'drop mid-header', (c) => this.dropMidHeader(c)],
      [6, 'drop mid-body', (c) => this.dropMidBody(c)],
      [8, 'drop while queued', (c) => this.dropWhileQueued(c)],
      [4, 'drop while streaming', (c) => this.dropWhileStreaming(c)],
    ];
    const total = scenarios.reduce((sum, [weight]) => sum + weight, 0);
    let pick = this.random() * total;
    const [, name, run] = scenarios.find(([weight]) => (pick -= weight) < 0);
    if (run === null) {
      await this.dropMidHandshake();
      return;
    }
    const connection = await this.connect();
    try {
      // A connection used for a few requests in a row, then dropped, covers clients that
      // stay connected as well as short-lived ones.
      const repeats = name.startsWith('drop') ? 1 : 1 + Math.floor(this.random() * 3);
      for (let i = 0; i < repeats && !connection.closed; i++) await run(connection);
    } finally {
      connection.destroy();
    }
  }

  async loop() {
    while (!this.stopping) {
      try {
        await this.runOne();
      } catch (error) {
        this.tally.fail(`actor ${this.number}: ${error.stack}`);
      }
    }
  }
}

// Runs `actors` clients and the C load tool until the returned stop() is called;
// stop() resolves with the load tool's result.
function startTraffic(port, outages, tally, seed, durationMs) {
  const random = makeRandom(seed);
  const actors = Array.from({ length: ACTORS }, (_, i) =>
    new Actor(i + 1, port, outages, tally, makeRandom(Math.floor(random() * 2 ** 32))));
  const loops = actors.map((actor) => actor.loop());
  const load = runClient(['load', '-p', String(port), '-n', String(LOAD_CLIENTS), '--duration-ms', String(durationMs),
    '--keep-going', '--timeout-ms', String(RESPONSE_DEADLINE_MS), '--vector-items', '5000', '--vector-every', '7'],
  { timeoutMs: durationMs + 60000 });
  return async () => {
    const result = await load;
    for (const actor of actors) actor.stopping = true;
    await Promise.all(loops);
    return result;
  };
}

integrationTest('soak keeps fds and memory flat', {
  timeout: (SOAK_SECONDS + 90) * 1000,
  skip: upstreamIsQ() && 'restarts the stand-in many times',
}, async (env, t) => {
  await env.startUpstream();
  // query_timeout_ms bounds a request whose upstream died without closing its socket. A
  // restart closes the socket, so in this test the timeout is only a backstop against a
  // hang. unavailable_wait_ms covers a restart (SIGTERM, exit, start) without failing
  // requests.
  await env.startQmux({
    poolSize: POOL_SIZE,
    reconnectMinMs: 50,
    reconnectMaxMs: 500,
    highWatermark: 65536,
    lowWatermark: 16384,
    pool: { unavailable_wait_ms: 3000 },
    clients: { query_timeout_ms: 8000 },
  });
  const port = env.qmux.port;
  const seed = Number(process.env.SOAK_SEED || Date.now() % 1000000);
  t.diagnostic(`seed ${seed} (set SOAK_SEED to repeat), ${SOAK_SECONDS} s`);
  const outages = new OutageClock();

  let restarts = 0;
  async function restartUpstream() {
    const reconnectsBefore = (env.qmux.stderr.match(/reconnected after/g) || []).length;
    outages.begin();
    if (restarts % 2 === 0) await env.upstream.kill();
    await env.restartUpstream();
    restarts++;
    await waitFor(() => (env.qmux.stderr.match(/reconnected after/g) || []).length >= reconnectsBefore + POOL_SIZE,
      { timeoutMs: 10000, what: 'every pool connection to reconnect after the restart' });
    outages.end();
  }

  async function settle() {
    // Every client connection is closed and every pool connection logged in once the
    // descriptor count stops changing.
    let previous = -1;
    await waitFor(() => {
      const { fds } = readProcStatus(env.qmux.pid);
      const stable = fds === previous;
      previous = fds;
      return stable;
    }, { timeoutMs: 10000, intervalMs: 500, what: 'the qmux descriptor count to settle' });
  }

  // Warm-up: the same traffic and one restart, so buffers and allocator caches reach their
  // working size before the baseline is taken.
  const warmupTally = new Tally();
  const stopWarmup = startTraffic(port, outages, warmupTally, seed, WARMUP_MS);
  await sleep(WARMUP_MS / 2);
  await restartUpstream();
  const warmupLoad = await stopWarmup();
  assert.deepEqual(warmupTally.failures, [], 'warm-up responses are correct');
  assert.equal(parseLoadSummary(warmupLoad.stdout).wrong, 0, describeRun(warmupLoad));
  await settle();
  const baseline = readProcStatus(env.qmux.pid);
  t.diagnostic(`baseline after warm-up: ${baseline.fds} fds, RSS ${(baseline.rss / 1048576).toFixed(1)} MiB`);

  // The soak.
  const tally = new Tally();
  const soakMs = SOAK_SECONDS * 1000;
  const started = Date.now();
  const stopSoak = startTraffic(port, outages, tally, seed + 1, soakMs);
  const samples = [];
  while (Date.now() - started < soakMs - RESTART_EVERY_MS / 2) {
    await sleep(Math.min(RESTART_EVERY_MS, soakMs - (Date.now() - started)));
    samples.push(readProcStatus(env.qmux.pid));
    if (Date.now() - started < soakMs - RESTART_EVERY_MS / 2) await restartUpstream();
  }
  const loadResult = await stopSoak();
  const load = parseLoadSummary(loadResult.stdout);
  await settle();
  const final = readProcStatus(env.qmux.pid);

  const requests = (tally.counts['verified responses'] || 0) + load.requests;
  t.diagnostic(`load tool: ${loadResult.stdout.trim()}`);
  t.diagnostic(`actors: ${JSON.stringify(tally.counts)}`);
  t.diagnostic(`restarts ${restarts}; RSS samples MiB: ${samples.map((s) => (s.rss / 1048576).toFixed(1)).join(' ')}; ` +
    `final ${final.fds} fds, RSS ${(final.rss / 1048576).toFixed(1)} MiB`);

  // Every response matched its request.
  assert.deepEqual(tally.failures, [], 'every actor response is correct');
  assert.ok(load, describeRun(loadResult));
  assert.equal(load.wrong, 0, describeRun(loadResult));
  assert.equal(load.timeouts, 0, describeRun(loadResult));
  assert.equal(load.other_errors, 0, describeRun(loadResult));
  assert.equal(load.closed_empty, 0, describeRun(loadResult));
  assert.equal(loadResult.code, 0, describeRun(loadResult));

  // Every stage of a client disconnect happened, as qmux logged it.
  for (const reason of ['disconnected during the handshake', 'disconnected mid-message',
    'disconnected while its request was queued', 'disconnected while its request was in flight']) {
    assert.ok(env.qmux.stderr.includes(reason), `qmux logged a client "${reason}"`);
  }

  // No descriptor and no memory per request stays behind.
  assert.equal(final.fds, baseline.fds, 'qmux holds as many descriptors as at the baseline');
  assert.ok(requests * LEAK_PER_REQUEST_BYTES > 2 * RSS_TOLERANCE_BYTES,
    `${requests} requests are enough to detect a leak of ${LEAK_PER_REQUEST_BYTES} bytes per request`);
  assert.ok(final.rss - baseline.rss <= RSS_TOLERANCE_BYTES,
    `RSS grew ${((final.rss - baseline.rss) / 1048576).toFixed(1)} MiB over the baseline, ` +
    `more than ${RSS_TOLERANCE_BYTES / 1048576} MiB`);
});
