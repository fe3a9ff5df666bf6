'use strict';
// node-q (a third-party kdb+ client) through qmux: the results must match what the
// upstream returns on a direct connection.

const assert = require('node:assert/strict');
const { UPSTREAM_PASSWORD, UPSTREAM_USER, integrationTest } = require('./lib/harness');
const nodeq = require('./lib/nodeq');

async function startProxy(env, qmuxOptions = {}) {
  await env.startUpstream();
  await env.startQmux({ poolSize: 4, ...qmuxOptions });
}

function connectDirect(env) {
  return nodeq.connect(env.upstream.port, { user: UPSTREAM_USER, password: UPSTREAM_PASSWORD });
}

integrationTest('node-q handshake through qmux', async (env) => {
  await startProxy(env);
  const client = await nodeq.connect(env.qmux.port);

  assert.equal(await client.sync('2+3'), 5);
  await client.close();
});

integrationTest('node-q til 10 through qmux', async (env) => {
  await startProxy(env);
  const client = await nodeq.connect(env.qmux.port);

  assert.deepEqual(await client.sync('til 10'), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  await client.close();
});

integrationTest('node-q async then sync reads value', async (env) => {
  await startProxy(env);
  const client = await nodeq.connect(env.qmux.port);

  await client.async('a:1');
  assert.equal(await client.sync('a'), 1);
  await client.async('a:42');
  assert.equal(await client.sync('a'), 42);
  await client.close();
});

integrationTest('node-q kdb+ error through qmux', async (env) => {
  await startProxy(env);
  const client = await nodeq.connect(env.qmux.port);

  await assert.rejects(client.sync('1+`a'), (error) => error.message === 'type');
  await assert.rejects(client.sync("'custom"), (error) => error.message === 'custom');
  // The connection is still usable after an error response.
  assert.equal(await client.sync('2+3'), 5);
  await client.close();
});

integrationTest('node-q large result through qmux', async (env) => {
  await startProxy(env);
  const client = await nodeq.connect(env.qmux.port);
  const count = 5000000;

  const values = await client.sync(`til ${count}`, 30000);
  assert.equal(values.length, count);
  for (let i = 0; i < count; i++) {
    if (values[i] !== i) assert.fail(`item ${i} of til ${count} is ${values[i]}`);
  }
  assert.equal(await client.sync('2+3'), 5, 'connection usable after the large result');
  await client.close();
});

integrationTest('node-q table through qmux', async (env) => {
  await startProxy(env);
  const client = await nodeq.connect(env.qmux.port);

  const rows = await client.sync('.standin.table 1000');
  assert.equal(rows.length, 1000);
  assert.deepEqual(Object.keys(rows[0]), ['id', 'sym', 'price', 'size', 'time']);
  await client.close();
});

// Expressions whose results must be identical through qmux and on a direct connection.
// None starts with a backquote, because node-q 2.7.0 sends such a string as a symbol.
const SAME_ANSWER_EXPRESSIONS = [
  '2+3',
  'til 10',
  'til 100000',
  'count til 12345',
  '"a string"',
  '.standin.table 1000',
  '7*6-1',
];

integrationTest('node-q matches direct connection', async (env) => {
  await startProxy(env);
  const proxied = await nodeq.connect(env.qmux.port);
  const direct = await connectDirect(env);

  for (const expression of SAME_ANSWER_EXPRESSIONS) {
    const expected = await direct.sync(expression);
    const actual = await proxied.sync(expression);
    assert.deepEqual(actual, expected, `result of ${expression}`);
  }
  for (const expression of ['1+`a', "'nope"]) {
    const directError = await direct.sync(expression).then(() => null, (error) => error.message);
    const proxiedError = await proxied.sync(expression).then(() => null, (error) => error.message);
    assert.notEqual(directError, null, `${expression} fails on the direct connection`);
    assert.equal(proxiedError, directError, `error of ${expression}`);
  }
  await proxied.close();
  await direct.close();
});
