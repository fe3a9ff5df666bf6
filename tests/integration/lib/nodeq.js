'use strict';
// Promise wrappers around node-q 2.7.0, whose API takes callbacks.

const nodeq = require('node-q');
const { HOST } = require('./harness');

// Connects and handshakes; resolves with a wrapper exposing sync(), async() and close().
function connect(port, { user = 'nodeq', password = 'pass', timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node-q connect to port ${port} timed out after ${timeoutMs} ms`)), timeoutMs);
    // Without TCP_NODELAY, an async followed by a sync waits for a delayed ACK (about 40 ms).
    nodeq.connect({ host: HOST, port, user, password, socketNoDelay: true }, (error, connection) => {
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(new NodeQClient(connection));
    });
  });
}

class NodeQClient {
  constructor(connection) {
    this.connection = connection;
    this.closed = false;
    // node-q emits socket errors on the connection; keep them instead of crashing.
    connection.on('error', (error) => { this.lastError = error; });
    connection.on('close', () => { this.closed = true; });
  }

  // Sends a sync query; resolves with the result or rejects with the kdb+ error
  // (an Error whose message is the error text), or on timeout.
  sync(expression, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node-q query ${JSON.stringify(expression)} timed out after ${timeoutMs} ms`)), timeoutMs);
      this.connection.k(expression, (error, result) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(result);
      });
    });
  }

  // Sends the list (fn; args...) as a sync request, as node-q's k(fn, x, ...) does, and
  // resolves with the result or rejects with the kdb+ error.
  call(fn, ...args) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node-q call of ${fn} timed out`)), 10000);
      this.connection.k(fn, ...args, (error, result) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(result);
      });
    });
  }

  // Sends an async message; resolves once it is written to the socket.
  async(expression) {
    return new Promise((resolve) => this.connection.ks(expression, () => resolve()));
  }

  close() {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.connection.close(() => resolve()));
  }
}

module.exports = { connect };
