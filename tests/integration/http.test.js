'use strict';
// q queries over HTTP (GET and POST /q on http.port): results as JSON, compared with what
// node-q decodes over IPC through qmux, gzip, chunked transfer of large results with
// bounded memory and without blocking other clients, every error status, and the shared
// queue. docs/http.md describes the endpoint.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const zlib = require('node:zlib');
const { HOST, freePort, integrationTest, sleep, upstreamIsQ, waitFor } = require('./lib/harness');
const nodeq = require('./lib/nodeq');
const { MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

// Starts the stand-in (unless options.upstreamPort is given) and qmux with http.port set.
async function startWithHttp(env, { http: httpSettings = {}, ...options } = {}) {
  if (!options.upstreamPort) await env.startUpstream();
  const httpPort = await freePort();
  await env.startQmux({ poolSize: 2, http: { port: httpPort, ...httpSettings }, ...options });
  return httpPort;
}

// Sends one request with node:http, which does not decompress, and resolves with
// { status, headers, body } where body is the raw Buffer.
function request(port, path, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, path, method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// GET /q?query=... without compression; resolves with { status, type, json }.
async function query(port, text, headers = {}) {
  const response = await request(port, `/q?query=${encodeURIComponent(text)}`,
    { headers: { 'Accept-Encoding': 'identity', ...headers } });
  return { status: response.status, type: response.headers['content-type'], json: JSON.parse(response.body.toString('utf8')) };
}

// Reads every sample of the Prometheus text of /metrics into { 'name{labels}': number }.
async function metrics(port) {
  const response = await request(port, '/metrics');
  const samples = {};
  for (const line of response.body.toString('utf8').split('\n')) {
    const match = line.match(/^([a-z_]+(?:\{[^}]*\})?) (\S+)$/);
    if (match) samples[match[1]] = Number(match[2]);
  }
  return samples;
}

// The JSON text of a timestamp has nanoseconds, and node-q 2.7 gives a Date with
// milliseconds. node-q computes it in floating point and truncates, so it can be 1 ms early.
function sameInstant(jsonText, date) {
  const difference = new Date(`${jsonText.slice(0, 23)}Z`).getTime() - date.getTime();
  return difference === 0 || difference === 1;
}

// ---- a scripted kdb+ upstream for dictionaries, which the stand-in cannot build ----

function symbols(names) {
  return Buffer.concat(names.map((name) => Buffer.from(`${name}\0`)));
}

function vectorHeader(type, count) {
  const header = Buffer.alloc(6);
  header.writeInt8(type, 0);
  header.writeUInt32LE(count, 2);
  return header;
}

function longAtom(value) {
  const atom = Buffer.alloc(9);
  atom.writeInt8(-7, 0);
  atom.writeBigInt64LE(BigInt(value), 1);
  return atom;
}

function floatAtom(value) {
  const atom = Buffer.alloc(9);
  atom.writeInt8(-9, 0);
  atom.writeDoubleLE(value, 1);
  return atom;
}

function symbolVector(names) {
  return Buffer.concat([vectorHeader(11, names.length), symbols(names)]);
}

function longVector(values) {
  const items = Buffer.alloc(8 * values.length);
  values.forEach((value, i) => items.writeBigInt64LE(BigInt(value), 8 * i));
  return Buffer.concat([vectorHeader(7, values.length), items]);
}

function dictionary(keys, values) {
  return Buffer.concat([Buffer.from([99]), keys, values]);
}

// Object bodies the scripted upstream returns, by query text.
const SCRIPTED_RESULTS = {
  'dict longs': dictionary(symbolVector(['a', 'b', 'c']), longVector([1, 2, 3])),
  'dict mixed': dictionary(symbolVector(['n', 's', 'f']), Buffer.concat([
    vectorHeader(0, 3), longAtom(42), Buffer.concat([Buffer.from([0xf5]), symbols(['sym'])]), floatAtom(1.5),
  ])),
};

function responseMessage(body) {
  const header = Buffer.alloc(8);
  header.writeUInt8(1, 0);
  header.writeUInt8(2, 1);
  header.writeUInt32LE(8 + body.length, 4);
  return Buffer.concat([header, body]);
}

// A table of one boolean column with a long name, flip (enlist `$n#"c")!enlist rows#01b in
// q: a small message whose JSON repeats the name in every row, so the text is about
// nameLength times the message. Returns { body, json }, json being the text qmux renders.
function wideTable(nameLength, rows) {
  const name = 'c'.repeat(nameLength);
  const values = Buffer.alloc(rows);
  for (let i = 0; i < rows; i++) values[i] = i % 2;
  const body = Buffer.concat([
    Buffer.from([98, 0, 99]), symbolVector([name]), vectorHeader(0, 1), vectorHeader(1, rows), values,
  ]);
  const rowTexts = [`{"${name}":false}`, `{"${name}":true}`];
  const json = `[${Array.from({ length: rows }, (_, i) => rowTexts[i % 2]).join(',')}]\n`;
  return { body, json };
}

// A kdb+ server that accepts any login. For each sync request it returns the value from
// results, the generic null for `::`, and the error 'nyi for anything else.
function startScriptedUpstream(results = SCRIPTED_RESULTS) {
  const server = net.createServer((socket) => {
    let buffered = Buffer.alloc(0);
    let loggedIn = false;
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (!loggedIn) {
        const end = buffered.indexOf(0);
        if (end < 0) return;
        buffered = buffered.subarray(end + 1);
        loggedIn = true;
        socket.write(Buffer.from([3]));
      }
      while (buffered.length >= 8 && buffered.length >= buffered.readUInt32LE(4)) {
        const length = buffered.readUInt32LE(4);
        const message = buffered.subarray(0, length);
        buffered = buffered.subarray(length);
        if (message[1] !== MSG_SYNC) continue;
        const text = message[8] === 10 ? message.subarray(14).toString('utf8') : '';
        let body = results[text];
        if (body === undefined && text === '::') body = Buffer.from([101, 0]);
        if (body === undefined) body = Buffer.concat([Buffer.from([0x80]), Buffer.from(`nyi: ${text}\0`)]);
        socket.write(responseMessage(body));
      }
    });
  });
  return new Promise((resolve) => server.listen(0, HOST, () => resolve(server)));
}

