'use strict';
// A client that reads slowly: qmux stops reading the upstream at
// clients.output_high_watermark and must resume below output_low_watermark, so the
// whole response still arrives.

const assert = require('node:assert/strict');
const { integrationTest, sleep, waitFor } = require('./lib/harness');
const { MSG_SYNC, RawConnection, encodeQuery } = require('./lib/rawipc');

integrationTest('slow reader gets whole response', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1, highWatermark: 65536, lowWatermark: 16384 });

  const raw = await RawConnection.connect(env.qmux.port);
  await raw.handshake();
  const count = 2000000;
  await raw.write(encodeQuery(MSG_SYNC, `til ${count}`));

  // Read in pauses, so qmux's output buffer fills past the high watermark many times.
  const header = await raw.read(8, 5000);
  const length = header.readUInt32LE(4);
  assert.equal(length, 8 + 6 + 8 * count, 'response length of a long vector');
  let received = 8;
  const deadline = Date.now() + 15000;
  while (received < length) {
    raw.socket.pause();
    await sleep(20);
    raw.socket.resume();
    const chunk = Math.min(length - received, raw.buffered || 1);
    const bytes = await raw.read(chunk, Math.max(1, deadline - Date.now()));
    received += bytes.length;
  }
  assert.equal(received, length);

  // The upstream connection must be usable again after the slow response.
  assert.deepEqual(await raw.query('2+3'), { long: 5n });
  raw.destroy();
});

// Reads one whole response of `til count` from a connection whose socket was paused.
async function readTilResponse(raw, count) {
  raw.socket.resume();
  const header = await raw.read(8, 10000);
  const length = header.readUInt32LE(4);
  assert.equal(length, 8 + 6 + 8 * count, 'response length of a long vector');
  const body = await raw.read(length - 8, 20000);
  assert.equal(body.readBigInt64LE(length - 16), BigInt(count - 1), 'the last item');
}

integrationTest('max_output_total pauses and resumes', async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 2, highWatermark: 8388608, lowWatermark: 2097152,
    clients: { max_output_total: 1048576 } });

  // Two clients that do not read: together their output passes the 1 MiB total long
  // before either reaches its own 8 MiB watermark.
  const count = 2000000;
  const readers = [];
  for (let i = 0; i < 2; i++) {
    const raw = await RawConnection.connect(env.qmux.port);
    await raw.handshake();
    raw.socket.pause();
    await raw.write(encodeQuery(MSG_SYNC, `til ${count}`));
    readers.push(raw);
  }
  await waitFor(() => /over clients\.max_output_total \(1048576\); upstream reads pause/
    .test(env.qmux.stderr), { timeoutMs: 5000, what: 'the global pause' });

  for (const raw of readers) await readTilResponse(raw, count);
  for (const raw of readers) raw.destroy();
});
