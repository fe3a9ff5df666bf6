'use strict';
// Compression through qmux: compressed upstream responses reach clients that can read
// them unchanged, and decompressed for clients that agreed capability 0;
// clients.compression makes qmux compress responses itself.

const assert = require('node:assert/strict');
const { integrationTest, upstreamIsQ } = require('./lib/harness');
const { decompress } = require('./lib/compress');
const { MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

const COUNT = 100000;

// Reads one whole message, compressed or not, as raw bytes.
async function readWholeMessage(connection, timeoutMs = 5000) {
  const header = await connection.read(8, timeoutMs);
  const length = header.readUInt8(3) * 2 ** 32 + header.readUInt32LE(4);
  const body = await connection.read(length - 8, timeoutMs);
  return Buffer.concat([header, body]);
}

// Checks that message (uncompressed) is the response to `til COUNT`.
function assertTilResponse(message) {
  assert.equal(message[1], 2, 'a response message');
  assert.equal(message[2], 0, 'uncompressed');
  assert.equal(message.readUInt32LE(4), 8 + 6 + 8 * COUNT, 'length of a long vector');
  assert.equal(message.readInt8(8), 7, 'a long vector');
  assert.equal(message.readUInt32LE(10), COUNT, 'its count');
  for (const index of [0, 1, 777, COUNT - 1]) {
    assert.equal(message.readBigInt64LE(14 + 8 * index), BigInt(index), `item ${index}`);
  }
}

async function queryRaw(port, capability, text) {
  const client = await RawConnection.connect(port);
  if (capability === 0) {
    await client.write(Buffer.from('oldjava:pw\0'));
    assert.equal((await client.read(1))[0], 0, 'capability 0 agreed');
  } else {
    assert.equal(await client.handshake('raw:pw', capability), capability);
  }
  await client.write(encodeQuery(MSG_SYNC, text));
  const message = await readWholeMessage(client);
  client.destroy();
  return message;
}

const compressingUpstream = { skip: upstreamIsQ() && 'q never compresses on loopback' };

integrationTest('compressed response relayed as is', compressingUpstream, async (env) => {
  await env.startUpstream({ args: ['--compress', 'always'] });
  await env.startQmux({ poolSize: 1, clients: { compression: 'never' } });

  const message = await queryRaw(env.qmux.port, 3, `til ${COUNT}`);
  assert.equal(message[2], 1, 'the upstream compressed response arrives compressed');
  assert.ok(message.length < COUNT * 8 / 2, `compressed to ${message.length} bytes`);
  assertTilResponse(decompress(message));
});

integrationTest('capability 0 client gets it decompressed', compressingUpstream, async (env) => {
  await env.startUpstream({ args: ['--compress', 'always'] });
  await env.startQmux({ poolSize: 1 });

  const message = await queryRaw(env.qmux.port, 0, `til ${COUNT}`);
  assertTilResponse(message);
});

integrationTest('decompression over compression_max_size', compressingUpstream, async (env) => {
  await env.startUpstream({ args: ['--compress', 'always'] });
  await env.startQmux({ poolSize: 1, clients: { compression_max_size: 4096 } });

  const message = await queryRaw(env.qmux.port, 0, `til ${COUNT}`);
  assert.equal(message.readInt8(8), -128, 'a kdb+ error');
  const text = message.subarray(9, message.indexOf(0, 9)).toString();
  assert.match(text, /^limit: .*clients\.compression_max_size/);
});

integrationTest('compression always compresses for clients', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, clients: { compression: 'always' } });

  const message = await queryRaw(env.qmux.port, 3, `til ${COUNT}`);
  assert.equal(message[2], 1, 'qmux compressed the response');
  assertTilResponse(decompress(message));

  // A small response stays uncompressed, as kdb+ sends bodies of 2000 bytes and less.
  const small = await queryRaw(env.qmux.port, 3, 'til 10');
  assert.equal(small[2], 0, 'a small response is not compressed');
});

integrationTest('compression auto and never on loopback', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, clients: { compression: 'auto' } });

  // kdb+'s rule never compresses for a client on this host.
  const message = await queryRaw(env.qmux.port, 3, `til ${COUNT}`);
  assertTilResponse(message);
});