// ---- results ----

integrationTest('http GET returns til 5', async (env) => {
  const port = await startWithHttp(env);
  const response = await request(port, '/q?query=til%205', { headers: { 'Accept-Encoding': 'identity' } });

  assert.equal(response.status, 200);
  assert.equal(response.headers['content-type'], 'application/json');
  assert.equal(response.headers['content-encoding'], undefined);
  assert.deepEqual(JSON.parse(response.body.toString('utf8')), [0, 1, 2, 3, 4]);
});

integrationTest('http POST body and form', async (env) => {
  const port = await startWithHttp(env);
  const plain = await fetch(`http://${HOST}:${port}/q`, {
    method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: '1+2',
  });
  assert.equal(plain.status, 200);
  assert.deepEqual(await plain.json(), 3);

  // A form encodes + as %2B, and the space of "til 3" as +.
  const form = await fetch(`http://${HOST}:${port}/q`, {
    method: 'POST', body: new URLSearchParams({ query: 'til 3' }),
  });
  assert.equal(form.status, 200);
  assert.deepEqual(await form.json(), [0, 1, 2]);
  const sum = await fetch(`http://${HOST}:${port}/q`, {
    method: 'POST', body: new URLSearchParams({ query: '40+2' }),
  });
  assert.deepEqual(await sum.json(), 42);

  // curl -d sends q text with the form content type; without a query parameter the body
  // is the q text.
  const curlStyle = await fetch(`http://${HOST}:${port}/q`, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'til 2',
  });
  assert.deepEqual(await curlStyle.json(), [0, 1]);
});

integrationTest('http table equals node-q result', async (env) => {
  const port = await startWithHttp(env);
  const client = await nodeq.connect(env.qmux.port);
  const expected = await client.sync('.standin.table 25');
  await client.close();
  const { status, json } = await query(port, '.standin.table 25');

  assert.equal(status, 200);
  assert.equal(json.length, 25);
  assert.equal(expected.length, 25);
  for (let i = 0; i < 25; i++) {
    assert.deepEqual(Object.keys(json[i]), ['id', 'sym', 'price', 'size', 'time'], `columns of row ${i}`);
    assert.equal(json[i].id, expected[i].id, `id of row ${i}`);
    assert.equal(json[i].sym, expected[i].sym, `sym of row ${i}`);
    assert.equal(json[i].price, expected[i].price, `price of row ${i}`);
    assert.equal(json[i].size, expected[i].size, `size of row ${i}`);
    assert.ok(sameInstant(json[i].time, expected[i].time), `time of row ${i}: ${json[i].time} and ${expected[i].time.toISOString()}`);
  }
});

