/* The protocol server: the target side of hardware/wire.py (the wire format is documented
 * there). One request frame in, one response frame out; the last response is kept so that a
 * retried request (same sequence number, command and CRC) is answered again without running the
 * command twice.
 *
 * Frame: COBS-encoded, then a 0x00 delimiter. Decoded:
 *   u8 version | u8 cmd (response: cmd | 0x80) | u8 seq | u16 payload length | payload | u32 CRC-32
 * Response payloads start with a status byte.
 */
#include "fw.h"

#define MAX_PAYLOAD 256u
#define HEADER 5u
#define RAW_MAX (HEADER + MAX_PAYLOAD + 4u)
#define ENC_MAX (RAW_MAX + RAW_MAX / 254u + 2u)
#define MAX_RUNS 30u /* counts of one RUN fit one response: 2 + 30 * 8 < MAX_PAYLOAD */

enum { CMD_INFO = 0x01, CMD_ECHO = 0x02, CMD_SET_INPUT = 0x03, CMD_RUN = 0x04, CMD_OP_COUNTS = 0x05,
       CMD_READ_OUTPUT = 0x06, CMD_STACK = 0x07, CMD_EXIT = 0x08, CMD_READ_ARENA = 0x09, CMD_BOOT = 0x7E, CMD_FAULT = 0x7F };
enum { ST_OK = 0, ST_UNKNOWN_CMD = 1, ST_BAD_ARGS = 2, ST_BAD_RANGE = 3, ST_NO_INPUT = 4 };

/* ---- state ---- */
static volatile uint8_t rx_ring[256];       /* filled by the UART interrupt */
static volatile uint32_t rx_head, rx_tail;
static uint8_t enc[ENC_MAX];                /* the frame being received, still COBS-encoded */
static uint8_t req[RAW_MAX];                /* decoded request */
static uint8_t rsp[RAW_MAX];                /* last response (kept for retries) */
static uint32_t rsp_len, last_req_crc;
static int have_last;
static int input_staged;                    /* a SET_INPUT arrived since boot: RUN refuses before it */
static uint64_t op_t0;
unsigned int fw_profiling;                        /* read by KWS_OP_BEGIN/END (profile.h) */

/* ---- helpers ---- */
static uint32_t crc32(const uint8_t *p, uint32_t n)
{
    static const uint32_t nib[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
        0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        c = (c >> 4) ^ nib[c & 15u];
        c = (c >> 4) ^ nib[c & 15u];
    }
    return ~c;
}

static uint32_t get_u16(const uint8_t *p) { return p[0] | (uint32_t)p[1] << 8; }
static uint32_t get_u32(const uint8_t *p) { return get_u16(p) | get_u16(p + 2) << 16; }
static uint8_t *put_u16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); return p + 2; }
static uint8_t *put_u32(uint8_t *p, uint32_t v) { return put_u16(put_u16(p, v), v >> 16); }
static uint8_t *put_u64(uint8_t *p, uint64_t v) { return put_u32(put_u32(p, (uint32_t)v), (uint32_t)(v >> 32)); }

void fw_rx_byte(uint8_t c)
{
    uint32_t h = rx_head;
    if (h - rx_tail < sizeof rx_ring) { /* a full ring drops the byte: the frame CRC catches it */
        rx_ring[h & (sizeof rx_ring - 1u)] = c;
        rx_head = h + 1u;
    }
}

static uint8_t rx_wait(void)
{
    for (;;) {
        __asm__ volatile("cpsid i" ::: "memory");
        if (rx_tail != rx_head) {
            uint8_t c = rx_ring[rx_tail & (sizeof rx_ring - 1u)];
            rx_tail++;
            __asm__ volatile("cpsie i" ::: "memory");
            return c;
        }
        /* WFI wakes on a pending interrupt even with PRIMASK set, so no byte slips in unnoticed */
        __asm__ volatile("wfi\n\tcpsie i" ::: "memory");
    }
}

static void send_raw(const uint8_t *raw, uint32_t n) /* COBS-encode on the fly, then the delimiter */
{
    uint32_t i = 0;
    for (;;) {
        uint32_t j = i;
        while (j < n && raw[j] != 0 && j - i < 254u)
            j++;
        board_putc((uint8_t)(j - i + 1u));
        for (uint32_t k = i; k < j; k++)
            board_putc(raw[k]);
        if (j == n)
            break;
        i = j - i == 254u ? j : j + 1u; /* a full block implies no zero; otherwise skip the zero */
    }
    board_putc(0);
}

