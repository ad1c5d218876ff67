/* ws_client.h - a small WebSocket client for the CLI (`warren attach`, `warren shell`).
 *
 * wsc_connect() connects (TCP to the URL's host, or a unix socket) and performs the opening
 * handshake, blocking up to a timeout. After that everything is non-blocking and driven by
 * poll(): poll wsc_fd() for wsc_events(), call wsc_on_readable() on POLLIN (it delivers whole
 * messages to the on_message callback and answers pings) and wsc_on_writable() on POLLOUT
 * (it writes what wsc_send() could not write at once). Frames are masked (RFC 6455 5.3);
 * framing, limits and UTF-8 checks are src/common/ws_codec.c over wslay.
 *
 * No TLS: https:// and wss:// URLs are refused (-EPROTONOSUPPORT).
 *
 * Typical loop:
 *      struct pollfd p[2] = { { .fd = wsc_fd(c) }, { .fd = 0, .events = POLLIN } };
 *      for (;;) {
 *              p[0].events = wsc_events(c);
 *              p[1].events = wsc_queued(c) < 1 << 20 ? POLLIN : 0;   (stdin backpressure)
 *              poll(p, 2, -1);
 *              if (p[0].revents & POLLOUT) wsc_on_writable(c);
 *              if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
 *                      r = wsc_on_readable(c);
 *                      if (r != 0) break;   (WSC_CLOSED: see wsc_close_code(); < 0: error)
 *              }
 *              ... read stdin, wsc_send() ...
 *      }
 */
#ifndef WARREN_WS_CLIENT_H
#define WARREN_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct wsc;

/* A whole message (fragments reassembled; text is valid UTF-8). data is only valid during
 * the call. May call wsc_send() and wsc_close(), not wsc_free(). Also called from inside
 * wsc_connect() for messages that arrived together with the handshake answer. */
typedef void (*wsc_message_cb)(struct wsc *c, void *ud, bool binary, const uint8_t *data,
                               size_t len);

struct wsc_options {
        /* http://HOST[:PORT][/PATH][?QUERY] (ws:// is the same); HOST is a name, an IPv4
         * address or [IPv6]; PORT defaults to 80. Required, also with unix_path (it gives
         * the Host header, the path and the query). */
        const char *url;
        /* Connect to this unix socket instead of HOST:PORT (e.g. DATA_DIR/warren.sock). */
        const char *unix_path;
        /* Extra request headers, "Name: value" each, NULL-terminated (e.g. Authorization).
         * May be NULL. CR, LF and NUL are refused (-EINVAL). */
        const char *const *headers;
        int timeout_ms;     /* connect and handshake; 0: 10 s */
        size_t max_message; /* largest message accepted from the server; 0: 64 MiB */
        wsc_message_cb on_message; /* required */
        void *ud;
};

/* What a server that refused the upgrade answered: its HTTP status (0 if the answer was
 * not HTTP) and up to 64 KiB of its body (NUL-terminated; free() it). */
struct wsc_refusal {
        int status;
        char *body;
        size_t len;
};

/* Returned by wsc_on_readable() once the connection is over (see wsc_close_code()). */
#define WSC_CLOSED 1

/* Connect and perform the handshake. 0 and *ret, or -EINVAL (options, URL), -ENAMETOOLONG,
 * -EPROTONOSUPPORT (https/wss), -ETIMEDOUT, a connect() or getaddrinfo failure (-ENOENT: the
 * host name did not resolve), -ECONNRESET (closed during the handshake), or -EPROTO: the
 * server did not switch protocols (ret_refusal, if not NULL, gets its status and body;
 * release the body with free()) or its answer was not a valid WebSocket handshake. */
int wsc_connect(const struct wsc_options *o, struct wsc **ret, struct wsc_refusal *ret_refusal);

/* The socket, for poll(). */
int wsc_fd(const struct wsc *c);
/* The poll() events to wait for: POLLIN while the connection is open, POLLOUT while output
 * waits. */
short wsc_events(const struct wsc *c);

/* Read what the socket has (without blocking), deliver whole messages, answer pings. 0:
 * still open; WSC_CLOSED: the connection is over (close frames exchanged, or the server
 * went away: see wsc_close_code()); negative errno on a socket error (the connection is
 * over too). */
int wsc_on_readable(struct wsc *c);
/* Write queued output without blocking. 0, or negative errno (socket error). */
int wsc_on_writable(struct wsc *c);

/* Queue a message (copied) and write what the socket takes now. 0, -ENOTCONN (closing or
 * closed), -EINVAL (text that is not UTF-8), -ENOMEM, or a socket error. */
int wsc_send(struct wsc *c, bool binary, const void *data, size_t len);
/* Bytes queued and not yet written (stop producing while this is large). */
size_t wsc_queued(const struct wsc *c);

/* Start the close handshake: a close frame with code (1000-1003, 1007-1011, 3000-4999) and
 * reason (may be NULL) goes out after what is queued; wsc_on_readable() returns WSC_CLOSED
 * when the server answers. 0, -EINVAL (code), -EALREADY, -ENOTCONN, or a socket error. */
int wsc_close(struct wsc *c, uint16_t code, const char *reason);
/* wsc_close(), then drive the connection (blocking, messages still delivered) until the
 * server's close arrives or timeout_ms passes. 0 when the handshake completed, -ETIMEDOUT,
 * or an error as above. */
int wsc_close_wait(struct wsc *c, uint16_t code, const char *reason, int timeout_ms);

/* Whether the connection is over. */
bool wsc_closed(const struct wsc *c);
/* The first close of the connection: the server's code if it closed first (1005: its
 * frame had none), ours if we did, 1002/1007/1008/1009 if we failed it (the server broke
 * the protocol or a limit), 1006 if it ended without a close frame; 0 while open. */
uint16_t wsc_close_code(const struct wsc *c);

/* Close the socket and free (NULL is fine). No close frame is sent: use wsc_close first. */
void wsc_free(struct wsc *c);

#endif