integrationTest('http dictionaries equal node-q results', { skip: upstreamIsQ() && 'uses a scripted upstream' }, async (env) => {
  const upstream = await startScriptedUpstream();
  try {
    const port = await startWithHttp(env, { upstreamPort: upstream.address().port });
    const client = await nodeq.connect(env.qmux.port);
    for (const text of Object.keys(SCRIPTED_RESULTS)) {
      const expected = await client.sync(text);
      const { status, json } = await query(port, text);
      assert.equal(status, 200, text);
      assert.deepEqual(json, expected, text);
    }
    assert.deepEqual((await query(port, 'dict longs')).json, { a: 1, b: 2, c: 3 });
    assert.deepEqual((await query(port, 'dict mixed')).json, { n: 42, s: 'sym', f: 1.5 });
    await client.close();
  } finally {
    await env.stop();
    upstream.close();
  }
});

integrationTest('http gzip decompresses to same JSON', async (env) => {
  const port = await startWithHttp(env);
  for (const text of ['til 10', '.standin.table 2000', 'til 300000', "'nope"]) {
    const path = `/q?query=${encodeURIComponent(text)}`;
    const plain = await request(port, path, { headers: { 'Accept-Encoding': 'identity' } });
    const gzipped = await request(port, path, { headers: { 'Accept-Encoding': 'deflate, gzip;q=0.8' } });

    assert.equal(gzipped.status, plain.status, text);
    assert.equal(gzipped.headers['content-encoding'], 'gzip', text);
    assert.equal(gzipped.headers.vary, 'Accept-Encoding', text);
    assert.equal(plain.headers['content-encoding'], undefined, text);
    const unzipped = zlib.gunzipSync(gzipped.body);
    assert.ok(gzipped.body.length < unzipped.length || unzipped.length < 100, `${text}: gzip made it smaller`);
    assert.deepEqual(JSON.parse(unzipped.toString('utf8')), JSON.parse(plain.body.toString('utf8')), text);
  }

  const refused = await request(port, '/q?query=til%203', { headers: { 'Accept-Encoding': 'gzip;q=0' } });
  assert.equal(refused.headers['content-encoding'], undefined, 'gzip;q=0 is not gzipped');
  assert.deepEqual(JSON.parse(refused.body.toString('utf8')), [0, 1, 2]);
});

integrationTest('http large result arrives chunked', async (env) => {
  const port = await startWithHttp(env);
  const response = await request(port, '/q?query=til%202000000', { headers: { 'Accept-Encoding': 'identity' } });

  assert.equal(response.status, 200);
  assert.equal(response.headers['transfer-encoding'], 'chunked');
  assert.equal(response.headers['content-length'], undefined);
  const values = JSON.parse(response.body.toString('utf8'));
  assert.equal(values.length, 2000000);
  assert.equal(values[0], 0);
  assert.equal(values[1999999], 1999999);
  assert.ok(values.every((value, i) => value === i), 'every item in order');

  // The small result of the same connection setup keeps a Content-Length.
  const small = await request(port, '/q?query=til%205', { headers: { 'Accept-Encoding': 'identity' } });
  assert.equal(small.headers['content-length'], String(small.body.length));
});