static void finish(uint8_t cmd, uint8_t seq, uint32_t payload_len) /* payload already in rsp[HEADER..] */
{
    rsp[0] = FW_PROTOCOL_VERSION;
    rsp[1] = cmd | 0x80u;
    rsp[2] = seq;
    put_u16(rsp + 3, payload_len);
    put_u32(rsp + HEADER + payload_len, crc32(rsp, HEADER + payload_len));
    rsp_len = HEADER + payload_len + 4u;
    send_raw(rsp, rsp_len);
}

/* ---- profiling hooks (profile.h) ---- */
void fw_op_begin(int i)
{
    (void)i;
    op_t0 = board_counter();
}

void fw_op_end(int i)
{
    fw_op_raw[i] = board_counter() - op_t0;
}

/* ---- commands: each writes its reply after the status byte and returns its length or -status ---- */
static int cmd_info(uint8_t *out)
{
    uint8_t *p = out;
    *p++ = FW_PROTOCOL_VERSION;
    *p++ = (uint8_t)board_counter_kind;
    p = put_u16(p, FW_VERSION);
    p = put_u32(p, BOARD_CLOCK_HZ);
    p = put_u32(p, SCB_CPUID);
    p = put_u32(p, fw_arena_bytes);
    p = put_u32(p, fw_input_bytes);
    p = put_u32(p, fw_output_bytes);
    p = put_u16(p, fw_num_ops);
    p = put_u16(p, MAX_PAYLOAD);
    p = put_u32(p, (uint32_t)((char *)&__stack_top - (char *)&__stack_bottom));
    for (int i = 0; i < 16; i++) { /* the digest may be shorter than 16 characters */
        uint8_t c = kws_model_digest[i];
        *p++ = c;
        if (!c) {
            while (++i < 16)
                *p++ = 0;
        }
    }
    for (const char *s = BOARD_NAME; *s && p < out + MAX_PAYLOAD - 2u; s++)
        *p++ = (uint8_t)*s;
    return (int)(p - out);
}

static int cmd_run(const uint8_t *a, uint32_t n, uint8_t *out)
{
    if (n != 3u)
        return -ST_BAD_ARGS;
    uint32_t runs = get_u16(a), flags = a[2];
    if (runs == 0 || runs > MAX_RUNS)
        return -ST_BAD_RANGE;
    if (!input_staged)
        return -ST_NO_INPUT; /* nothing staged since boot: the board was reset behind the host's back */
    uint8_t *p = put_u16(out, runs);
    for (uint32_t r = 0; r < runs; r++) {
        memcpy(kws_input(), fw_input_stash, fw_input_bytes);
        fw_profiling = flags & 1u;
        board_counter_restart();
        uint64_t t0 = board_counter();
        kws_run();
        uint64_t t1 = board_counter();
        fw_profiling = 0;
        p = put_u64(p, board_counter_units(t1 - t0));
    }
    return (int)(p - out);
}

static int cmd_op_counts(const uint8_t *a, uint32_t n, uint8_t *out)
{
    if (n != 4u)
        return -ST_BAD_ARGS;
    uint32_t first = get_u16(a), count = get_u16(a + 2);
    if (first + count > fw_num_ops || count > (MAX_PAYLOAD - 3u) / 8u)
        return -ST_BAD_RANGE;
    uint8_t *p = put_u16(out, count);
    for (uint32_t i = 0; i < count; i++)
        p = put_u64(p, board_counter_units(fw_op_raw[first + i]));
    return (int)(p - out);
}

/* READ_OUTPUT and READ_ARENA: u32 offset, u16 length into a buffer of `size` bytes at `base`. */
static int read_span(const int8_t *base, uint32_t size, const uint8_t *a, uint32_t n, uint8_t *out)
{
    if (n != 6u)
        return -ST_BAD_ARGS;
    uint32_t off = get_u32(a), len = get_u16(a + 4);
    if (off > size || len > size - off || len > MAX_PAYLOAD - 1u)
        return -ST_BAD_RANGE;
    memcpy(out, base + off, len);
    return (int)len;
}

