'use strict';
// build/qmux-client against the upstream directly (no qmux), so failures here point at
// the test client or the stand-in rather than at qmux.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const {
  HOST, REPO_DIR, UPSTREAM_PASSWORD, UPSTREAM_USER, describeRun, freePort, integrationTest,
  parseLoadSummary, runClient, upstreamIsQ,
} = require('./lib/harness');

const LOGIN = `${UPSTREAM_USER}:${UPSTREAM_PASSWORD}`;

// Each expression with the exact line qmux-client must print for it.
const FORMAT_CASES = [
  ['2+3', '5'],
  ['til 10', '0 1 2 3 4 5 6 7 8 9'],
  ['til 1', ',0'],
  ['til 0', '`long$()'],
  ['count til 7', '7'],
  ['10-3*2', '4'],
  ['"hello"', '"hello"'],
  ['`abc', '`abc'],
  ['1+`a', "'type"],
  ['.standin.table 1000', 'table `id`sym`price`size`time, 1000 rows'],
];

integrationTest('qmux-client prints common results', async (env) => {
  await env.startUpstream();
  const expressions = FORMAT_CASES.map(([expression]) => expression);
  const result = await runClient(['-p', String(env.upstream.port), '-u', LOGIN, ...expressions]);

  const lines = result.stdout.split('\n');
  for (const [index, [expression, expected]] of FORMAT_CASES.entries()) {
    assert.equal(lines[index], expected, `output for ${expression}\n${describeRun(result)}`);
  }
  assert.equal(result.code, 1, `exit status 1 because one response is an error\n${describeRun(result)}`);
});

integrationTest('qmux-client exits 0 without errors', async (env) => {
  await env.startUpstream();
  const result = await runClient(['-p', String(env.upstream.port), '-u', LOGIN, '2+3', 'til 3']);

  assert.equal(result.code, 0, describeRun(result));
  assert.equal(result.stdout, '5\n0 1 2\n');
});

integrationTest('qmux-client decodes compressed responses', async (env) => {
  if (upstreamIsQ()) return; // q never compresses toward a loopback peer.
  await env.startUpstream({ args: ['--compress', 'always'] });
  const result = await runClient(['-p', String(env.upstream.port), '-u', LOGIN, 'til 100000']);

  assert.equal(result.code, 0, describeRun(result));
  const values = result.stdout.trim().split(' ');
  assert.equal(values.length, 100000);
  values.forEach((value, index) => {
    if (value !== String(index)) assert.fail(`item ${index} is ${value}`);
  });
});