integrationTest('http large results equal node-q results', async (env) => {
  const port = await startWithHttp(env);
  const client = await nodeq.connect(env.qmux.port);

  const longs = await client.sync('til 2000000', 30000);
  const table = await client.sync('.standin.table 200000', 30000);
  await client.close();
  assert.equal(longs.length, 2000000);
  assert.equal(table.length, 200000);

  for (const encoding of ['identity', 'gzip']) {
    const longsReply = await request(port, `/q?query=${encodeURIComponent('til 2000000')}`,
      { headers: { 'Accept-Encoding': encoding } });
    assert.equal(longsReply.status, 200, encoding);
    assert.equal(longsReply.headers['transfer-encoding'], 'chunked', encoding);
    const longsBody = encoding === 'gzip' ? zlib.gunzipSync(longsReply.body) : longsReply.body;
    const values = JSON.parse(longsBody.toString('utf8'));
    assert.equal(values.length, longs.length, `${encoding}: item count`);
    const firstLongDifference = values.findIndex((value, i) => value !== longs[i]);
    assert.equal(firstLongDifference, -1, `${encoding}: first item that differs from node-q's`);

    const tableReply = await request(port, `/q?query=${encodeURIComponent('.standin.table 200000')}`,
      { headers: { 'Accept-Encoding': encoding } });
    assert.equal(tableReply.status, 200, encoding);
    const tableBody = encoding === 'gzip' ? zlib.gunzipSync(tableReply.body) : tableReply.body;
    const rows = JSON.parse(tableBody.toString('utf8'));
    assert.equal(rows.length, table.length, `${encoding}: row count`);
    const firstRowDifference = rows.findIndex((row, i) => row.id !== table[i].id || row.sym !== table[i].sym ||
      row.price !== table[i].price || row.size !== table[i].size || !sameInstant(row.time, table[i].time));
    assert.equal(firstRowDifference, -1, `${encoding}: first row that differs from node-q's`);
  }
});

// Reads the resident set size of a process from /proc, in bytes.
function residentBytes(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/^VmRSS:\s+(\d+) kB$/m)[1]) * 1024;
}

// GETs path without compression, stops reading for pauseMs after the first data, then reads
// the rest. Resolves with { status, body }.
function requestWithPause(port, path, pauseMs) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, path, headers: { 'Accept-Encoding': 'identity' }, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => {
        if (chunks.length === 0) {
          res.pause();
          setTimeout(() => res.resume(), pauseMs);
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

integrationTest('http slow reader keeps memory bounded', { skip: upstreamIsQ() && 'uses a scripted upstream' }, async (env, t) => {
  // About 60 MB of JSON from a 60 KB message.
  const wide = wideTable(1000, 60000);
  const upstream = await startScriptedUpstream({ 'wide table': wide.body });
  try {
    // AddressSanitizer's quarantine keeps freed memory resident, up to 16 MiB in these tests,
    // which would count every chunk ever sent; 1 MiB keeps it out of the measurement.
    const port = await startWithHttp(env, {
      upstreamPort: upstream.address().port,
      processEnv: { ASAN_OPTIONS: 'quarantine_size_mb=1:detect_leaks=1' },
    });
    assert.equal((await query(port, '::')).status, 200, 'a first query, so that the baseline includes its memory');
    const baseline = residentBytes(env.qmux.pid);

    let peak = baseline;
    const sampler = setInterval(() => { peak = Math.max(peak, residentBytes(env.qmux.pid)); }, 20);
    let response;
    try {
      response = await requestWithPause(port, `/q?query=${encodeURIComponent('wide table')}`, 1500);
    } finally {
      clearInterval(sampler);
    }

    assert.equal(response.status, 200);
    assert.equal(response.body.length, wide.json.length, 'the whole text arrived');
    assert.ok(response.body.equals(Buffer.from(wide.json)), 'the text is the expected JSON');
    const growth = peak - baseline;
    t.diagnostic(`RSS grew by ${(growth / 1048576).toFixed(1)} MiB`);
    assert.ok(growth < wide.json.length / 4,
      `RSS grew by ${(growth / 1048576).toFixed(1)} MiB while the client read ` +
      `${(wide.json.length / 1048576).toFixed(1)} MiB of JSON slowly`);
  } finally {
    await env.stop();
    upstream.close();
  }
});

// Sends GET /q for text with Accept-Encoding: gzip, and closes the connection as soon as
// the request is written. Resolves when it is closed.
function abandonedRequest(port, text) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST, () => {
      socket.write(`GET /q?query=${encodeURIComponent(text)} HTTP/1.1\r\nHost: ${HOST}\r\n` +
        'Accept-Encoding: gzip\r\n\r\n', () => socket.destroy());
    });
    socket.on('close', resolve);
    socket.on('error', reject);
  });
}

