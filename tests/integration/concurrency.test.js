'use strict';
// Many concurrent clients over a pool of 4 upstream connections: every response must
// reach the client that sent the request.

const assert = require('node:assert/strict');
const { describeRun, integrationTest, parseLoadSummary, runClient } = require('./lib/harness');
const nodeq = require('./lib/nodeq');

integrationTest('1000 C clients over pool of 4', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 4 });

  const clients = 1000;
  const requests = 20;
  const result = await runClient(['load', '-p', String(env.qmux.port), '-n', String(clients),
    '-r', String(requests), '--timeout-ms', '15000'], { timeoutMs: 60000 });
  const summary = parseLoadSummary(result.stdout);

  assert.ok(summary, `summary line missing\n${describeRun(result)}`);
  assert.equal(summary.connect_failures, 0, result.stdout);
  assert.equal(summary.wrong, 0, result.stdout);
  assert.equal(summary.errors, 0, result.stdout);
  assert.equal(summary.timeouts, 0, result.stdout);
  assert.equal(summary.disconnects, 0, result.stdout);
  assert.equal(summary.ok, clients * requests, result.stdout);
  assert.equal(result.code, 0, describeRun(result));
});

integrationTest('200 node-q clients over pool of 4', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 4 });

  const clientCount = 200;
  const requests = 10;
  const clients = await Promise.all(
    Array.from({ length: clientCount }, () => nodeq.connect(env.qmux.port, { timeoutMs: 10000 })));

  const wrong = [];
  await Promise.all(clients.map(async (client, c) => {
    for (let r = 0; r < requests; r++) {
      const key = c * 1000 + r;
      const value = await client.sync(`${key}+0`);
      if (value !== key) wrong.push(`client ${c} request ${r}: expected ${key}, received ${value}`);
    }
  }));
  assert.deepEqual(wrong, []);
  await Promise.all(clients.map((client) => client.close()));
});