static int dispatch(uint8_t cmd, const uint8_t *a, uint32_t n, uint8_t *out)
{
    switch (cmd) {
    case CMD_INFO:
        return cmd_info(out);
    case CMD_ECHO:
        memcpy(out, a, n);
        return (int)n;
    case CMD_SET_INPUT: {
        if (n < 4u)
            return -ST_BAD_ARGS;
        uint32_t off = get_u32(a), len = n - 4u;
        if (off > fw_input_bytes || len > fw_input_bytes - off)
            return -ST_BAD_RANGE;
        memcpy(fw_input_stash + off, a + 4, len);
        input_staged = 1;
        return 0;
    }
    case CMD_RUN:
        return cmd_run(a, n, out);
    case CMD_OP_COUNTS:
        return cmd_op_counts(a, n, out);
    case CMD_READ_OUTPUT:
        return read_span(kws_output(), fw_output_bytes, a, n, out);
    case CMD_READ_ARENA: /* any bytes of the arena: the tensors still intact after a run */
        return read_span(fw_arena_base(), fw_arena_bytes, a, n, out);
    case CMD_STACK:
        put_u32(put_u32(out, fw_stack_peak_bytes()),
                (uint32_t)((char *)&__stack_top - (char *)&__stack_bottom));
        return 8;
    case CMD_EXIT:
        return n == 1u ? 0 : -ST_BAD_ARGS;
    default:
        return -ST_UNKNOWN_CMD;
    }
}

/* COBS-decode enc[0..n) into req; returns the decoded length or -1 */
static int cobs_decode(uint32_t n)
{
    uint32_t i = 0, o = 0;
    while (i < n) {
        uint32_t code = enc[i++];
        if (code == 0 || i + code - 1u > n || o + code - 1u > RAW_MAX)
            return -1;
        for (uint32_t k = 1; k < code; k++)
            req[o++] = enc[i++];
        if (code < 0xFFu && i < n) {
            if (o >= RAW_MAX)
                return -1;
            req[o++] = 0;
        }
    }
    return (int)o;
}

static void handle_frame(uint32_t n)
{
    int len = cobs_decode(n);
    if (len < (int)(HEADER + 4u) || req[0] != FW_PROTOCOL_VERSION || (req[1] & 0x80u))
        return; /* not a request of ours: the host times out and retries */
    uint32_t plen = get_u16(req + 3);
    if (plen != (uint32_t)len - HEADER - 4u)
        return;
    uint32_t crc = get_u32(req + HEADER + plen);
    if (crc32(req, HEADER + plen) != crc)
        return;
    uint8_t cmd = req[1], seq = req[2];
    if (have_last && seq == rsp[2] && (cmd | 0x80u) == rsp[1] && crc == last_req_crc) {
        send_raw(rsp, rsp_len); /* a retry: answer again, do not execute again */
        return;
    }
    int r = dispatch(cmd, req + HEADER, plen, rsp + HEADER + 1u);
    rsp[HEADER] = r < 0 ? (uint8_t)-r : ST_OK;
    finish(cmd, seq, 1u + (r < 0 ? 0u : (uint32_t)r));
    have_last = 1;
    last_req_crc = crc;
    if (cmd == CMD_EXIT && r == 0) {
        board_flush();
        board_exit(req[HEADER]);
    }
}

void fw_fault(uint32_t pc, uint32_t lr)
{
    uint8_t *p = rsp + HEADER;
    *p++ = ST_OK;
    p = put_u32(p, pc);
    p = put_u32(p, lr);
    p = put_u32(p, SCB_CFSR);
    p = put_u32(p, SCB_HFSR);
    board_putc(0); /* end whatever frame was being sent, so this one parses */
    finish(CMD_FAULT, 0, (uint32_t)(p - (rsp + HEADER)));
    board_flush();
    board_exit(3);
}

int main(void)
{
    board_init();
    /* announce the boot (unsolicited, seq 0): a host that sees this mid-session knows the board reset */
    uint8_t *p = put_u16(rsp + HEADER + 1u, FW_VERSION);
    rsp[HEADER] = ST_OK;
    board_putc(0); /* end any partial frame the host holds from before the reset */
    finish(CMD_BOOT, 0, (uint32_t)(p - (rsp + HEADER)));
    uint32_t n = 0;
    int overflow = 0;
    for (;;) {
        uint8_t c = rx_wait();
        if (c == 0) {
            if (!overflow && n)
                handle_frame(n);
            n = 0;
            overflow = 0;
        } else if (n < ENC_MAX) {
            enc[n++] = c;
        } else {
            overflow = 1; /* too long to be ours: skip to the next delimiter */
        }
    }
}