integrationTest('http abandoned replies do not block IPC', async (env, t) => {
  const abandoned = 4;
  const port = await startWithHttp(env, { poolSize: abandoned + 1 });
  const client = await nodeq.connect(env.qmux.port);
  await client.sync('til 3');

  // Each response is 24 MB of longs, 23 MB of JSON to gzip for a client that is gone.
  await Promise.all(Array.from({ length: abandoned }, () => abandonedRequest(port, 'til 3000000')));
  const closedClients = () => (env.qmux.stderr.match(/client \d+ http 127\.0\.0\.1:\d+: closed:/g) || []).length;
  const latencies = [];
  const started = Date.now();
  while (closedClients() < abandoned || Date.now() - started < 1000) {
    assert.ok(Date.now() - started < 30000, `${closedClients()} of ${abandoned} HTTP queries answered within 30 s`);
    const sent = process.hrtime.bigint();
    assert.deepEqual(await client.sync('til 3'), [0, 1, 2]);
    latencies.push(Number(process.hrtime.bigint() - sent) / 1e6);
    await sleep(20);
  }
  await client.close();

  const slowest = Math.max(...latencies);
  t.diagnostic(`slowest of ${latencies.length} IPC queries: ${slowest.toFixed(0)} ms`);
  assert.ok(slowest < 500, `the slowest of ${latencies.length} IPC queries took ${slowest.toFixed(0)} ms ` +
    'while qmux handled the abandoned HTTP replies');
});

// ---- errors ----

integrationTest('http kdb+ errors are 400', async (env) => {
  const port = await startWithHttp(env);

  assert.deepEqual(await query(port, "'oops"), { status: 400, type: 'application/json', json: { error: 'oops' } });
  assert.deepEqual((await query(port, '`a+1')).json, { error: 'type' });
  assert.equal((await query(port, '`a+1')).status, 400);
  assert.deepEqual((await query(port, 'undefinedname')).json, { error: 'undefinedname' });
});

integrationTest('http malformed requests are 400', async (env) => {
  const port = await startWithHttp(env, { http: { max_request_size: 1024 } });

  const missing = await request(port, '/q');
  assert.equal(missing.status, 400);
  assert.match(JSON.parse(missing.body).error, /^missing query/);

  const otherParameter = await request(port, '/q?q=til%203');
  assert.equal(otherParameter.status, 400);
  assert.match(JSON.parse(otherParameter.body).error, /^missing query/);

  const empty = await request(port, '/q', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: '' });
  assert.equal(empty.status, 400);
  assert.match(JSON.parse(empty.body).error, /^empty query/);

  const blank = await request(port, '/q?query=%20%20');
  assert.equal(blank.status, 400);
  assert.match(JSON.parse(blank.body).error, /^empty query/);

  const longText = `${'1+'.repeat(600)}1`;
  const long = await request(port, `/q?query=${encodeURIComponent(longText)}`);
  assert.equal(long.status, 400);
  assert.equal(long.headers['content-type'], 'application/json');
  assert.equal(JSON.parse(long.body).error, 'query of 1201 bytes exceeds http.max_request_size (1024)');

  // libevent itself rejects a body over the limit, before qmux receives the request,
  // with 413 and libevent's HTML page (libevent 2.1 offers no hook to replace it).
  const tooLarge = await request(port, '/q', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: longText });
  assert.equal(tooLarge.status, 413);

  const badAuth = await request(port, '/q?query=1', { headers: { Authorization: 'Bearer x' } });
  assert.equal(badAuth.status, 400);
  assert.match(JSON.parse(badAuth.body).error, /Authorization/);

  const notFound = await request(port, '/query');
  assert.equal(notFound.status, 404);
  assert.equal(JSON.parse(notFound.body).error, 'not found');

  const put = await request(port, '/q', { method: 'PUT', body: 'til 3' });
  assert.equal(put.status, 405);
  assert.equal(put.headers.allow, 'GET, POST');
  assert.equal(JSON.parse(put.body).error, 'method not allowed');

  // HEAD gets no body, so its 405 has only the status and the headers.
  const head = await request(port, '/q?query=til%203', { method: 'HEAD' });
  assert.equal(head.status, 405);
  assert.equal(head.headers.allow, 'GET, POST');
  assert.equal(head.body.length, 0);

  // The query at the limit still runs.
  const atLimit = `${'1+'.repeat(511)}1`;
  assert.equal(atLimit.length, 1023);
  assert.deepEqual(await query(port, atLimit), { status: 200, type: 'application/json', json: 512 });
});

