/*
 * compress.c - kdb+ IPC compression (LZ77 with a 256-slot XOR hash table).
 *
 * Both directions keep table[256] of positions in the uncompressed message, keyed by
 * buf[p] ^ buf[p + 1]; 0 means empty because data starts at position 8. The decompressor
 * must update the table at exactly the moments the compressor does:
 *   - a literal's position is indexed only after the next token has done its lookup;
 *   - a match's start position is indexed at once;
 *   - positions inside a match (its last byte included) are never indexed.
 */
#include "compress.h"

#include "ipc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* A match copies 2 + extra bytes, extra in 0..255. */
#define MATCH_MIN 2
#define MATCH_MAX (MATCH_MIN + 255)

/* A group is one control byte plus up to 8 tokens of at most 2 bytes each. */
#define GROUP_MAX_BYTES 17

/* Uncompressed sizes from 2^32 on need the 8-byte size field (header byte 2 = 2). */
#define SIZE_FIELD_LIMIT (UINT64_C(1) << 32)

int compress_wanted(int capability, uint64_t length, int peer_is_local)
{
    if (capability < 1 || peer_is_local)
        return 0;

    return length > IPC_HEADER_SIZE && length - IPC_HEADER_SIZE > COMPRESS_MIN_BODY;
}

static void write_u32(uint8_t *p, uint32_t v, int little_endian)
{
    for (int i = 0; i < 4; i++) {
        int shift = little_endian ? 8 * i : 8 * (3 - i);
        p[i] = (uint8_t)(v >> shift);
    }
}

static void write_u64(uint8_t *p, uint64_t v, int little_endian)
{
    write_u32(little_endian ? p : p + 4, (uint32_t)v, little_endian);
    write_u32(little_endian ? p + 4 : p, (uint32_t)(v >> 32), little_endian);
}

/* Writes the 40-bit total length into header bytes 3..7. */
static void write_length(uint8_t *header, uint64_t length)
{
    header[3] = (uint8_t)(length >> 32);
    write_u32(header + 4, (uint32_t)length, header[0]);
}

/* Returns how many bytes from m[r] on repeat m[s..], at most max. */
static uint64_t match_length(const uint8_t *m, uint64_t s, uint64_t r, uint64_t max)
{
    uint64_t k = 0;

    while (k < max && m[s + k] == m[r + k])
        k++;
    return k;
}

uint64_t compress_message(const uint8_t *msg, uint64_t n, uint8_t *out)
{
    uint64_t limit = n / 2;
    uint64_t hdr = n >= SIZE_FIELD_LIMIT ? 16 : 12;

    if (limit < hdr + GROUP_MAX_BYTES)
        return 0;

    memcpy(out, msg, 3);
    out[2] = hdr == 16 ? 2 : 1;
    if (hdr == 16)
        write_u64(out + 8, n, msg[0]);
    else
        write_u32(out + 8, (uint32_t)n, msg[0]);

    uint64_t table[256] = {0};
    uint64_t pending = 0;      /* literal position whose indexing waits for the next lookup */
    uint8_t pending_key = 0;
    uint8_t key = 0;           /* stays stale once fewer than 3 bytes remain; never looked up then */
    uint64_t r = IPC_HEADER_SIZE;
    uint64_t ctl_pos = hdr;
    uint64_t w = hdr + 1;
    uint8_t ctl = 0;
    unsigned mask = 1;

    while (r < n) {
        if (mask == 0) {
            out[ctl_pos] = ctl;
            if (w > limit - GROUP_MAX_BYTES)
                return 0;
            ctl_pos = w++;
            ctl = 0;
            mask = 1;
        }

        int is_literal = 1;
        uint64_t candidate = 0;
        if (r + 3 <= n) {
            key = msg[r] ^ msg[r + 1];
            candidate = table[key];
            /* Equal first bytes and equal XOR imply an equal pair. */
            if (candidate != 0 && msg[candidate] == msg[r])
                is_literal = 0;
        }

        if (pending != 0) {
            table[pending_key] = pending;
            pending = 0;
        }

        if (is_literal) {
            pending = r;
            pending_key = key;
            out[w++] = msg[r++];
        } else {
            table[key] = r;
            ctl |= (uint8_t)mask;
            r += MATCH_MIN;
            uint64_t room = n - r < MATCH_MAX - MATCH_MIN ? n - r : MATCH_MAX - MATCH_MIN;
            uint64_t extra = match_length(msg, candidate + MATCH_MIN, r, room);
            r += extra;
            out[w++] = key;
            out[w++] = (uint8_t)extra;
        }
        mask = (mask << 1) & 0xFF;
    }
    out[ctl_pos] = ctl;

    write_length(out, w);
    return w;
}

