/* ws_codec.c - the WebSocket message layer over wslay; see ws_codec.h.
 *
 * wslay runs in its event mode with buffering off: it unmasks, checks UTF-8 as bytes come,
 * answers pings and echoes close frames; this file reassembles messages (one buffer per
 * codec), checks every frame header before wslay sees it (so a violation gets its proper
 * close code, and a too-large message is refused before its payload is read), and hands
 * wslay at most one frame at a time through the receive callback.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "b64.h"
#include "util.h"
#include "ws_codec.h"

#define WS_DEFAULT_MAX_MESSAGE ((size_t)1 << 20)
#define WS_DEFAULT_MAX_FRAGMENTS 4096
/* A reassembly or output buffer above this size is freed once empty, so one large message
 * does not pin its memory for the life of the connection. */
#define WS_KEEP_BUF (64 * 1024)

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct ws_codec {
        wslay_event_context_ptr ctx;
        bool server;
        size_t max_message;
        size_t max_fragments;
        ws_codec_message_cb on_message;
        void *ud;

        /* Input, only while ws_codec_feed() runs. */
        const uint8_t *in;
        size_t in_len, in_off;
        bool feeding;
        bool paused;
        bool failed;  /* we failed the connection (or wslay did): reading stopped */
        bool broken;  /* wslay cannot write any more (out of memory) */
        bool closing; /* ws_codec_close() was called */

        /* Frame tracker: a header is collected here and checked, then handed to wslay,
         * followed by exactly its payload. */
        uint8_t hdr[14];
        uint8_t hdr_len;   /* header bytes collected */
        uint8_t hdr_need;  /* header size (2 until the second byte is known) */
        uint8_t hdr_given; /* header bytes handed to wslay */
        bool in_frame;     /* a checked frame is being handed over */
        uint64_t pay_left; /* payload bytes of that frame not handed over yet */
        bool msg_open;     /* a fragmented data message waits for continuation frames */
        uint64_t msg_announced; /* payload announced so far by the message's frames */
        size_t msg_frames;

        /* Reassembly, filled from wslay's chunk callback. */
        uint8_t cur_opcode; /* opcode of the frame wslay is decoding */
        bool msg_binary;
        uint8_t *msg;
        size_t msg_len, msg_cap;

        /* Output: wslay writes here, the transport takes from out_off. */
        uint8_t *out;
        size_t out_off, out_len, out_cap;

        /* A close frame to queue once wslay's queue is empty (it sends control frames
         * before queued data). In practice the queue is always empty, because the send
         * callback takes every byte; this keeps the order right even if that changes. */
        bool close_pending;
        uint16_t pending_code;
        uint8_t pending_reason[WS_MAX_REASON];
        size_t pending_reason_len;

        uint16_t first_code;
        uint64_t pongs;
};

static size_t min_size(size_t a, size_t b)
{
        return a < b ? a : b;
}

/* ---- helpers shared with the transports ---- */