integrationTest('http upstream unavailable is 503', async (env) => {
  const deadPort = await freePort();
  const port = await startWithHttp(env, { upstreamPort: deadPort, waitReady: false, pool: { unavailable_wait_ms: 100 } });
  await waitFor(async () => {
    try {
      return (await request(port, '/health')).status === 503;
    } catch {
      return false;
    }
  }, { timeoutMs: 5000, what: 'the HTTP listener' });
  const { status, json } = await query(port, 'til 3');

  assert.equal(status, 503);
  assert.match(json.error, /^upstream unavailable/);
});

integrationTest('http queue errors are 503', async (env) => {
  const port = await startWithHttp(env, { poolSize: 1, clients: { queue_timeout_ms: 200, max_queue: 1 } });
  const busy = await RawConnection.connect(env.qmux.port);
  await busy.handshake();
  await busy.write(encodeQuery(MSG_SYNC, 'system "sleep 1"'));
  await sleep(100);

  const timedOut = await query(port, 'til 3');
  assert.equal(timedOut.status, 503);
  assert.match(timedOut.json.error, /^queue timeout: waited \d+ ms .*clients\.queue_timeout_ms/);

  // One request waits in the queue, so the next one finds it full.
  const waiting = fetch(`http://${HOST}:${port}/q?query=til%201`);
  await sleep(50);
  const full = await query(port, 'til 3');
  assert.equal(full.status, 503);
  assert.match(full.json.error, /^limit: 1 requests already wait .*clients\.max_queue/);
  assert.equal((await waiting).status, 503, 'the waiting query then times out in the queue');
  busy.destroy();
});

integrationTest('http query timeout is 504', async (env) => {
  const port = await startWithHttp(env, { poolSize: 1, clients: { query_timeout_ms: 200 } });
  const started = Date.now();
  const { status, json } = await query(port, 'system "sleep 1"');

  assert.equal(status, 504);
  assert.match(json.error, /^query timeout: no response within 200 ms \(clients\.query_timeout_ms\)/);
  assert.ok(Date.now() - started < 900, 'answered before the query finished');
});

integrationTest('http request timeout is 504', async (env) => {
  const port = await startWithHttp(env, { poolSize: 1, http: { request_timeout_ms: 300 } });
  const started = Date.now();
  const { status, json } = await query(port, 'system "sleep 1"');
  const elapsed = Date.now() - started;

  assert.equal(status, 504);
  assert.equal(json.error, 'request timeout: no response within 300 ms (http.request_timeout_ms)');
  assert.ok(elapsed >= 250, `answered after ${elapsed} ms, not before the timeout`);
  assert.ok(elapsed < 900, `answered after ${elapsed} ms, before the query finished`);

  // The abandoned client is closed; its upstream connection serves the next query once
  // the stand-in has finished the sleep.
  await sleep(1000 - elapsed);
  assert.deepEqual((await query(port, 'til 2')).json, [0, 1]);
  await waitFor(async () => (await metrics(port)).qmux_clients === 0, { what: 'qmux_clients 0' });
});

integrationTest('http response over the limit is 502', async (env) => {
  const port = await startWithHttp(env, { http: { max_response_size: 4096 } });
  const { status, json } = await query(port, 'til 1000');

  assert.equal(status, 502);
  assert.equal(json.error, 'response of 8014 bytes exceeds http.max_response_size (4096)');
  assert.deepEqual((await query(port, 'til 100')).json.length, 100, 'a smaller result still passes');
});

integrationTest('http upstream connection lost is 502', { skip: upstreamIsQ() && 'the stand-in exits mid-request' }, async (env) => {
  const port = await startWithHttp(env, { poolSize: 1 });
  const { status, json } = await query(port, '.standin.exit 0');

  assert.equal(status, 502);
  assert.match(json.error, /^upstream connection lost/);
});

// ---- the shared queue and the attached clients ----

