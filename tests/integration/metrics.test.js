'use strict';
// The HTTP endpoint (http.port): GET /metrics in Prometheus text format 0.0.4, GET /health
// as JSON, and JSON for every other path.

const assert = require('node:assert/strict');
const http = require('node:http');
const { HOST, freePort, integrationTest, waitFor } = require('./lib/harness');
const { RawConnection } = require('./lib/rawipc');

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const SAMPLE_LINE = new RegExp(`^(${NAME})(\\{${LABEL}(?:,${LABEL})*\\})? (-?\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?|\\+Inf|-Inf|NaN)$`);
const HELP_LINE = new RegExp(`^# HELP ${NAME} \\S.*$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

async function startWithHttp(env, options = {}) {
  if (!options.upstreamPort) await env.startUpstream();
  const httpPort = await freePort();
  await env.startQmux({ poolSize: 2, http: { port: httpPort }, ...options });
  return httpPort;
}

async function get(port, path, init = {}) {
  const response = await fetch(`http://${HOST}:${port}${path}`, init);
  return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
}

// Checks every line of a Prometheus text exposition and returns its samples as
// { 'name{labels}': number } plus the declared types.
function parseExposition(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const samples = {};
  const types = {};
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) {
      assert.match(line, HELP_LINE);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const match = line.match(TYPE_LINE);
      assert.ok(match, `invalid TYPE line: ${line}`);
      types[match[1]] = match[2];
      continue;
    }
    const match = line.match(SAMPLE_LINE);
    assert.ok(match, `invalid sample line: ${JSON.stringify(line)}`);
    samples[`${match[1]}${match[2] || ''}`] = Number(match[3]);
  }
  return { samples, types };
}

async function scrape(port) {
  const response = await get(port, '/metrics');
  assert.equal(response.status, 200);
  assert.equal(response.type, 'text/plain; version=0.0.4; charset=utf-8');
  return parseExposition(response.text);
}

// Sends count requests of 20 ms each: qmux times requests with libevent's cached clock,
// which may not advance within a millisecond.
async function queryClient(port, count) {
  const client = await RawConnection.connect(port);
  await client.handshake();
  for (let i = 0; i < count; i++) assert.equal((await client.query('system "sleep 0.02"')).otherType, 0);
  client.destroy();
}