bool ws_utf8_valid(const uint8_t *s, size_t len)
{
        size_t i = 0;

        while (i < len) {
                uint8_t c = s[i];
                if (c < 0x80) {
                        i++;
                        continue;
                }
                size_t n;
                uint32_t cp, min;
                if ((c & 0xe0) == 0xc0) {
                        n = 2;
                        cp = c & 0x1f;
                        min = 0x80;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 3;
                        cp = c & 0x0f;
                        min = 0x800;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 4;
                        cp = c & 0x07;
                        min = 0x10000;
                } else {
                        return false;
                }
                if (len - i < n)
                        return false;
                for (size_t k = 1; k < n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n;
        }
        return true;
}

static bool b64_char(char ch)
{
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
               ch == '+' || ch == '/';
}

/* The key must be exactly 24 characters, 22 of the alphabet and "==" (RFC 6455 4.2.1:
 * "a base64-encoded value that, when decoded, is 16 bytes in length"). */
bool ws_key_valid(const char *key)
{
        uint8_t raw[WS_KEY_LEN];
        size_t n = 0;

        if (!key || strlen(key) != WS_KEY_LEN || key[22] != '=' || key[23] != '=')
                return false;
        for (size_t i = 0; i < 22; i++)
                if (!b64_char(key[i]))
                        return false;
        return b64_decode(key, WS_KEY_LEN, raw, &n) == 0 && n == 16;
}

int ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
        char buf[WS_KEY_LEN + sizeof(ws_guid)];
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;

        if (!ws_key_valid(key))
                return -EINVAL;
        memcpy(buf, key, WS_KEY_LEN);
        memcpy(buf + WS_KEY_LEN, ws_guid, sizeof(ws_guid) - 1);
        if (EVP_Digest(buf, WS_KEY_LEN + sizeof(ws_guid) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 ||
            mdlen != 20)
                return -EIO;
        b64_encode(md, mdlen, out);
        return 0;
}

/* ---- state ---- */

bool ws_codec_reading(const struct ws_codec *w)
{
        return !w->failed && !w->broken && wslay_event_get_read_enabled(w->ctx);
}

bool ws_codec_done(const struct ws_codec *w)
{
        return !ws_codec_reading(w) && !w->close_pending &&
               (w->broken || wslay_event_get_close_sent(w->ctx));
}

bool ws_codec_close_sent(const struct ws_codec *w)
{
        return wslay_event_get_close_sent(w->ctx);
}

bool ws_codec_close_received(const struct ws_codec *w)
{
        return wslay_event_get_close_received(w->ctx);
}

uint16_t ws_codec_close_code(const struct ws_codec *w)
{
        return w->first_code;
}

uint64_t ws_codec_pongs(const struct ws_codec *w)
{
        return w->pongs;
}

/* Let wslay write what it has queued (into w->out), then the close frame that waited for
 * its queue to empty. A failure here means memory ran out: nothing more can be sent. */
static void pump(struct ws_codec *w)
{
        if (w->broken)
                return;
        if (wslay_event_send(w->ctx) < 0)
                goto broken;
        if (w->close_pending && wslay_event_get_queued_msg_count(w->ctx) == 0) {
                w->close_pending = false;
                int r = wslay_event_queue_close(w->ctx, w->pending_code, w->pending_reason,
                                                w->pending_reason_len);
                if (r == WSLAY_ERR_NOMEM || (r == 0 && wslay_event_send(w->ctx) < 0))
                        goto broken;
        }
        if (!w->first_code && wslay_event_get_close_sent(w->ctx))
                w->first_code = wslay_event_get_status_code_sent(w->ctx);
        return;
broken:
        w->broken = true;
        w->close_pending = false;
        if (!w->first_code)
                w->first_code = WS_CLOSE_INTERNAL;
        wslay_event_shutdown_read(w->ctx);
        wslay_event_shutdown_write(w->ctx);
}

/* Fail the connection with code: stop reading and queue a close frame (sent by the next
 * pump). Safe from inside wslay's callbacks. */
static void fail(struct ws_codec *w, uint16_t code)
{
        if (w->failed)
                return;
        w->failed = true;
        wslay_event_shutdown_read(w->ctx);
        if (!w->first_code)
                w->first_code = code;
        if (w->closing || w->close_pending || wslay_event_get_close_received(w->ctx))
                return;
        w->close_pending = true;
        w->pending_code = code;
        w->pending_reason_len = 0;
}

/* ---- frame tracker ---- */

/* Header size once its first two bytes are known. */
static uint8_t header_size(const uint8_t *h)
{
        uint8_t len7 = h[1] & 0x7f;
        uint8_t n = 2;

        if (len7 == 126)
                n += 2;
        else if (len7 == 127)
                n += 8;
        if (h[1] & 0x80)
                n += 4;
        return n;
}

/* Check a complete header against the protocol and the limits, and track the message it
 * belongs to. Returns 0 and the payload length, or the close code to fail with. */
static uint16_t check_header(struct ws_codec *w, const uint8_t *h, uint64_t *ret_len)
{
        bool fin = h[0] & 0x80, masked = h[1] & 0x80;
        uint8_t op = h[0] & 0x0f;
        uint64_t len = h[1] & 0x7f;

        if (len == 126) {
                len = ((uint64_t)h[2] << 8) | h[3];
                if (len < 126)
                        return WS_CLOSE_PROTOCOL; /* not the shortest encoding */
        } else if (len == 127) {
                len = 0;
                for (int i = 0; i < 8; i++)
                        len = (len << 8) | h[2 + i];
                if (len >> 63 || len < 65536)
                        return WS_CLOSE_PROTOCOL;
        }
        if (h[0] & 0x70)
                return WS_CLOSE_PROTOCOL; /* no extension was negotiated */
        if (masked != w->server)
                return WS_CLOSE_PROTOCOL; /* RFC 6455 5.1: clients mask, servers do not */
        if (op >= 8) {
                /* A one-byte close payload cannot hold a code (RFC 6455 5.5.1). */
                if (op > 10 || !fin || len > WS_MAX_CONTROL || (op == 8 && len == 1))
                        return WS_CLOSE_PROTOCOL;
                *ret_len = len;
                return 0;
        }
        if (op > 2)
                return WS_CLOSE_PROTOCOL;
        if (op == 0) {
                if (!w->msg_open)
                        return WS_CLOSE_PROTOCOL;
                if (++w->msg_frames > w->max_fragments)
                        return WS_CLOSE_POLICY;
        } else {
                if (w->msg_open)
                        return WS_CLOSE_PROTOCOL;
                w->msg_announced = 0;
                w->msg_frames = 1;
        }
        if (len > w->max_message - w->msg_announced)
                return WS_CLOSE_TOO_BIG;
        w->msg_announced += len;
        w->msg_open = !fin;
        *ret_len = len;
        return 0;
}

static void frame_done(struct ws_codec *w)
{
        w->in_frame = false;
        w->hdr_len = 0;
        w->hdr_need = 2;
        w->hdr_given = 0;
}

/* wslay's receive callback: hand over the current frame (header from w->hdr, then payload
 * from the input) and never a byte of the next one; collect and check the next header
 * before handing it over. "Would block" when the input is used up, while paused, or once
 * the connection failed. */
static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                       void *ud)
{
        struct ws_codec *w = ud;

        while (!w->paused && !w->failed && len > 0) {
                size_t avail = w->in_len - w->in_off;
                if (w->in_frame) {
                        size_t n;
                        if (w->hdr_given < w->hdr_len) {
                                n = min_size(len, (size_t)(w->hdr_len - w->hdr_given));
                                memcpy(buf, w->hdr + w->hdr_given, n);
                                w->hdr_given += (uint8_t)n;
                                if (w->hdr_given == w->hdr_len && w->pay_left == 0)
                                        frame_done(w);
                                return (ssize_t)n;
                        }
                        if (avail == 0)
                                break;
                        n = min_size(min_size(len, avail),
                                     w->pay_left < SIZE_MAX ? (size_t)w->pay_left : SIZE_MAX);
                        memcpy(buf, w->in + w->in_off, n);
                        w->in_off += n;
                        w->pay_left -= n;
                        if (w->pay_left == 0)
                                frame_done(w);
                        return (ssize_t)n;
                }
                if (avail == 0)
                        break;
                size_t need = w->hdr_len < 2 ? 2 : w->hdr_need;
                size_t n = min_size(avail, need - w->hdr_len);
                memcpy(w->hdr + w->hdr_len, w->in + w->in_off, n);
                w->hdr_len += (uint8_t)n;
                w->in_off += n;
                if (w->hdr_len == 2)
                        w->hdr_need = header_size(w->hdr);
                if (w->hdr_len < w->hdr_need)
                        continue;
                uint64_t plen = 0;
                uint16_t code = check_header(w, w->hdr, &plen);
                if (code) {
                        fail(w, code);
                        break;
                }
                w->in_frame = true;
                w->hdr_given = 0;
                w->pay_left = plen;
        }
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
}