int decompress_size(const uint8_t *msg, uint64_t len, uint64_t *size)
{
    struct ipc_header header;

    if (len < IPC_MIN_COMPRESSED_LENGTH || ipc_header_parse(msg, &header) != IPC_OK)
        return -1;
    if (header.compressed == 0 || header.length != len)
        return -1;

    uint64_t field_end = header.compressed == 1 ? 12 : 16;
    if (len <= field_end)
        return -1;

    uint64_t declared = header.compressed == 1 ? ipc_read_u32(msg + 8, header.little_endian)
                                               : ipc_read_u64(msg + 8, header.little_endian);
    if (declared < IPC_MIN_LENGTH || declared > IPC_MAX_LENGTH)
        return -1;

    *size = declared;
    return 0;
}

/*
 * Copies a back-reference's extra bytes: out[w + i] = out[from + i] for i in 0..count,
 * forward, so a source that overlaps the destination repeats its pattern. end is the size
 * of out; bytes between w + count and end may be overwritten, because the decoder writes
 * them later anyway.
 */
static void copy_run(uint8_t *out, uint64_t from, uint64_t w, uint64_t count, uint64_t end)
{
    const uint8_t *src = out + from;
    uint8_t *dst = out + w;
    uint64_t gap = w - from;

    if (gap == 1) {
        memset(dst, *src, count);
        return;
    }

    /* Fixed 16-byte copies compile to a few moves, which beats memcpy on short runs. */
    if (gap >= 16 && end - w >= count + 16) {
        for (uint64_t done = 0; done < count; done += 16)
            memcpy(dst + done, src + done, 16);
        return;
    }

    /* Each memcpy copies at most the current gap, which doubles, so the source and the
     * destination of one call never overlap. */
    while (count > 0) {
        uint64_t chunk = gap < count ? gap : count;
        memcpy(dst, src, chunk);
        dst += chunk;
        count -= chunk;
        gap = (uint64_t)(dst - src);
    }
}

int decompress_message(const uint8_t *msg, uint64_t len, uint8_t *out, uint64_t size,
                       char *err, size_t errlen)
{
    uint64_t declared;

    if (decompress_size(msg, len, &declared) != 0 || declared != size) {
        snprintf(err, errlen, "byte 0: invalid compressed message header or size field "
                              "(message length %" PRIu64 ", expected uncompressed size %"
                              PRIu64 ")", len, size);
        return -1;
    }

    memcpy(out, msg, 3);
    out[2] = 0;
    write_length(out, size);

    uint64_t table[256] = {0};
    uint64_t src = msg[2] == 1 ? 12 : 16;
    uint64_t w = IPC_HEADER_SIZE;
    uint64_t h = IPC_HEADER_SIZE;    /* lowest position whose pair is not indexed yet */
    unsigned ctl = 0;
    unsigned mask = 0;

    while (w < size) {
        if (mask == 0) {
            if (src >= len)
                goto truncated;
            ctl = msg[src++];
            mask = 1;
        }

        if (ctl & mask) {
            if (len - src < 2)
                goto truncated;
            uint8_t key = msg[src];
            uint64_t extra = msg[src + 1];
            uint64_t from = table[key];
            if (from == 0) {
                snprintf(err, errlen, "byte %" PRIu64 ": back-reference to hash slot 0x%02x, "
                         "which no earlier byte pair filled (output position %" PRIu64 ")",
                         src, key, w);
                return -1;
            }
            if (size - w < MATCH_MIN + extra) {
                snprintf(err, errlen, "byte %" PRIu64 ": back-reference of %" PRIu64 " bytes "
                         "at output position %" PRIu64 " runs past the declared size %" PRIu64,
                         src, MATCH_MIN + extra, w, size);
                return -1;
            }
            src += 2;

            /* from + 1 < w is true because only pairs already written are ever indexed. */
            out[w] = out[from];
            out[w + 1] = out[from + 1];
            if (h < w)
                table[out[w - 1] ^ out[w]] = w - 1;
            table[out[w] ^ out[w + 1]] = w;

            copy_run(out, from + MATCH_MIN, w + MATCH_MIN, extra, size);
            w += MATCH_MIN + extra;
            h = w;
        } else {
            if (src >= len)
                goto truncated;
            out[w] = msg[src++];
            if (h < w)
                table[out[w - 1] ^ out[w]] = w - 1;
            h = w;
            w++;
        }
        mask = (mask << 1) & 0xFF;
    }

    if (src != len) {
        snprintf(err, errlen, "byte %" PRIu64 ": %" PRIu64 " bytes remain after the output "
                 "reached its declared size %" PRIu64, src, len - src, size);
        return -1;
    }
    return 0;

truncated:
    snprintf(err, errlen, "byte %" PRIu64 ": compressed stream ends with %" PRIu64 " of %"
             PRIu64 " output bytes written", src, w, size);
    return -1;
}