// Returns the buckets of a histogram in order: [{ le, count }].
function buckets(samples, name) {
  return Object.entries(samples)
    .filter(([key]) => key.startsWith(`${name}_bucket{`))
    .map(([key, count]) => ({ le: key.match(/le="([^"]+)"/)[1], count }));
}

integrationTest('metrics parses as Prometheus text', async (env) => {
  const httpPort = await startWithHttp(env);
  const { samples, types } = await scrape(httpPort);

  assert.equal(types.qmux_requests_total, 'counter');
  assert.equal(types.qmux_clients, 'gauge');
  assert.equal(types.qmux_request_duration_seconds, 'histogram');
  assert.equal(types.qmux_queue_wait_seconds, 'histogram');
  for (const [name, type] of Object.entries(types)) {
    if (type === 'counter') assert.match(name, /_total$/, `counter ${name} ends with _total`);
  }
  const upstream = `127.0.0.1:${env.upstream.port}`;
  assert.equal(samples[`qmux_upstream_connections{upstream="${upstream}",state="idle"}`], 2);
  assert.equal(samples[`qmux_upstream_connections{upstream="${upstream}",state="down"}`], 0);
  assert.equal(samples[`qmux_upstream_pool_size{upstream="${upstream}"}`], 2);
  assert.equal(samples[`qmux_upstream_failed_connections{upstream="${upstream}"}`], 0);
  assert.equal(samples.qmux_upstream_connections_logged_in, 2);
  assert.equal(samples.qmux_upstream_logins_total, 2);
});

integrationTest('metrics counters grow with queries', async (env) => {
  const httpPort = await startWithHttp(env);
  const before = (await scrape(httpPort)).samples;

  await queryClient(env.qmux.port, 5);
  const after = (await scrape(httpPort)).samples;
  assert.equal(after.qmux_requests_total - before.qmux_requests_total, 5);
  assert.equal(after.qmux_request_duration_seconds_count - before.qmux_request_duration_seconds_count, 5);
  assert.equal(after.qmux_queue_wait_seconds_count - before.qmux_queue_wait_seconds_count, 5);
  assert.ok(after.qmux_bytes_from_clients_total > before.qmux_bytes_from_clients_total);
  assert.ok(after.qmux_bytes_to_clients_total > before.qmux_bytes_to_clients_total);
  assert.ok(after.qmux_clients_accepted_total > before.qmux_clients_accepted_total);
  const latencySum = after.qmux_request_duration_seconds_sum - before.qmux_request_duration_seconds_sum;
  assert.ok(latencySum >= 0.08, `5 requests of 20 ms add ${latencySum} s to the latency sum`);
});

integrationTest('metrics histogram buckets are cumulative', async (env) => {
  const httpPort = await startWithHttp(env);
  await queryClient(env.qmux.port, 4);
  const { samples } = await scrape(httpPort);

  for (const name of ['qmux_request_duration_seconds', 'qmux_queue_wait_seconds']) {
    const list = buckets(samples, name);
    assert.ok(list.length >= 5, `${name} has buckets`);
    assert.equal(list[list.length - 1].le, '+Inf', `${name} ends with le="+Inf"`);
    assert.equal(list[list.length - 1].count, samples[`${name}_count`], `${name} +Inf equals _count`);
    assert.ok(samples[`${name}_count`] >= 4);
    for (let i = 1; i < list.length; i++) {
      assert.ok(list[i].count >= list[i - 1].count, `${name} buckets are cumulative at le=${list[i].le}`);
      if (list[i].le !== '+Inf') {
        assert.ok(Number(list[i].le) > Number(list[i - 1].le), `${name} le values increase at ${list[i].le}`);
      }
    }
    assert.equal(typeof samples[`${name}_sum`], 'number');
  }
  // Requests of 20 ms fall between le="0.01" and le="0.05".
  const latency = buckets(samples, 'qmux_request_duration_seconds');
  assert.equal(latency.find((bucket) => bucket.le === '0.01').count, 0);
  assert.equal(latency.find((bucket) => bucket.le === '0.05').count, 4);
});

integrationTest('health is 200 with upstreams', async (env) => {
  const httpPort = await startWithHttp(env);
  const response = await get(httpPort, '/health');

  assert.equal(response.status, 200);
  assert.equal(response.type, 'application/json');
  assert.deepEqual(JSON.parse(response.text), { status: 'ok', upstream_connections: 2 });
});

integrationTest('health is 503 without upstreams', async (env) => {
  const deadPort = await freePort();   // nothing listens there
  const httpPort = await startWithHttp(env, { upstreamPort: deadPort });
  const response = await get(httpPort, '/health');

  assert.equal(response.status, 503);
  assert.equal(response.type, 'application/json');
  assert.deepEqual(JSON.parse(response.text), { status: 'unavailable', upstream_connections: 0 });

  const upstream = `127.0.0.1:${deadPort}`;
  const samples = await waitFor(async () => {
    const scraped = (await scrape(httpPort)).samples;
    return scraped[`qmux_upstream_failed_connections{upstream="${upstream}"}`] === 2 ? scraped : null;
  }, { timeoutMs: 5000, what: 'both connections to count as failed' });
  assert.equal(samples[`qmux_upstream_connections{upstream="${upstream}",state="idle"}`], 0);
  assert.ok(samples[`qmux_upstream_reconnect_attempts{upstream="${upstream}"}`] >= 2);
  assert.equal(samples.qmux_upstream_connections_logged_in, 0);
});

integrationTest('unknown paths get JSON errors', async (env) => {
  const httpPort = await startWithHttp(env);

  const missing = await get(httpPort, '/nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.type, 'application/json');
  assert.equal(JSON.parse(missing.text).error, 'not found');

  const nested = await get(httpPort, '/metrics/extra');
  assert.equal(nested.status, 404);
  assert.equal(nested.type, 'application/json');

  // GET / is the query page (docs/http.md), the one HTML reply.
  const root = await get(httpPort, '/');
  assert.equal(root.status, 200);
  assert.equal(root.type, 'text/html; charset=utf-8');

  const post = await get(httpPort, '/metrics', { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.type, 'application/json');
  assert.equal(JSON.parse(post.text).error, 'method not allowed');

  const withQuery = await get(httpPort, '/health?verbose=1');
  assert.equal(withQuery.status, 200, 'the query string does not change the route');
});

// Sends one request through agent and resolves with { status, headers, body }.
function agentRequest(agent, port, path, method) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: HOST, port, path, method, agent }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

integrationTest('HEAD replies have no body', async (env) => {
  const httpPort = await startWithHttp(env);
  // One connection for all requests, so a body sent after a HEAD reply would be read as the
  // start of the next reply.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (const path of ['/', '/health', '/metrics']) {
      const head = await agentRequest(agent, httpPort, path, 'HEAD');
      const get = await agentRequest(agent, httpPort, path, 'GET');
      assert.equal(head.status, 200, path);
      assert.equal(head.body.length, 0, `${path}: HEAD reply without a body`);
      assert.equal(head.headers['content-type'], get.headers['content-type'], path);
      assert.ok(Number(head.headers['content-length']) > 0, `${path}: the length of the GET body`);
    }
    const page = await agentRequest(agent, httpPort, '/', 'HEAD');
    const pageBody = await agentRequest(agent, httpPort, '/', 'GET');
    assert.equal(page.headers['content-length'], String(pageBody.body.length));
  } finally {
    agent.destroy();
  }
});
