'use strict';
// kdb+ IPC decompression, written from the algorithm's description (one control byte per
// group of eight tokens; a token is a literal byte or a two-byte reference into a 256-slot
// table of positions keyed by the XOR of a byte pair). The tests use it to check what
// qmux sends, independently of qmux's own C implementation.

function decompress(message) {
  const little = message[0] === 1;
  const flag = message[2];
  if (flag !== 1 && flag !== 2) throw new Error(`byte 2 is ${flag}, not a compressed message`);
  const size = flag === 1
    ? (little ? message.readUInt32LE(8) : message.readUInt32BE(8))
    : Number(little ? message.readBigUInt64LE(8) : message.readBigUInt64BE(8));
  let source = flag === 1 ? 12 : 16;

  const out = Buffer.alloc(size);
  message.copy(out, 0, 0, 4);
  out[2] = 0;
  out[3] = Math.floor(size / 2 ** 32) & 0xff;
  if (little) out.writeUInt32LE(size % 2 ** 32, 4);
  else out.writeUInt32BE(size % 2 ** 32, 4);

  const table = new Array(256).fill(0);
  let write = 8;
  let indexed = 8;
  let mask = 0;
  let control = 0;
  while (write < size) {
    if (mask === 0) {
      control = message[source++];
      mask = 1;
    }
    if (control & mask) {
      const from = table[message[source++]];
      const extra = message[source++];
      out[write] = out[from];
      out[write + 1] = out[from + 1];
      write += 2;
      while (indexed < write - 1) {
        table[out[indexed] ^ out[indexed + 1]] = indexed;
        indexed++;
      }
      for (let i = 0; i < extra; i++) out[write + i] = out[from + 2 + i];
      write += extra;
      indexed = write;
    } else {
      out[write++] = message[source++];
      while (indexed < write - 1) {
        table[out[indexed] ^ out[indexed + 1]] = indexed;
        indexed++;
      }
    }
    mask = (mask << 1) & 0xff;
  }
  return out;
}

module.exports = { decompress };
