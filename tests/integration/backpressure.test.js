'use strict';
// A client that reads slowly: qmux stops reading the upstream at
// clients.output_high_watermark and must resume below output_low_watermark, so the
// whole response still arrives.

const assert = require('node:assert/strict');
const { integrationTest, sleep } = require('./lib/harness');
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