integrationTest('qmux-client reports rejected login as access', async (env) => {
  await env.startUpstream();
  const result = await runClient(['-p', String(env.upstream.port), '-u', `${UPSTREAM_USER}:wrong`, '2+3']);

  assert.equal(result.code, 2, describeRun(result));
  assert.match(result.stderr, /'access/);
  assert.equal(result.stdout, '');
});

integrationTest('qmux-client reports refused connect', async () => {
  const port = await freePort();
  const result = await runClient(['-p', String(port), '2+3']);

  assert.equal(result.code, 2, describeRun(result));
  assert.match(result.stderr, /connect to 127\.0\.0\.1:\d+ failed: Connection refused/);
});

integrationTest('qmux-client load passes against upstream', async (env) => {
  await env.startUpstream();
  for (const mode of ['sync', 'async-sync']) {
    const result = await runClient(['load', '-p', String(env.upstream.port), '-u', LOGIN,
      '-n', '50', '-r', '40', '--mode', mode, '--timeout-ms', '5000']);
    const summary = parseLoadSummary(result.stdout);

    assert.equal(result.code, 0, `${mode}: ${describeRun(result)}`);
    assert.equal(summary.ok, 2000, `${mode}: ${result.stdout}`);
    assert.equal(summary.wrong, 0);
    assert.ok(summary.p50_us > 0, `p50 latency is positive: ${result.stdout}`);
    assert.ok(summary.p99_us >= summary.p50_us, `p99 is at least p50: ${result.stdout}`);
    assert.ok(summary.max_us >= summary.p99_us, `max is at least p99: ${result.stdout}`);
  }
});

// A fake server that returns K for the query "K+0", except K+1 for one request, so the
// test shows that the load checker notices a wrong result.
function startWrongAnswerServer(wrongKey) {
  const server = net.createServer((socket) => {
    let buffer = Buffer.alloc(0);
    let loggedIn = false;
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!loggedIn) {
        const nul = buffer.indexOf(0);
        if (nul < 0) return;
        buffer = buffer.subarray(nul + 1);
        loggedIn = true;
        socket.write(Buffer.from([3]));
      }
      while (buffer.length >= 8 && buffer.length >= buffer.readUInt32LE(4)) {
        const length = buffer.readUInt32LE(4);
        const text = buffer.subarray(14, length).toString();
        buffer = buffer.subarray(length);
        let key = BigInt(text.replace('+0', ''));
        if (key === wrongKey) key += 1n;
        const response = Buffer.alloc(17);
        response.writeUInt8(1, 0);
        response.writeUInt8(2, 1);
        response.writeUInt32LE(17, 4);
        response.writeInt8(-7, 8);
        response.writeBigInt64LE(key, 9);
        socket.write(response);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, HOST, () => resolve(server)));
}

integrationTest('qmux-client load detects wrong answer', async () => {
  const wrongKey = 3n * 1000000n + 7n;
  const server = await startWrongAnswerServer(wrongKey);
  try {
    const result = await runClient(['load', '-p', String(server.address().port), '-n', '5', '-r', '10']);
    const summary = parseLoadSummary(result.stdout);

    assert.equal(result.code, 1, describeRun(result));
    assert.equal(summary.wrong, 1, result.stdout);
    assert.equal(summary.ok, 49, result.stdout);
    assert.match(result.stderr, /client 3 request 7: expected 3000007, received 3000008/);
  } finally {
    server.close();
  }
});

const COMPRESSED_SAMPLES = path.join(REPO_DIR, '..', 'shared', 'testdata', 'compressed-samples.txt');

// Returns the number of items that one qmux-client output line shows.
function countShownItems(line) {
  let match = line.match(/^<\w+ vector, count (\d+),/);
  if (match) return Number(match[1]);
  match = line.match(/^table .*, (\d+) rows$/);
  if (match) return Number(match[1]);
  if (/^[01]+b$/.test(line)) return line.length - 1;
  if (line.startsWith('0x')) return (line.length - 2) / 2;
  if (line.startsWith('`')) return line.split('`').length - 1;
  return line.split(' ').length;
}

// A server that sends the index-th kdb+ compressed sample as the response to the query
// "index", so qmux-client has to decompress messages that kdb+ itself produced.
function startSampleServer(samples) {
  const server = net.createServer((socket) => {
    let buffer = Buffer.alloc(0);
    let loggedIn = false;
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!loggedIn) {
        const nul = buffer.indexOf(0);
        if (nul < 0) return;
        buffer = buffer.subarray(nul + 1);
        loggedIn = true;
        socket.write(Buffer.from([3]));
      }
      while (buffer.length >= 8 && buffer.length >= buffer.readUInt32LE(4)) {
        const length = buffer.readUInt32LE(4);
        const index = Number(buffer.subarray(14, length).toString());
        buffer = buffer.subarray(length);
        const message = Buffer.from(samples[index].hex, 'hex');
        message[1] = 2;
        socket.write(message);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, HOST, () => resolve(server)));
}

integrationTest('qmux-client decompresses kdb+ samples', async (env, t) => {
  if (!fs.existsSync(COMPRESSED_SAMPLES)) {
    t.skip(`${COMPRESSED_SAMPLES} is absent`);
    return;
  }
  const samples = fs.readFileSync(COMPRESSED_SAMPLES, 'utf8').trim().split('\n').map((line) => {
    const [shape, count, hex] = line.split('\t');
    return { shape, count: Number(count), hex };
  });
  const server = await startSampleServer(samples);
  try {
    const indexes = samples.map((_, index) => String(index));
    const result = await runClient(['-p', String(server.address().port), ...indexes]);
    assert.equal(result.code, 0, describeRun(result));

    const lines = result.stdout.trimEnd().split('\n');
    assert.equal(lines.length, samples.length);
    samples.forEach((sample, index) => {
      assert.equal(countShownItems(lines[index]), sample.count, `item count of the ${sample.shape} sample`);
    });
  } finally {
    server.close();
  }
});
