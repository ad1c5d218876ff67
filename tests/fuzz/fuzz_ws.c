/* fuzz_ws.c - libFuzzer harness for WebSocket frames received by the server (src/api/ws.c,
 * src/common/ws_codec.c, wslay underneath).
 *
 * The HTTP server runs in memory mode (no sockets, no loop): a fixed, valid upgrade request
 * is followed by the fuzz input, as the bytes a client sends after it (in the same "reads"
 * as the request, so the pipelined path is exercised too). The handler accepts the
 * WebSocket and reacts to each message by its first byte:
 *   'c' close (code from the second byte)   'p' pause (the driver resumes)
 *   'x' http_server_close() from inside the callback
 *   anything else: echoed (text or binary as received)
 * Input byte 0: bits 0-2 pick how the rest is cut into reads, bit 3 small limits
 * (max_message 256, max_fragments 4). Checked: nothing crashes, leaks or trips a
 * sanitizer; text delivered is UTF-8 and no message exceeds max_message; nothing is
 * delivered while paused; on_close runs exactly once with a plausible code; and what the
 * server writes is a 101 answer followed by well-formed unmasked frames, with nothing after
 * a close frame.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "http_internal.h"
#include "ws.h"
#include "ws_codec.h"

#define CHECK(x)                                                                                   \
        do {                                                                                       \
                if (!(x))                                                                          \
                        __builtin_trap();                                                          \
        } while (0)

static const char upgrade[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";

static struct http_server *server;
static struct ws_conn *ws;
static struct ws_limits lim;
static bool paused;
static int closes;
static uint16_t close_code;

static void on_message(struct ws_conn *w, bool binary, const uint8_t *data, size_t len, void *ud)
{
        CHECK(w == ws && !paused);
        CHECK(len <= lim.max_message);
        if (!binary)
                CHECK(ws_utf8_valid(data, len));
        switch (len ? data[0] : 0) {
        case 'c':
                ws_close(w, (uint16_t)(len > 1 ? 1000 + data[1] % 12 : 4000), "bye");
                return;
        case 'p':
                ws_pause(w);
                paused = true;
                return;
        case 'x':
                http_server_close(server);
                return;
        default:
                (void)ws_send(w, binary, data, len);
                return;
        }
}

static void on_close(struct ws_conn *w, uint16_t code, void *ud)
{
        CHECK(w == ws);
        CHECK(ws_send(w, true, "x", 1) == -ENOTCONN);
        closes++;
        close_code = code;
        ws = NULL;
}

static const struct ws_ops ops = { .on_message = on_message, .on_close = on_close };

static enum http_body_mode on_headers(struct http_req *req, void *ud)
{
        return HTTP_BODY_BUFFER;
}

static void on_request(struct http_req *req, void *ud)
{
        CHECK(http_req_is_ws(req) && !ws);
        CHECK(http_ws_accept(req, &ops, NULL, &lim, &ws) == 0);
}

/* Walk what the server wrote: a 101 head, then frames (the capture may end mid-frame). */
static void check_output(const uint8_t *out, size_t len)
{
        static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n";
        const uint8_t *end = memmem(out, len, "\r\n\r\n", 4);
        bool closed = false;

        CHECK(len >= sizeof(head) - 1 && !memcmp(out, head, sizeof(head) - 1) && end);
        size_t off = (size_t)(end - out) + 4;
        while (len - off >= 2) {
                uint8_t b0 = out[off], b1 = out[off + 1], op = b0 & 0x0f;
                uint64_t plen = b1 & 0x7f;
                size_t hl = 2;
                CHECK(!closed);
                CHECK(!(b1 & 0x80) && !(b0 & 0x70) && (b0 & 0x80));
                CHECK(op == 1 || op == 2 || op == 8 || op == 9 || op == 10);
                if (plen == 126) {
                        if (len - off < 4)
                                break;
                        plen = ((uint64_t)out[off + 2] << 8) | out[off + 3];
                        hl = 4;
                } else if (plen == 127) {
                        if (len - off < 10)
                                break;
                        plen = 0;
                        for (int i = 0; i < 8; i++)
                                plen = (plen << 8) | out[off + 2 + i];
                        hl = 10;
                }
                if (op >= 8)
                        CHECK(plen <= 125);
                if (len - off - hl < plen)
                        break;
                if (op == 8) {
                        closed = true;
                        if (plen >= 2) {
                                uint16_t code = (uint16_t)(out[off + hl] << 8 | out[off + hl + 1]);
                                CHECK((code >= 1000 && code <= 1011 && code != 1004 &&
                                       code != 1005 && code != 1006) ||
                                      (code >= 3000 && code <= 4999));
                        }
                }
                off += hl + (size_t)plen;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const size_t cuts[8] = { SIZE_MAX, 1, 2, 3, 7, 16, 61, 512 };
        struct http_conn *c;

        if (size < 1)
                return 0;
        size_t cut = cuts[data[0] & 7];
        memset(&lim, 0, sizeof(lim));
        lim.max_message = data[0] & 8 ? 256 : (size_t)1 << 20;
        lim.max_fragments = data[0] & 8 ? 4 : 4096;
        data++;
        size--;

        /* The request, then the input, as one stream. */
        size_t total = sizeof(upgrade) - 1 + size;
        uint8_t *in = malloc(total ? total : 1);
        CHECK(in);
        memcpy(in, upgrade, sizeof(upgrade) - 1);
        if (size)
                memcpy(in + sizeof(upgrade) - 1, data, size);

        ws = NULL;
        paused = false;
        closes = 0;
        close_code = 0;
        CHECK(http_server_new_mem(NULL, on_headers, on_request, NULL, &server) == 0);
        CHECK(http_mem_conn_new(server, &c) == 0);

        size_t pos = 0;
        for (;;) {
                if (http_mem_conn_closed(c))
                        break;
                if (http_mem_conn_reading(c) && pos < total) {
                        size_t k = total - pos < cut ? total - pos : cut;
                        http_mem_conn_input(c, (const char *)in + pos, k);
                        pos += k;
                } else if (ws && paused) {
                        paused = false;
                        ws_resume(ws);
                } else {
                        break;
                }
                http_mem_run_deferred(server);
        }
        /* The client leaves. */
        http_mem_conn_eof(c);
        http_mem_run_deferred(server);
        check_output((const uint8_t *)c->mem_out, c->mem_out_len);
        CHECK(closes == 1 && !ws);
        CHECK(close_code >= 1000 && close_code <= 4999);
        http_server_close(server);
        http_mem_run_deferred(server);
        CHECK(closes == 1);
        http_mem_conn_release(c);
        free(in);
        return 0;
}