/* ---- wslay callbacks ---- */

/* Take every byte wslay writes, so its queue never holds anything between calls. */
static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
        struct ws_codec *w = ud;

        if (w->out_off > 0 && w->out_off == w->out_len)
                w->out_off = w->out_len = 0;
        if (len > w->out_cap - w->out_len) {
                if (w->out_off > 0) {
                        memmove(w->out, w->out + w->out_off, w->out_len - w->out_off);
                        w->out_len -= w->out_off;
                        w->out_off = 0;
                }
                if (len > w->out_cap - w->out_len) {
                        size_t cap = w->out_cap ? w->out_cap * 2 : 4096;
                        while (cap - w->out_len < len)
                                cap *= 2;
                        uint8_t *n = realloc(w->out, cap);
                        if (!n) {
                                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                                return -1;
                        }
                        w->out = n;
                        w->out_cap = cap;
                }
        }
        memcpy(w->out + w->out_len, data, len);
        w->out_len += len;
        return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
        return util_random(buf, len) == 0 ? 0 : -1;
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *ud)
{
        struct ws_codec *w = ud;

        w->cur_opcode = arg->opcode;
        if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
                w->msg_len = 0;
                w->msg_binary = arg->opcode == WSLAY_BINARY_FRAME;
        }
}

/* Append a piece of a data frame to the message. The total was checked against
 * max_message from the headers; the buffer grows only as bytes arrive. */