integrationTest('http query waits in the shared queue', async (env) => {
  const port = await startWithHttp(env, { poolSize: 1 });
  const before = await metrics(port);
  const client = await nodeq.connect(env.qmux.port);

  const order = [];
  const slow = client.sync('system "sleep 0.5"; 7').then((value) => { order.push('ipc'); return value; });
  await sleep(100);
  const started = Date.now();
  const fast = query(port, 'til 3').then((value) => { order.push('http'); return value; });
  const [slowValue, fastResult] = await Promise.all([slow, fast]);
  const waited = Date.now() - started;

  assert.equal(slowValue, 7);
  assert.deepEqual(fastResult.json, [0, 1, 2]);
  assert.deepEqual(order, ['ipc', 'http'], 'the HTTP query ran after the IPC one');
  assert.ok(waited >= 300, `the HTTP query waited ${waited} ms behind the IPC one`);
  await client.close();

  const after = await metrics(port);
  assert.equal(after.qmux_requests_total - before.qmux_requests_total, 2, 'both requests counted');
  assert.ok(after.qmux_queue_wait_seconds_sum - before.qmux_queue_wait_seconds_sum >= 0.3, 'the queue wait counted');
  await waitFor(() => (/client \d+ http 127\.0\.0\.1:\d+: closed: disconnected \(user http, /).test(env.qmux.stderr), { what: 'the log line' });
});

integrationTest('http clients close after each query', async (env) => {
  const port = await startWithHttp(env);
  const basic = `Basic ${Buffer.from('alice:secret-not-checked').toString('base64')}`;
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
    query(port, `til ${i + 1}`, i % 2 ? { Authorization: basic } : {})));

  results.forEach((result, i) => assert.equal(result.json.length, i + 1));
  await waitFor(async () => (await metrics(port)).qmux_clients === 0, { what: 'qmux_clients 0' });
  await waitFor(() => (/closed: disconnected \(user alice, /).test(env.qmux.stderr), { what: 'the log line' });
  assert.doesNotMatch(env.qmux.stderr, /secret-not-checked/, 'the password is not logged');
});

integrationTest('http client gone before the response', async (env) => {
  const port = await startWithHttp(env, { poolSize: 1 });
  const controller = new AbortController();
  const abandoned = fetch(`http://${HOST}:${port}/q?query=${encodeURIComponent('system "sleep 0.3"; til 100000')}`,
    { signal: controller.signal }).catch((error) => error);
  await sleep(100);
  controller.abort();
  assert.equal((await abandoned).name, 'AbortError');

  await sleep(400);
  assert.deepEqual((await query(port, 'til 4')).json, [0, 1, 2, 3]);
  await waitFor(async () => (await metrics(port)).qmux_clients === 0, { what: 'qmux_clients 0' });
});

integrationTest('http shutdown with a query waiting', async (env) => {
  const port = await startWithHttp(env, { poolSize: 1 });
  const waiting = query(port, 'system "sleep 0.3"; 1').catch((error) => error);
  await sleep(100);

  assert.equal(await env.qmux.stop(5000), true, 'qmux exits within the shutdown timeout');
  assert.equal(env.qmux.exitCode, 0);
  await waiting;
});

