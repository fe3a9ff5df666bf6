#!/usr/bin/env python3
"""Write the seed corpora of the libFuzzer targets into tests/fuzz/corpus/<target>/.

Run from anywhere: python3 tests/fuzz/make_corpus.py. Existing seed files with the same
names are overwritten; other files in the folders are left alone.

The seeds are small valid messages of every kind the targets read, plus a few edge cases.
Compressed seeds come from compress() below, a transcription of kdb+'s IPC compression
(groups of a control byte and 8 literal or back-reference tokens, with a 256-slot table
keyed by the XOR of a byte pair).
"""
import os
import struct

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def message(body, msg_type=2, little_endian=True):
    """Returns body behind an uncompressed 8-byte IPC header."""
    length = 8 + len(body)
    if little_endian:
        return bytes([1, msg_type, 0, length >> 32]) + struct.pack("<I", length & 0xFFFFFFFF) + body
    return bytes([0, msg_type, 0, length >> 32]) + struct.pack(">I", length & 0xFFFFFFFF) + body


def vector(type_byte, fmt, items, attribute=0, little_endian=True):
    order = "<" if little_endian else ">"
    packed = b"".join(struct.pack(order + fmt, item) for item in items)
    return bytes([type_byte, attribute]) + struct.pack(order + "I", len(items)) + packed


def symbols(names):
    return bytes([11, 0]) + struct.pack("<I", len(names)) + b"".join(n + b"\0" for n in names)


def general_list(items):
    return bytes([0, 0]) + struct.pack("<I", len(items)) + b"".join(items)


def char_vector(text):
    return bytes([10, 0]) + struct.pack("<I", len(text)) + text


def table(names, columns):
    return bytes([98, 0, 99]) + symbols(names) + general_list(columns)


def compress(msg):
    """Compresses an uncompressed message as kdb+ does; returns None when the result
    would not be smaller than half of the input."""
    n = len(msg)
    limit = n // 2
    out = bytearray(limit)
    out[0:4] = msg[0:4]
    out[2] = 1
    out[3] = 0
    little = msg[0] == 1
    out[8:12] = struct.pack("<I" if little else ">I", n)

    table_slots = [0] * 256
    pending = 0
    pending_key = 0
    r = 8
    control_pos = 12
    w = 13
    control = 0
    mask = 1
    key = 0
    while r < n:
        # After 8 tokens, close the group; give up when the next one might not fit.
        if mask == 0:
            out[control_pos] = control
            if w > limit - 17:
                return None
            control_pos = w
            w += 1
            control = 0
            mask = 1

        # A match needs 3 bytes left and a slot whose pair starts with the same byte.
        literal = True
        if r <= n - 3:
            key = msg[r] ^ msg[r + 1]
            candidate = table_slots[key]
            if candidate != 0 and msg[candidate] == msg[r]:
                literal = False

        # A literal's position enters the table only after the next token's lookup.
        if pending != 0:
            table_slots[pending_key] = pending
            pending = 0
        if literal:
            pending = r
            pending_key = key
            out[w] = msg[r]
            w += 1
            r += 1
        else:
            table_slots[key] = r
            control |= mask
            source = candidate + 2
            r += 2
            start = r
            stop = min(r + 255, n)
            while r < stop and msg[source] == msg[r]:
                r += 1
                source += 1
            out[w] = key
            out[w + 1] = r - start
            w += 2
        mask = (mask << 1) & 0xFF

    out[control_pos] = control
    out[4:8] = struct.pack("<I" if little else ">I", w)
    return bytes(out[:w])


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def qdec_seeds():
    long_atom = bytes([0xF9]) + struct.pack("<q", 7)
    lambda_text = bytes([100, 0]) + char_vector(b"{x*y}")
    seeds = {
        "long-atom": message(long_atom),
        "long-atom-big-endian": message(bytes([0xF9]) + struct.pack(">q", 4), little_endian=False),
        "symbol-atom": message(b"\xf5hello\0"),
        "guid-atom": message(b"\xfe" + bytes(range(16))),
        "error": message(b"\x80length\0"),
        "generic-null": message(b"\x65\x00"),
        "string-sync": message(char_vector(b"2+2"), msg_type=1),
        "sorted-int-vector": message(vector(6, "i", [1, 2, 3], attribute=1)),
        "int-vector-big-endian": message(vector(6, "i", [1, 2], little_endian=False),
                                         little_endian=False),
        "short-nulls": message(vector(5, "h", [1, -32768, 32767, -32767])),
        "float-nulls": message(vector(9, "d", [1.0, float("inf"), -float("inf"), float("nan")])),
        "symbols": message(symbols([b"a", b"", b"bc"])),
        "large-count-bytes": message(b"\x04\x80" + struct.pack("<Q", 3) + b"\x01\x02\x03"),
        "general-list": message(general_list([b"\xf5add\0", long_atom, long_atom])),
        "dictionary": message(b"\x63" + symbols([b"x", b"y"]) +
                              general_list([long_atom, char_vector(b"z")])),
        "table": message(table([b"s", b"p"], [symbols([b"a", b"b"]),
                                              vector(9, "d", [1.5, 2.5])])),
        "keyed-table": message(b"\x63" + table([b"k"], [vector(7, "q", [1, 2])]) +
                               table([b"v"], [symbols([b"a", b"b"])])),
        "lambda": message(lambda_text),
        "projection": message(bytes([104]) + struct.pack("<I", 2) + lambda_text + long_atom),
        "composition": message(bytes([105]) + struct.pack("<I", 2) + b"\x65\x02" +
                               bytes([104]) + struct.pack("<I", 2) + b"\x66\x01" +
                               b"\xfa\x01\x00\x00\x00"),
        "each-over-scan": message(b"\x6a\x6b\x6c\x66\x01"),
        "nested-lists": message(general_list([general_list([general_list([long_atom])])])),
        "lying-count": message(b"\x07\x00\xff\xff\xff\xff" + struct.pack("<q", 1)),
        "enumeration": message(b"\x14\x00\x01\x00\x00\x00\x00\x00\x00\x00"),
    }
    for name, data in seeds.items():
        write("qdec", name, data)


