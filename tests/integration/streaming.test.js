'use strict';
// Large results stream through qmux: a 400 MB response arrives whole and correct while
// qmux's peak resident memory stays far below the size of the message.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const { HOST, integrationTest } = require('./lib/harness');
const { MSG_SYNC, encodeQuery } = require('./lib/rawipc');

// Peak resident set size of a process in bytes, from /proc/PID/status (VmHWM).
function peakRss(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = status.match(/^VmHWM:\s+(\d+) kB$/m);
  assert.ok(match, `VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

// Sends `til count` and reads the response without keeping it: returns the total length
// and the last long of the vector.
function fetchLongVector(port, count) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST);
    let handshakeDone = false;
    let expected = null;
    let received = 0;
    let tail = Buffer.alloc(0);
    let header = Buffer.alloc(0);

    socket.on('connect', () => socket.write(Buffer.from('streamer:pw\x03\x00', 'binary')));
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed after ${received} of ${expected} bytes`)));
    socket.on('data', (chunk) => {
      if (!handshakeDone) {
        handshakeDone = true;
        chunk = chunk.subarray(1);
        socket.write(encodeQuery(MSG_SYNC, `til ${count}`));
      }
      if (expected === null && chunk.length > 0) {
        header = Buffer.concat([header, chunk]);
        if (header.length < 8) return;
        expected = header.readUInt32LE(4) + header.readUInt8(3) * 2 ** 32;
        chunk = header;
      }
      received += chunk.length;
      tail = Buffer.concat([tail, chunk]).subarray(-8);
      if (expected !== null && received >= expected) {
        socket.removeAllListeners('close');
        socket.destroy();
        resolve({ length: received, last: tail.readBigInt64LE(0) });
      }
    });
  });
}

integrationTest('400 MB response streams with bounded memory', { timeout: 120000 }, async (env) => {
  await env.startUpstream();
  await env.startQmux({ poolSize: 1 });

  const count = 50000000;
  const before = peakRss(env.qmux.pid);
  const result = await fetchLongVector(env.qmux.port, count);
  const after = peakRss(env.qmux.pid);

  assert.equal(result.length, 8 + 6 + 8 * count, 'the whole message arrived');
  assert.equal(result.last, BigInt(count - 1), 'the last item is til count - 1');
  const growth = after - before;
  assert.ok(growth < 64 * 1024 * 1024,
    `qmux peak RSS grew by ${(growth / 1048576).toFixed(1)} MiB while relaying ` +
    `${(result.length / 1048576).toFixed(0)} MiB`);
});