integrationTest('http client killed by admin is 502', async (env) => {
  const adminPort = await freePort();
  const port = await startWithHttp(env, { poolSize: 1, admin: { port: adminPort, users: ['ops'] } });
  const waiting = query(port, 'system "sleep 0.5"; 1');
  await sleep(100);

  const admin = await nodeq.connect(adminPort, { user: 'ops' });
  const clients = await admin.sync('show clients');
  const attached = clients.find((row) => /^http 127\.0\.0\.1:\d+$/.test(row.address));
  assert.ok(attached, `an attached client among ${JSON.stringify(clients.map((row) => row.address))}`);
  await admin.sync(`kill client ${attached.id}`);
  await admin.close();

  const { status, json } = await waiting;
  assert.equal(status, 502);
  assert.match(json.error, /^qmux closed the query's connection before the response was complete/);
});

integrationTest('Basic credentials without colon', async (env) => {
  const port = await startWithHttp(env);
  // 256 bytes decoded, no colon: the user name is cut, nothing is read past the buffer.
  const credentials = Buffer.alloc(256, 'A').toString('base64');
  const result = await query(port, '2+3', { Authorization: `Basic ${credentials}` });
  assert.equal(result.status, 200);
  assert.deepEqual(result.json, 5);
});

integrationTest('SIGTERM lets an HTTP reply finish', async (env) => {
  const port = await startWithHttp(env, { poolSize: 1 });
  // About 8 MB of JSON, read at the pace node reads; the signal comes while it is on its way.
  const pending = request(port, `/q?query=${encodeURIComponent('til 1000000')}`,
    { headers: { 'Accept-Encoding': 'identity' } });
  await sleep(50);
  env.qmux.stopRequested = true;
  process.kill(env.qmux.pid, 'SIGTERM');
  const response = await pending;
  assert.equal(response.status, 200);
  const values = JSON.parse(response.body.toString('utf8'));
  assert.equal(values.length, 1000000, 'the whole result arrived');
  assert.equal(values[999999], 999999);
  await waitFor(() => !env.qmux.running, { timeoutMs: 5000, what: 'qmux to exit' });
  assert.equal(env.qmux.exitCode, 0);
});

// GETs path without compression and calls onData(req, res) with the first data of the reply.
function requestFirstData(port, path, onData) {
  const req = http.request({ host: HOST, port, path, headers: { 'Accept-Encoding': 'identity' }, agent: false }, (res) => {
    res.once('data', () => onData(req, res));
  });
  req.on('error', () => {});
  req.end();
}

integrationTest('SIGTERM after a dropped reply', async (env) => {
  const port = await startWithHttp(env, { poolSize: 1 });
  // The client drops the connection after the first data of about 23 MB of JSON.
  requestFirstData(port, `/q?query=${encodeURIComponent('til 3000000')}`, (req) => req.destroy());
  await env.qmux.waitForLog(/connection closed after \d+ bytes of JSON; rendering stopped/, 10000);

  env.qmux.stopRequested = true;
  process.kill(env.qmux.pid, 'SIGTERM');
  await waitFor(() => !env.qmux.running, { timeoutMs: 5000, what: 'qmux to exit' });
  assert.equal(env.qmux.exitCode, 0);
  assert.doesNotMatch(env.qmux.stderr, /HTTP replies still unwritten/,
    'the dropped reply left the count, so the shutdown did not wait for it');
});

integrationTest('SIGTERM with a stalled HTTP reader', async (env) => {
  const port = await startWithHttp(env, { poolSize: 1 });
  // The client reads the first data of about 23 MB of JSON and then nothing.
  let stalled;
  const firstData = new Promise((resolve) => {
    requestFirstData(port, `/q?query=${encodeURIComponent('til 3000000')}`, (req, res) => {
      res.pause();
      stalled = req;
      resolve();
    });
  });
  await firstData;

  env.qmux.stopRequested = true;
  process.kill(env.qmux.pid, 'SIGTERM');
  await waitFor(() => !env.qmux.running, { timeoutMs: 8000, what: 'qmux to exit' });
  stalled.destroy();
  assert.equal(env.qmux.exitCode, 0);
  assert.match(env.qmux.stderr, /1 HTTP replies still unwritten after 2000 ms; closing them/);
});

integrationTest('HTTP connections past the fd limit pause accepting', async (env) => {
  const port = await startWithHttp(env, { openFiles: 64 });
  const sockets = [];

  // Each connection keeps a descriptor open with a request that never ends.
  for (let i = 0; i < 80; i++) {
    const socket = net.connect(port, HOST);
    socket.on('error', () => {});
    socket.write('GET /q?query=1 HTTP/1.1\r\nX-a: ');
    sockets.push(socket);
  }
  await waitFor(() => /HTTP accept failed: Too many open files/.test(env.qmux.stderr),
    { what: 'the accept failure line' });
  await sleep(1000);
  const failures = (env.qmux.stderr.match(/accept failed|Error from accept/g) || []).length;
  assert.ok(failures <= 3, `accept failures are logged at most once per 10 s, got ${failures} lines`);

  for (const socket of sockets) socket.destroy();
  await waitFor(async () => (await request(port, '/health').catch(() => ({ status: 0 }))).status === 200,
    { what: '/health to answer once the connections are gone' });
});

integrationTest('broken URL escapes are 400', async (env) => {
  const port = await startWithHttp(env);
  for (const query of ['til%003', 'til%zz3', 'til%4', 'til%']) {
    const response = await request(port, `/q?query=${query}`);
    assert.equal(response.status, 400, `query=${query}`);
    assert.match(JSON.parse(response.body).error, /^invalid URL encoding/, `query=${query}`);
  }
  const plus = await request(port, '/q?query=1%2B2');
  assert.equal(plus.status, 200, 'a valid escape still works');
  assert.equal(JSON.parse(plus.body), 3);
});
