'use strict';
// Async-then-sync ordering: a client's async "v:K" followed by its sync "v" must return K
// with any pool size, because qmux pins the client to the upstream connection that got
// the async until the next sync completes there.

const assert = require('node:assert/strict');
const { describeRun, integrationTest, parseLoadSummary, runClient } = require('./lib/harness');
const nodeq = require('./lib/nodeq');

const ITERATIONS = 300;

for (const poolSize of [1, 4, 16]) {
  integrationTest(`async-sync order, pool size ${poolSize}`, async (env) => {
    await env.startUpstream();
    await env.startQmux({ poolSize });

    // The C clients and the node-q clients run at the same time on one qmux.
    const load = runClient(['load', '-p', String(env.qmux.port), '-n', '8', '-r', String(ITERATIONS),
      '--mode', 'async-sync', '--timeout-ms', '10000'], { timeoutMs: 60000 });

    const nodeClients = await Promise.all(Array.from({ length: 4 }, () => nodeq.connect(env.qmux.port)));
    const wrong = [];
    await Promise.all(nodeClients.map(async (client, c) => {
      const variable = `nq${c}`;
      for (let i = 0; i < ITERATIONS; i++) {
        const key = c * 1000000 + i;
        await client.async(`${variable}:${key}`);
        const value = await client.sync(variable);
        if (value !== key) wrong.push(`node-q client ${c} iteration ${i}: expected ${key}, received ${value}`);
      }
    }));
    await Promise.all(nodeClients.map((client) => client.close()));

    const result = await load;
    const summary = parseLoadSummary(result.stdout);
    assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} wrong node-q answers`);
    assert.ok(summary, `summary line missing\n${describeRun(result)}`);
    assert.equal(summary.wrong, 0, result.stdout + result.stderr);
    assert.equal(summary.ok, 8 * ITERATIONS, result.stdout + result.stderr);
    assert.equal(result.code, 0, describeRun(result));
  });
}
