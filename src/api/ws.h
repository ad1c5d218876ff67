/* ws.h - WebSocket connections on the HTTP server (RFC 6455, version 13).
 *
 * A handler turns a request into a WebSocket from on_request (or later, answering
 * asynchronously) with http_ws_accept(): the server answers 101 Switching Protocols and the
 * connection then carries frames. Bytes the client sent right behind the upgrade request
 * (even in the same packet) are the first frames. The connection keeps counting in
 * http_server_connections() and max_connections, but no longer follows the HTTP timeouts:
 * it has its own ping and idle handling (struct ws_limits). Framing, limits, UTF-8 and the
 * close handshake are handled by src/common/ws_codec.c (wslay underneath).
 *
 * Callbacks run on the loop thread, never from inside a ws_* call, and on_close never from
 * inside another callback of the same connection: the handler may call any ws_* function
 * from on_message/on_drain, and from anywhere else on the loop thread, until on_close.
 *
 * Lifetime: a ws_conn is valid from http_ws_accept() until on_close returns; on_close is
 * called exactly once, on the loop iteration after the connection ended, whatever ended
 * it (close handshake, a protocol violation, a limit, an idle timeout, the peer going away,
 * http_server_close()). From the moment the connection ends until then, ws_send() returns
 * -ENOTCONN and the other calls do nothing.
 *
 * Backpressure, out: ws_send() returns the bytes queued and not yet written; it refuses
 * (-ENOBUFS) a message that would take the queue above max_queued (an empty queue takes any
 * message), and on_drain says when the queue emptied. Backpressure, in: ws_pause() stops
 * reading (no on_message until ws_resume()); the idle clock does not run while paused.
 */
#ifndef WARREN_WS_H
#define WARREN_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http.h"

struct ws_conn;

struct ws_ops {
        /* A whole message (fragments reassembled). Text messages are valid UTF-8 (checked).
         * data is only valid during the call. Required. */
        void (*on_message)(struct ws_conn *ws, bool binary, const uint8_t *data, size_t len,
                           void *ud);
        /* Once, when the connection is gone. code: the first close of the connection, ours
         * or the peer's: the peer's code when it closed (1005 if its frame had none), ours
         * when we closed or failed it (1002 protocol error, 1007 text not UTF-8, 1008 too
         * many fragments, 1009 message too big, 1001 idle timeout or server shutdown,
         * 1011 out of memory, or what ws_close() was given), 1006 when the connection
         * ended with no close frame either way. After it returns, ws is freed. Required. */
        void (*on_close)(struct ws_conn *ws, uint16_t code, void *ud);
        /* Optional: the outgoing queue emptied after having held bytes. */
        void (*on_drain)(struct ws_conn *ws, void *ud);
};

/* A value for ping_interval_ms / idle_timeout_ms that turns the feature off. */
#define WS_OFF UINT32_MAX

/* Zero fields take the defaults. */
struct ws_limits {
        size_t max_message;        /* largest message received; default 1 MiB; larger: 1009 */
        size_t max_fragments;      /* most frames in one message; default 4096; more: 1008 */
        size_t max_queued;         /* outgoing bytes above which ws_send refuses; 16 MiB */
        uint32_t ping_interval_ms; /* ping a peer silent this long; default 30 s */
        uint32_t idle_timeout_ms;  /* nothing received (pongs count) for this long: close
                                    * 1001; also the limit for a write that makes no
                                    * progress (then the connection is dropped); 120 s */
        uint32_t close_timeout_ms; /* wait this long for the peer's close frame after ours
                                    * is written, then drop the connection; default 5 s */
};

/* Whether req is a WebSocket upgrade request: HTTP/1.1 GET without a body, Upgrade:
 * websocket, Connection containing "upgrade", Sec-WebSocket-Version: 13 and a
 * Sec-WebSocket-Key that is the base64 of 16 bytes. */
bool http_req_is_ws(const struct http_req *req);

/* Answer req with 101 Switching Protocols and turn its connection into a WebSocket. Call
 * it from on_request or later, instead of answering: the request then counts as answered
 * (the server frees it; it stays readable until the handler returns). Headers added with
 * http_req_add_header() before the call go into the 101 answer (e.g. an
 * Sec-WebSocket-Protocol echo). lim may be NULL. Returns 0 and *ret, or:
 *   -EINVAL    req is not an upgrade request (see http_req_is_ws), was already answered,
 *              or its body was not received yet (called from on_headers): the caller
 *              answers it (e.g. 400 or 426);
 *   -ENOTCONN  the client is gone: the caller answers as for any aborted request;
 *   -ENOMEM    the caller answers (503).
 * The first callback can come on the next loop iteration at the earliest. */
int http_ws_accept(struct http_req *req, const struct ws_ops *ops, void *ud,
                   const struct ws_limits *lim, struct ws_conn **ret);

/* Queue a message (copied). Returns the bytes queued and not yet written (>= 0: it may all
 * be written at once), or -ENOBUFS (the queue holds bytes and this message would take it
 * above max_queued: wait for on_drain), -ENOTCONN (closing or closed), -EINVAL (text that
 * is not UTF-8), -ENOMEM. */
ssize_t ws_send(struct ws_conn *ws, bool binary, const void *data, size_t len);
/* Bytes queued and not yet written. */
size_t ws_queued(const struct ws_conn *ws);

/* Stop reading from the peer: no on_message until ws_resume(). Pausing from on_message
 * takes effect before the next frame. Bytes keep arriving into a bounded buffer (up to
 * about 128 KiB), then TCP pushes back. */
void ws_pause(struct ws_conn *ws);
/* Resume reading; what waited is delivered on a later loop iteration, not from here. */
void ws_resume(struct ws_conn *ws);

/* Close: a close frame with code (1000-1003, 1007-1011, 3000-4999; anything else sends
 * 1000) and reason (may be NULL; cut to 123 bytes) goes out after everything already
 * queued. No message is delivered after this. on_close follows once the peer answers, or
 * close_timeout_ms after our frame was written. Calling it again does nothing. */
void ws_close(struct ws_conn *ws, uint16_t code, const char *reason);

/* Replace the ud passed to the callbacks. */
void ws_set_user(struct ws_conn *ws, void *ud);

#endif