static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *ud)
{
        struct ws_codec *w = ud;
        size_t len = arg->data_length;

        if (w->failed || w->cur_opcode > WSLAY_BINARY_FRAME || len == 0)
                return;
        if (len > w->msg_cap - w->msg_len) {
                size_t cap = w->msg_cap ? w->msg_cap * 2 : 4096;
                while (cap - w->msg_len < len)
                        cap *= 2;
                uint8_t *n = realloc(w->msg, cap);
                if (!n) {
                        fail(w, WS_CLOSE_INTERNAL);
                        return;
                }
                w->msg = n;
                w->msg_cap = cap;
        }
        memcpy(w->msg + w->msg_len, arg->data, len);
        w->msg_len += len;
}

/* A whole message (data: reassembled here; control: buffered by wslay). */
static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud)
{
        struct ws_codec *w = ud;

        switch (arg->opcode) {
        case WSLAY_TEXT_FRAME:
        case WSLAY_BINARY_FRAME:
                if (!w->failed) {
                        if (!w->msg_binary && !ws_utf8_valid(w->msg, w->msg_len))
                                fail(w, WS_CLOSE_BAD_DATA);
                        else
                                w->on_message(w->ud, w->msg_binary, w->msg, w->msg_len);
                }
                w->msg_len = 0;
                if (w->msg_cap > WS_KEEP_BUF) {
                        free(w->msg);
                        w->msg = NULL;
                        w->msg_cap = 0;
                }
                break;
        case WSLAY_CONNECTION_CLOSE:
                /* wslay already queued the echo and stopped reading. */
                if (!w->first_code)
                        w->first_code = arg->status_code ? arg->status_code : WS_CLOSE_NO_STATUS;
                break;
        case WSLAY_PONG:
                w->pongs++;
                break;
        default:
                break;
        }
}

/* ---- public ---- */

int ws_codec_new(bool server, const struct ws_codec_limits *lim, ws_codec_message_cb on_message,
                 void *ud, struct ws_codec **ret)
{
        const struct wslay_event_callbacks cbs = {
                .recv_callback = recv_cb,
                .send_callback = send_cb,
                .genmask_callback = genmask_cb,
                .on_frame_recv_start_callback = on_frame_start,
                .on_frame_recv_chunk_callback = on_frame_chunk,
                .on_msg_recv_callback = on_msg,
        };
        struct ws_codec *w;
        int r;

        if (!on_message || !ret)
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->server = server;
        w->on_message = on_message;
        w->ud = ud;
        w->max_message = lim && lim->max_message ? lim->max_message : WS_DEFAULT_MAX_MESSAGE;
        w->max_fragments = lim && lim->max_fragments ? lim->max_fragments
                                                     : WS_DEFAULT_MAX_FRAGMENTS;
        w->hdr_need = 2;
        r = server ? wslay_event_context_server_init(&w->ctx, &cbs, w)
                   : wslay_event_context_client_init(&w->ctx, &cbs, w);
        if (r != 0) {
                free(w);
                return -ENOMEM;
        }
        /* Messages are reassembled here; wslay still buffers control frames (<= 125). */
        wslay_event_config_set_no_buffering(w->ctx, 1);
        wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_message);
        *ret = w;
        return 0;
}

void ws_codec_free(struct ws_codec *w)
{
        if (!w)
                return;
        wslay_event_context_free(w->ctx);
        free(w->msg);
        free(w->out);
        free(w);
}

