/* ws_codec.h - the WebSocket message layer (RFC 6455) over wslay, without any I/O.
 *
 * Shared by the server (src/api/ws.c, on the HTTP server's connections) and the CLI client
 * (src/cli/ws_client.c, on a plain socket): the transport feeds the bytes it read with
 * ws_codec_feed() and writes what ws_codec_output() holds. Everything the peer controls is
 * bounded and checked here, before wslay sees it:
 *   - each frame header: reserved bits, reserved opcodes, masking (a client must mask, a
 *     server must not), minimal length encoding, control frames final and <= 125 bytes, a
 *     one-byte close payload: 1002 Protocol Error;
 *   - continuation without a message, or a new message inside a fragmented one: 1002;
 *   - a message (the sum of its fragments) over max_message: 1009 Message Too Big, refused
 *     from the frame header, before its payload is read; more than max_fragments frames in
 *     one message: 1008 Policy Violation;
 *   - text messages and close reasons that are not UTF-8: 1007 (wslay checks as the bytes
 *     come; the whole message is checked again before it is delivered).
 * On any of these the codec queues a close frame with that code and stops reading (the
 * connection has failed: the transport flushes and closes). wslay answers pings with pongs
 * and echoes a peer's close frame.
 *
 * Messages are reassembled here into one buffer that grows as bytes arrive (never to an
 * announced size), so a peer cannot make us reserve memory it does not send. The frame
 * boundaries are tracked here too, and wslay is handed at most one frame at a time: so a
 * pause requested from on_message takes effect before the next frame is decoded, and
 * nothing is delivered while paused.
 *
 * Output: wslay writes into one output buffer owned by the codec and always takes every
 * byte, so wslay's own queue is empty after each call. That keeps frames in the order they
 * were queued (wslay would otherwise send control frames, a close included, before data
 * still in its queue) and lets the transport own all backpressure.
 */
#ifndef WARREN_WS_CODEC_H
#define WARREN_WS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Close codes (RFC 6455 section 7.4.1). */
enum ws_close_code {
        WS_CLOSE_NORMAL = 1000,
        WS_CLOSE_GOING_AWAY = 1001,
        WS_CLOSE_PROTOCOL = 1002,
        WS_CLOSE_NO_STATUS = 1005,  /* never sent: the peer's close frame had no code */
        WS_CLOSE_ABNORMAL = 1006,   /* never sent: the connection ended without a close frame */
        WS_CLOSE_BAD_DATA = 1007,   /* text that is not UTF-8 */
        WS_CLOSE_POLICY = 1008,
        WS_CLOSE_TOO_BIG = 1009,
        WS_CLOSE_INTERNAL = 1011,
};

/* Largest control-frame payload, and the longest close reason (125 less the code). */
#define WS_MAX_CONTROL 125
#define WS_MAX_REASON 123
/* Sec-WebSocket-Key is the base64 of 16 bytes; Sec-WebSocket-Accept of a SHA-1 digest. */
#define WS_KEY_LEN 24
#define WS_ACCEPT_LEN 28

struct ws_codec;

struct ws_codec_limits {
        size_t max_message;   /* largest message (all fragments); 0: 1 MiB */
        size_t max_fragments; /* most frames in one message; 0: 4096 */
};

/* A whole data message, fragments reassembled; text is valid UTF-8. data is only valid
 * during the call. The callback may call ws_codec_send/ping/close/pause, never
 * ws_codec_free() or ws_codec_feed(). */
typedef void (*ws_codec_message_cb)(void *ud, bool binary, const uint8_t *data, size_t len);

/* A codec for the server side of a connection (server: expects masked frames, sends
 * unmasked ones) or the client side (the reverse; masks come from getrandom). lim may be
 * NULL. 0 or -ENOMEM. */
int ws_codec_new(bool server, const struct ws_codec_limits *lim, ws_codec_message_cb on_message,
                 void *ud, struct ws_codec **ret);
/* Free (NULL is fine). Output not yet taken is dropped. */
void ws_codec_free(struct ws_codec *w);

/* Decode bytes read from the peer; messages are delivered from inside. Returns how many
 * bytes were consumed: all of them, except while paused (the rest must be fed again later,
 * in order). Once reading has stopped (ws_codec_reading() false) everything is consumed
 * and dropped. */
size_t ws_codec_feed(struct ws_codec *w, const uint8_t *data, size_t len);

/* Pause (or resume) decoding: while paused, ws_codec_feed() consumes nothing and delivers
 * nothing. Pausing from on_message stops before the next frame. */
void ws_codec_pause(struct ws_codec *w, bool paused);

/* Whether the codec still reads: false once a close frame was received or the connection
 * failed (a protocol violation or an internal error). */
bool ws_codec_reading(const struct ws_codec *w);

/* Queue a data message (copied). -EINVAL: text that is not valid UTF-8; -ENOTCONN: a close
 * frame was already queued or received, or the codec failed; -ENOMEM. */
int ws_codec_send(struct ws_codec *w, bool binary, const void *data, size_t len);
/* Queue a ping (payload at most 125 bytes, copied). Same errors. */
int ws_codec_ping(struct ws_codec *w, const void *data, size_t len);
/* Queue a close frame behind everything already queued. code: 1000-1003, 1007-1011 or
 * 3000-4999; reason may be NULL, is cut to 123 bytes (at a character boundary) and dropped
 * if it is not UTF-8. The codec goes on reading (and delivering messages) until the peer's
 * close frame. -EINVAL (code), -EALREADY (a close was already queued or received),
 * -ENOTCONN (failed), -ENOMEM. */
int ws_codec_close(struct ws_codec *w, uint16_t code, const char *reason);

/* Bytes waiting to be written to the peer (*ret_len, possibly 0). Valid until the next
 * call on w. */
const uint8_t *ws_codec_output(const struct ws_codec *w, size_t *ret_len);
/* n bytes of the output were written (taken by the transport). */
void ws_codec_output_done(struct ws_codec *w, size_t n);

/* Whether the codec is done: reading stopped and nothing more will be written (a close
 * frame is in the output, or memory ran out). The transport writes the output, then closes
 * the connection. While a close we sent waits for the peer's, the codec is not done. */
bool ws_codec_done(const struct ws_codec *w);
/* Whether a close frame is in the output (queued by us, or the echo of the peer's). */
bool ws_codec_close_sent(const struct ws_codec *w);
/* Whether the peer's close frame arrived. */
bool ws_codec_close_received(const struct ws_codec *w);
/* The code of the first close of the connection: ours if we closed (or failed it) first,
 * else the peer's (1005 if its frame had none); 0 while neither side closed. */
uint16_t ws_codec_close_code(const struct ws_codec *w);
/* Pongs received so far (tells a transport its pings are answered). */
uint64_t ws_codec_pongs(const struct ws_codec *w);

/* Whether s[0..len) is valid UTF-8 (no overlong forms, surrogates or values > U+10FFFF). */
bool ws_utf8_valid(const uint8_t *s, size_t len);
/* Whether key is a valid Sec-WebSocket-Key: exactly the base64 of 16 bytes. */
bool ws_key_valid(const char *key);
/* Sec-WebSocket-Accept for key: base64(SHA-1(key + the RFC 6455 GUID)), NUL-terminated in
 * out. 0, -EINVAL (key not valid) or -EIO (digest failure). */
int ws_accept_key(const char *key, char out[WS_ACCEPT_LEN + 1]);

#endif