def compressible_messages():
    symbols_1000 = message(symbols([b"ab"] * 1000))
    longs = message(vector(7, "q", list(range(1000))))
    table_rows = message(table([b"sym", b"qty"], [symbols([b"abc", b"de"] * 200),
                                                 vector(6, "i", [5] * 400)]))
    symbols_big_endian = bytearray(symbols_1000)
    symbols_big_endian[0] = 0
    symbols_big_endian[4:8] = struct.pack(">I", len(symbols_1000))
    symbols_big_endian[10:14] = struct.pack(">I", 1000)
    return {
        "symbols": symbols_1000,
        "longs": longs,
        "table": table_rows,
        "symbols-big-endian": bytes(symbols_big_endian),
    }


def decompress_seeds():
    for name, plain in compressible_messages().items():
        packed = compress(plain)
        assert packed is not None, name
        write("decompress", name, packed)
    # A stream of literals only: control byte 0 and 2 bytes (`::`).
    write("decompress", "literals", bytes([1, 2, 1, 0, 15, 0, 0, 0, 10, 0, 0, 0, 0, 0x65, 0]))
    # An 8-byte size field (flag 2) around the same literals.
    write("decompress", "size-field-8", bytes([1, 2, 2, 0, 19, 0, 0, 0]) +
          struct.pack("<Q", 10) + bytes([0, 0x65, 0]))
    # A back-reference to an empty hash slot.
    write("decompress", "empty-slot", bytes([1, 2, 1, 0, 16, 0, 0, 0, 12, 0, 0, 0, 1, 0x33, 2, 0]))


def header_seeds():
    sync = message(char_vector(b"2+2"), msg_type=1)
    response = message(bytes([0xF9]) + struct.pack("<q", 4))
    big = message(bytes([0xF9]) + struct.pack(">q", 4), little_endian=False)
    packed = compress(compressible_messages()["symbols"])
    write("header", "one-message", sync)
    write("header", "three-messages", sync + response + big)
    write("header", "compressed-then-plain", packed + response)
    write("header", "incomplete-tail", sync + response[:12])
    write("header", "bad-type-byte", sync + bytes([1, 3, 0, 0, 17, 0, 0, 0]) + response[8:])
    write("header", "length-40-bit", bytes([1, 0, 0, 1, 0x26, 0xAC, 0x42, 0x06]))
    write("header", "length-below-minimum", bytes([1, 1, 0, 0, 9, 0, 0, 0, 0x65]))


def handshake_seeds():
    write("handshake", "user-password-cap3", b"alice:secret\x03\x00")
    write("handshake", "user-only-cap3", b"c\x03\x00")
    write("handshake", "no-capability", b"anonymous\x00")
    write("handshake", "colon-in-password-cap6", b"user:pa:ss\x06\x00")
    write("handshake", "empty", b"\x00")
    write("handshake", "capability-7", b"u:p\x07\x00")
    write("handshake", "followed-by-message", b"alice:secret\x03\x00" +
          message(char_vector(b"2+2"), msg_type=1))
    write("handshake", "too-long", b"u:" + b"p" * 1100 + b"\x03\x00")
    write("handshake", "no-nul", b"alice:secret\x03")


def main():
    qdec_seeds()
    decompress_seeds()
    header_seeds()
    handshake_seeds()


if __name__ == "__main__":
    main()
