'use strict';
// Promise wrappers around node-q 2.7.0, whose API takes callbacks.

const nodeq = require('node-q');
const { HOST } = require('./harness');

// Connects and handshakes; resolves with a wrapper exposing sync(), async() and close().
// With ca (PEM bytes of the CA to trust), node-q connects with TLS.
function connect(port, { user = 'nodeq', password = 'pass', timeoutMs = 5000, ca } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node-q connect to port ${port} timed out after ${timeoutMs} ms`)), timeoutMs);
    // Without TCP_NODELAY, an async followed by a sync waits for a delayed ACK (about 40 ms).
    const params = { host: HOST, port, user, password, socketNoDelay: true };
    if (ca) Object.assign(params, { useTLS: true, ca });
    nodeq.connect(params, (error, connection) => {
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(new NodeQClient(connection, Boolean(ca)));
    });
  });
}

class NodeQClient {
  constructor(connection, overTls) {
    this.connection = connection;
    this.overTls = overTls;
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
      const done = (error, result) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(result);
      };
      if (!this.overTls) {
        this.connection.k(expression, done);
        return;
      }
      // NOTE: node-q 2.7.0 starts listening for the response event of a request only in
      // the write callback of that request, and over TLS the response can arrive first
      // and be lost. Listening before the write avoids that; it relies on node-q's
      // nextRequestNo and "response:N" event names.
      this.connection.once(`response:${this.connection.nextRequestNo}`, done);
      this.connection.k(expression, () => {});
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