size_t ws_codec_feed(struct ws_codec *w, const uint8_t *data, size_t len)
{
        if (w->feeding)
                return 0;
        if (!ws_codec_reading(w))
                return len;
        if (w->paused || len == 0)
                return 0;
        w->feeding = true;
        w->in = data;
        w->in_len = len;
        w->in_off = 0;
        int r = wslay_event_recv(w->ctx);
        size_t used = w->in_off;
        w->in = NULL;
        w->in_len = w->in_off = 0;
        w->feeding = false;
        /* With every header checked above, wslay fails only when memory runs out. */
        if (r < 0)
                fail(w, r == WSLAY_ERR_NOMEM ? WS_CLOSE_INTERNAL : WS_CLOSE_PROTOCOL);
        pump(w);
        return ws_codec_reading(w) ? used : len;
}

void ws_codec_pause(struct ws_codec *w, bool paused)
{
        w->paused = paused;
}

/* Whether nothing more may be queued: closed, failed or broken. */
static bool send_closed(const struct ws_codec *w)
{
        return w->broken || w->failed || w->closing || w->close_pending ||
               wslay_event_get_close_received(w->ctx) || !wslay_event_get_write_enabled(w->ctx);
}

static int queue(struct ws_codec *w, uint8_t opcode, const void *data, size_t len)
{
        struct wslay_event_msg m = { .opcode = opcode, .msg = data, .msg_length = len };

        if (send_closed(w))
                return -ENOTCONN;
        int r = wslay_event_queue_msg(w->ctx, &m);
        if (r == WSLAY_ERR_NOMEM)
                return -ENOMEM;
        if (r == WSLAY_ERR_NO_MORE_MSG)
                return -ENOTCONN;
        if (r != 0)
                return -EINVAL;
        pump(w);
        return w->broken ? -ENOMEM : 0;
}

int ws_codec_send(struct ws_codec *w, bool binary, const void *data, size_t len)
{
        if (!data && len)
                return -EINVAL;
        if (!binary && !ws_utf8_valid(data, len))
                return -EINVAL;
        return queue(w, binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data, len);
}

int ws_codec_ping(struct ws_codec *w, const void *data, size_t len)
{
        if ((!data && len) || len > WS_MAX_CONTROL)
                return -EINVAL;
        return queue(w, WSLAY_PING, data, len);
}

/* Codes an endpoint may send: the ones wslay (and RFC 6455 7.4) accept on receipt. */
static bool sendable_code(uint16_t code)
{
        return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
               (code >= 3000 && code <= 4999);
}

int ws_codec_close(struct ws_codec *w, uint16_t code, const char *reason)
{
        size_t n = reason ? strlen(reason) : 0;

        if (!sendable_code(code))
                return -EINVAL;
        if (w->broken || w->failed)
                return -ENOTCONN;
        if (w->closing || w->close_pending || wslay_event_get_close_received(w->ctx) ||
            wslay_event_get_close_sent(w->ctx))
                return -EALREADY;
        if (n > WS_MAX_REASON)
                n = WS_MAX_REASON;
        /* A cut splits at most one character: back off up to 3 bytes. */
        size_t k = 0;
        while (k < 4 && k <= n && !ws_utf8_valid((const uint8_t *)reason, n - k))
                k++;
        n = k < 4 && k <= n ? n - k : 0;
        w->closing = true;
        if (!w->first_code)
                w->first_code = code;
        w->close_pending = true;
        w->pending_code = code;
        if (n)
                memcpy(w->pending_reason, reason, n);
        w->pending_reason_len = n;
        pump(w);
        return w->broken ? -ENOMEM : 0;
}

const uint8_t *ws_codec_output(const struct ws_codec *w, size_t *ret_len)
{
        *ret_len = w->out_len - w->out_off;
        return w->out ? w->out + w->out_off : NULL;
}

void ws_codec_output_done(struct ws_codec *w, size_t n)
{
        if (n > w->out_len - w->out_off)
                n = w->out_len - w->out_off;
        w->out_off += n;
        if (w->out_off < w->out_len)
                return;
        w->out_off = w->out_len = 0;
        if (w->out_cap > WS_KEEP_BUF) {
                free(w->out);
                w->out = NULL;
                w->out_cap = 0;
        }
}
