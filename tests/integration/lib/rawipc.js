'use strict';
// A raw kdb+ IPC connection over net.Socket, for tests that must send exact bytes
// (malformed headers, partial messages) or watch exactly when a connection closes.

const net = require('node:net');
const tls = require('node:tls');
const { HOST } = require('./harness');

const MSG_ASYNC = 0;
const MSG_SYNC = 1;
const MSG_RESPONSE = 2;

// Builds a little-endian, uncompressed message whose body is the char vector text.
function encodeQuery(type, text) {
  const chars = Buffer.from(text, 'utf8');
  const message = Buffer.alloc(8 + 6 + chars.length);
  message.writeUInt8(1, 0);
  message.writeUInt8(type, 1);
  message.writeUInt32LE(message.length, 4);
  message.writeInt8(10, 8);
  message.writeUInt32LE(chars.length, 10);
  chars.copy(message, 14);
  return message;
}

// Builds an 8-byte header with every field given explicitly.
function encodeHeader({ endian = 1, type = MSG_SYNC, compressed = 0, length }) {
  const header = Buffer.alloc(8);
  header.writeUInt8(endian, 0);
  header.writeUInt8(type, 1);
  header.writeUInt8(compressed, 2);
  header.writeUInt8(Math.floor(length / 2 ** 32) & 0xff, 3);
  if (endian === 0) header.writeUInt32BE(length % 2 ** 32, 4);
  else header.writeUInt32LE(length % 2 ** 32, 4);
  return header;
}

// Decodes a response body holding a long atom or an error into { long } or { error }.
function decodeLongOrError(body) {
  const type = body.readInt8(0);
  if (type === -128) return { error: body.subarray(1, body.indexOf(0, 1)).toString() };
  if (type === -7 && body.length === 9) return { long: body.readBigInt64LE(1) };
  return { otherType: type };
}

class RawConnection {
  constructor(socket) {
    this.socket = socket;
    // Received chunks are joined only when read() needs them, so a large response
    // that the test never reads costs no copying.
    this.chunks = [];
    this.buffered = 0;
    this.closed = false;
    this.waiters = [];
    socket.on('data', (chunk) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.wake();
    });
    socket.on('error', (error) => { this.error = error; });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static connect(port, { timeoutMs = 2000 } = {}) {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, HOST);
      const timer = setTimeout(() => { socket.destroy(); reject(new Error(`connect to port ${port} timed out`)); }, timeoutMs);
      socket.once('connect', () => { clearTimeout(timer); resolve(new RawConnection(socket)); });
      socket.once('error', (error) => { clearTimeout(timer); reject(error); });
    });
  }

  // Connects with TLS; tlsOptions go to tls.connect (ca, cert, key, ...). Resolves once
  // the TLS handshake is done, and rejects when it fails, for example on an untrusted
  // certificate.
  static connectTls(port, tlsOptions = {}, { timeoutMs = 3000 } = {}) {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: HOST, port, ...tlsOptions });
      const timer = setTimeout(() => { socket.destroy(); reject(new Error(`TLS connect to port ${port} timed out`)); }, timeoutMs);
      socket.once('secureConnect', () => { clearTimeout(timer); resolve(new RawConnection(socket)); });
      socket.once('error', (error) => { clearTimeout(timer); reject(error); });
    });
  }

  wake() {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  // Resolves when data arrives or the socket closes, or after timeoutMs.
  waitForChange(timeoutMs) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => { clearTimeout(timer); resolve(); });
    });
  }

  write(bytes) {
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (error) => (error ? reject(error) : resolve()));
    });
  }

  // Reads exactly n bytes; rejects on close or after timeoutMs.
  async read(n, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (this.buffered < n) {
      if (this.closed) throw new Error(`connection closed after ${this.buffered} of ${n} expected bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${n} bytes (have ${this.buffered})`);
      await this.waitForChange(left);
    }
    const all = Buffer.concat(this.chunks);
    const bytes = all.subarray(0, n);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered = all.length - n;
    return bytes;
  }

  // Sends the login handshake and resolves with the reply byte.
  async handshake(credentials = 'rawclient:pass', capability = 3, timeoutMs = 3000) {
    await this.write(Buffer.concat([Buffer.from(credentials), Buffer.from([capability, 0])]));
    const reply = await this.read(1, timeoutMs);
    return reply[0];
  }

  // Reads one uncompressed message and returns { type, length, body }.
  async readMessage(timeoutMs = 3000) {
    const header = await this.read(8, timeoutMs);
    const length = header.readUInt8(3) * 2 ** 32 + (header[0] === 1 ? header.readUInt32LE(4) : header.readUInt32BE(4));
    if (header[2] !== 0) throw new Error(`unexpected compressed message of ${length} bytes`);
    const body = await this.read(length - 8, timeoutMs);
    return { type: header[1], length, body };
  }

  // Sends a sync char-vector query and returns the decoded long or error of its response.
  async query(text, timeoutMs = 3000) {
    await this.write(encodeQuery(MSG_SYNC, text));
    const message = await this.readMessage(timeoutMs);
    if (message.type !== MSG_RESPONSE) throw new Error(`expected a response message, received type ${message.type}`);
    return decodeLongOrError(message.body);
  }

  // Resolves true once the peer closed the connection, or false after timeoutMs.
  async waitClosed(timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.waitForChange(left);
      this.chunks = [];
      this.buffered = 0;
    }
    return true;
  }

  get localPort() {
    return this.socket.localPort;
  }

  destroy() {
    this.socket.destroy();
  }
}

module.exports = {
  MSG_ASYNC,
  MSG_RESPONSE,
  MSG_SYNC,
  RawConnection,
  decodeLongOrError,
  encodeHeader,
  encodeQuery,
};
