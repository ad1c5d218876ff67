/* http.c - the CLI's HTTP client: one libcurl easy handle, JSON calls kept in memory
 * (bounded), binary downloads and uploads streamed between a file descriptor and the socket.
 *
 * Every request carries "Authorization: ApiKey KEY". The key is never printed: error
 * messages are built from the URL path, curl's error text and the server's answer only.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

/* Longest API key accepted (keys are short tokens; this only bounds a bad file). */
#define CLI_MAX_KEY 1024
/* A transfer moving less than 1 byte/s for this long is abandoned (when stall_guard). */
#define CLI_STALL_S 300L

/* Where a transfer's answer goes. */
struct sink {
        CURL *curl;
        char *data;      /* bytes kept in memory (the whole answer, or an error body) */
        size_t len, cap;
        size_t limit;    /* keep at most this many bytes */
        bool overflow;   /* more than limit arrived */
        bool fail_on_overflow; /* abort the transfer on overflow (JSON answers) */
        int fd;          /* stream a 2xx body here (downloads), -1 to keep it in memory */
        bool decided;    /* the status was looked at (first write) */
        bool to_fd;      /* the body goes to fd */
        int err;         /* negative errno of a failed local write */
        /* Line mode (a 2xx body of newline-delimited JSON): each complete line is handed to
         * on_line as it arrives; only an unfinished line is kept (at most limit bytes). */
        int (*on_line)(void *ud, const char *line, size_t len);
        void *line_ud;
        bool to_lines;
};

/* What an upload reads from. */
struct source {
        int fd;
        off_t start;        /* offset of fd when the upload began */
        uint64_t size;      /* bytes to send in all */
        uint64_t remaining; /* bytes still to send */
        int err;            /* negative errno of a failed read, -EPIPE if the file shrank */
};

/* Set c->err to a local failure (no HTTP status). */
static void set_error(struct cli *c, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void set_error(struct cli *c, const char *code, const char *fmt, ...)
{
        char raw[sizeof(c->err.message)];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(raw, sizeof(raw), fmt, ap);
        va_end(ap);
        c->err.status = 0;
        snprintf(c->err.code, sizeof(c->err.code), "%s", code);
        cli_sanitize(raw, c->err.message, sizeof(c->err.message));
}

/* Read the admin key file if it is readable; NULL otherwise (a missing or unreadable file
 * is not an error: it only means this user is not the administrator). */
static char *read_key_file(const char *path)
{
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        char buf[CLI_MAX_KEY + 1];
        size_t len = 0;

        if (fd < 0)
                return NULL;
        while (len < sizeof(buf) - 1) {
                ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = '\0';
        while (len > 0 && isspace((unsigned char)buf[len - 1]))
                buf[--len] = '\0';
        return len > 0 ? strdup(buf) : NULL;
}

/* A key goes into a header line: refuse anything that could split or bend it. */
static bool key_is_valid(const char *key)
{
        size_t len = strlen(key);

        if (len == 0 || len > CLI_MAX_KEY)
                return false;
        for (const char *p = key; *p; p++)
                if (*p <= ' ' || *p == 0x7f)
                        return false;
        return true;
}

int cli_ready(struct cli *c, bool need_key)
{
        if (!c->curl) {
                const char *url = c->url_opt;

                if (!url || !*url)
                        url = getenv("WARREN_URL");
                if (!url || !*url)
                        url = CLI_DEFAULT_URL;
                if (strncmp(url, "unix:", 5) == 0) {
                        const char *path = url + 5;

                        /* unix:///run/x.sock is accepted as well as unix:/run/x.sock */
                        if (strncmp(path, "//", 2) == 0)
                                path += 2;
                        if (!*path) {
                                fprintf(stderr, "warren: --url unix: needs a socket path\n");
                                return CLI_EXIT_USAGE;
                        }
                        c->unix_path = strdup(path);
                        /* The host name only fills the Host header; the socket decides. */
                        c->base_url = strdup("http://localhost");
                } else if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) {
                        c->base_url = strdup(url);
                        if (c->base_url) {
                                size_t n = strlen(c->base_url);
                                while (n > 0 && c->base_url[n - 1] == '/')
                                        c->base_url[--n] = '\0';
                        }
                } else {
                        fputs("warren: the URL must start with http://, https:// or unix:\n",
                              stderr);
                        return CLI_EXIT_USAGE;
                }
                if (!c->base_url || (strncmp(url, "unix:", 5) == 0 && !c->unix_path)) {
                        fputs("warren: out of memory\n", stderr);
                        return CLI_EXIT_FAIL;
                }
                c->curl = curl_easy_init();
                if (!c->curl) {
                        fputs("warren: cannot initialise libcurl\n", stderr);
                        return CLI_EXIT_FAIL;
                }
        }

        if (!c->api_key) {
                const char *key = c->key_opt;

                if (!key || !*key)
                        key = getenv("WARREN_API_KEY");
                if (key && *key)
                        c->api_key = strdup(key);
                else
                        c->api_key = read_key_file(CLI_ADMIN_KEY_FILE);
                if (c->api_key && !key_is_valid(c->api_key)) {
                        free(c->api_key);
                        c->api_key = NULL;
                        fputs("warren: the API key contains spaces or control characters\n",
                              stderr);
                        return CLI_EXIT_USAGE;
                }
        }
        if (need_key && !c->api_key) {
                fputs("warren: no API key: pass --api-key, set WARREN_API_KEY, or make "
                      CLI_ADMIN_KEY_FILE " readable\n",
                      stderr);
                return CLI_EXIT_USAGE;
        }
        return 0;
}

void cli_http_done(struct cli *c)
{
        if (c->curl)
                curl_easy_cleanup(c->curl);
        c->curl = NULL;
        if (c->api_key)
                explicit_bzero(c->api_key, strlen(c->api_key));
        free(c->api_key);
        free(c->base_url);
        free(c->unix_path);
        c->api_key = c->base_url = c->unix_path = NULL;
}

int cli_fail(struct cli *c)
{
        if (c->err.status > 0)
                fprintf(stderr, "warren: %s (%s, HTTP %ld)\n", c->err.message, c->err.code,
                        c->err.status);
        else
                fprintf(stderr, "warren: %s\n", c->err.message);
        return CLI_EXIT_FAIL;
}

char *cli_escape(struct cli *c, const char *s)
{
        char *e = curl_easy_escape(c->curl, s, 0);
        char *copy;

        if (!e)
                return NULL;
        copy = strdup(e);
        curl_free(e);
        return copy;
}

char *cli_sandbox_path(struct cli *c, const char *id, const char *suffix)
{
        cleanup_free char *eid = cli_escape(c, id);

        return eid ? cli_strf("/api/v1/sandbox/%s%s", eid, suffix) : NULL;
}

char *cli_sandbox_file_path(struct cli *c, const char *id, const char *suffix, const char *path)
{
        cleanup_free char *base = cli_sandbox_path(c, id, suffix);
        cleanup_free char *epath = cli_escape(c, path);

        return base && epath ? cli_strf("%s?path=%s", base, epath) : NULL;
}

void cli_answer_done(struct cli_answer *a)
{
        json_decref(a->json);
        free(a->body);
        a->json = NULL;
        a->body = NULL;
        a->len = 0;
}

/* Append to the sink's memory, up to its limit; the rest is counted as overflow. Returns
 * false only when out of memory. */
static bool sink_keep(struct sink *s, const char *ptr, size_t len)
{
        if (len > s->limit - s->len) {
                s->overflow = true;
                len = s->limit - s->len;
        }
        if (len == 0)
                return true;
        if (s->len + len + 1 > s->cap) {
                size_t cap = s->cap ? s->cap : 4096;
                char *p;

                while (cap < s->len + len + 1)
                        cap *= 2;
                p = realloc(s->data, cap);
                if (!p)
                        return false;
                s->data = p;
                s->cap = cap;
        }
        memcpy(s->data + s->len, ptr, len);
        s->len += len;
        s->data[s->len] = '\0';
        return true;
}

/* CURLOPT_WRITEFUNCTION. Decides on the first call (the status line has been read by then)
 * whether the body is streamed to fd (a 2xx answer of a download) or kept in memory (JSON
 * answers and every error body, so an error never lands in the user's file). */
static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct sink *s = userdata;
        size_t len = size * nmemb;

        if (!s->decided) {
                long status = 0;

                curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
                s->to_fd = s->fd >= 0 && status >= 200 && status < 300;
                s->to_lines = s->on_line && status >= 200 && status < 300;
                s->decided = true;
        }
        if (s->to_lines) {
                if (!sink_keep(s, ptr, len)) {
                        s->err = -ENOMEM;
                        return 0;
                }
                if (s->overflow)
                        return 0; /* one line larger than the limit: give up */
                size_t start = 0;
                for (size_t i = 0; i < s->len; i++) {
                        if (s->data[i] != '\n')
                                continue;
                        int r = s->on_line(s->line_ud, s->data + start, i - start);
                        if (r < 0) {
                                s->err = r;
                                return 0;
                        }
                        start = i + 1;
                }
                memmove(s->data, s->data + start, s->len - start);
                s->len -= start;
                return len;
        }
        if (s->to_fd) {
                int r = util_write_all(s->fd, ptr, len);
                if (r < 0) {
                        s->err = r;
                        return 0;
                }
                return len;
        }
        if (!sink_keep(s, ptr, len)) {
                s->err = -ENOMEM;
                return 0;
        }
        if (s->overflow && s->fail_on_overflow)
                return 0;
        return len;
}

/* CURLOPT_READFUNCTION: the next bytes of the upload, never more than announced. */
static size_t source_read(char *buf, size_t size, size_t nitems, void *userdata)
{
        struct source *src = userdata;
        size_t want = size * nitems;
        ssize_t n;

        if (want > src->remaining)
                want = (size_t)src->remaining;
        if (want == 0)
                return 0;
        do
                n = read(src->fd, buf, want);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                src->err = -errno;
                return CURL_READFUNC_ABORT;
        }
        if (n == 0) {
                /* The file shrank after its size was sent in Content-Length. */
                src->err = -EPIPE;
                return CURL_READFUNC_ABORT;
        }
        src->remaining -= (uint64_t)n;
        return (size_t)n;
}

/* CURLOPT_SEEKFUNCTION: lets curl rewind the upload if it must resend it. */
static int source_seek(void *userdata, curl_off_t offset, int origin)
{
        struct source *src = userdata;

        if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > src->size)
                return CURL_SEEKFUNC_CANTSEEK;
        if (lseek(src->fd, src->start + (off_t)offset, SEEK_SET) < 0)
                return CURL_SEEKFUNC_CANTSEEK;
        src->remaining = src->size - (uint64_t)offset;
        return CURL_SEEKFUNC_OK;
}

/* Set the options every request shares and build its header list (into *ret_headers). */
static int prepare(struct cli *c, const char *method, const char *path, bool json_body,
                   char *errbuf, struct curl_slist **ret_headers)
{
        struct curl_slist *headers = NULL, *h;
        cleanup_free char *url = NULL;
        cleanup_free char *auth = NULL;

        url = cli_strf("%s%s", c->base_url, path);
        if (!url)
                return -ENOMEM;
        curl_easy_reset(c->curl);
        curl_easy_setopt(c->curl, CURLOPT_URL, url);
        if (c->unix_path)
                curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, CLI_CONNECT_TIMEOUT_S);
        if (c->max_time_ms > 0)
                curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->max_time_ms);
        if (c->stall_guard) {
                curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
                curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, CLI_STALL_S);
        }
        curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "warren/" WARREN_VERSION);
        curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
        errbuf[0] = '\0';

        if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 &&
            strcmp(method, "PUT") != 0)
                curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);

        if (c->api_key) {
                auth = cli_strf("Authorization: ApiKey %s", c->api_key);
                if (!auth)
                        return -ENOMEM;
                h = curl_slist_append(headers, auth);
                explicit_bzero(auth, strlen(auth));
                if (!h)
                        goto oom;
                headers = h;
        }
        if (json_body) {
                h = curl_slist_append(headers, "Content-Type: application/json");
                if (!h)
                        goto oom;
                headers = h;
        }
        /* No "Expect: 100-continue": it only adds a round trip (or a 1 s wait) here. */
        h = curl_slist_append(headers, "Expect:");
        if (!h)
                goto oom;
        headers = h;
        h = curl_slist_append(headers, "Accept: application/json, application/octet-stream");
        if (!h)
                goto oom;
        headers = h;
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
        *ret_headers = headers;
        return 0;
oom:
        curl_slist_free_all(headers);
        return -ENOMEM;
}

void cli_set_http_error(struct cli *c, long status, const char *body, size_t len)
{
        json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
        json_t *e = root ? json_object_get(root, "error") : NULL;
        const char *code = json_string_value(json_object_get(e, "code"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        char line[256] = "";

        if (!msg && body && len) {
                size_t n = strcspn(body, "\r\n");
                if (n >= sizeof(line))
                        n = sizeof(line) - 1;
                memcpy(line, body, n);
                line[n] = '\0';
        }
        if (!msg)
                msg = line[0] ? line : "the server answered an error";
        c->err.status = status;
        cli_sanitize(code ? code : "http_error", c->err.code, sizeof(c->err.code));
        cli_sanitize(msg, c->err.message, sizeof(c->err.message));
        json_decref(root);
}

/* Fill c->err from a failed curl_easy_perform(). */
static void set_transport_error(struct cli *c, CURLcode rc, const char *errbuf,
                                const struct sink *s, const struct source *src)
{
        const char *where = c->unix_path ? c->unix_path : c->base_url;

        if (s && s->err)
                set_error(c, "local", "writing the answer: %s", strerror(-s->err));
        else if (s && s->overflow && s->fail_on_overflow)
                set_error(c, "local", "the answer is larger than the limit of %zu bytes",
                          s->limit);
        else if (src && src->err == -EPIPE)
                set_error(c, "local", "the file shrank while it was being sent");
        else if (src && src->err)
                set_error(c, "local", "reading the file: %s", strerror(-src->err));
        else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
                set_error(c, "transport", "cannot connect to %s: %s", where,
                          errbuf[0] ? errbuf : curl_easy_strerror(rc));
        else
                set_error(c, "transport", "request to %s failed: %s", where,
                          errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

/* Run the prepared request and sort out its outcome. 0 on a 2xx answer; -EPROTO otherwise
 * with c->err filled. */
static int perform(struct cli *c, struct sink *s, const struct source *src, const char *errbuf,
                   long *ret_status)
{
        CURLcode rc;
        long status = 0;

        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, sink_write);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, s);
        rc = curl_easy_perform(c->curl);
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        /* A server may answer an error and close before the whole upload was sent (curl
         * then reports a send or receive error): its answer is the better explanation. */
        if (rc != CURLE_OK && !(status >= 300 && s->err == 0 && !s->overflow)) {
                set_transport_error(c, rc, errbuf, s, src);
                return -EPROTO;
        }
        if (status < 200 || status >= 300) {
                cli_set_http_error(c, status, s->data, s->len);
                return -EPROTO;
        }
        *ret_status = status;
        return 0;
}

/* Move a finished in-memory sink into an answer, parsing it as JSON. */
static int finish_answer(struct cli *c, struct sink *s, long status, struct cli_answer *ret)
{
        json_t *json = NULL;

        if (s->len > 0) {
                json = json_loadb(s->data, s->len, JSON_ALLOW_NUL, NULL);
                if (!json) {
                        set_error(c, "invalid_answer", "the server's answer is not JSON");
                        return -EPROTO;
                }
        }
        ret->status = status;
        ret->body = s->data ? s->data : strdup("");
        ret->len = s->len;
        ret->json = json;
        s->data = NULL;
        if (!ret->body) {
                json_decref(json);
                set_error(c, "local", "out of memory");
                return -EPROTO;
        }
        return 0;
}

int cli_call(struct cli *c, const char *method, const char *path, const json_t *body,
             struct cli_answer *ret)
{
        char errbuf[CURL_ERROR_SIZE];
        struct curl_slist *headers = NULL;
        struct sink s = { .curl = c->curl, .limit = CLI_MAX_ANSWER, .fail_on_overflow = true,
                          .fd = -1 };
        cleanup_free char *payload = NULL;
        long status = 0;
        int r;

        if (body) {
                payload = json_dumps(body, JSON_COMPACT);
                if (!payload) {
                        set_error(c, "local", "out of memory");
                        return -EPROTO;
                }
        }
        r = prepare(c, method, path, body != NULL, errbuf, &headers);
        if (r < 0) {
                set_error(c, "local", "out of memory");
                return -EPROTO;
        }
        if (strcmp(method, "POST") == 0 || payload) {
                curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
                curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, payload ? payload : "");
                curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                                 (curl_off_t)(payload ? strlen(payload) : 0));
                if (strcmp(method, "POST") != 0)
                        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
        }
        r = perform(c, &s, NULL, errbuf, &status);
        curl_slist_free_all(headers);
        if (r == 0)
                r = finish_answer(c, &s, status, ret);
        free(s.data);
        return r;
}

int cli_call_lines(struct cli *c, const char *path, const json_t *body,
                   int (*on_line)(void *ud, const char *line, size_t len), void *ud)
{
        char errbuf[CURL_ERROR_SIZE];
        struct curl_slist *headers = NULL;
        struct sink s = { .curl = c->curl, .limit = CLI_MAX_ANSWER, .fail_on_overflow = true,
                          .fd = -1, .on_line = on_line, .line_ud = ud };
        cleanup_free char *payload = json_dumps(body, JSON_COMPACT);
        long status = 0;
        int r;

        if (!payload) {
                set_error(c, "local", "out of memory");
                return -EPROTO;
        }
        r = prepare(c, "POST", path, true, errbuf, &headers);
        if (r < 0) {
                set_error(c, "local", "out of memory");
                return -EPROTO;
        }
        curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(payload));
        r = perform(c, &s, NULL, errbuf, &status);
        curl_slist_free_all(headers);
        /* A last line without its newline still counts. */
        if (r == 0 && s.to_lines && s.len > 0 && s.on_line(s.line_ud, s.data, s.len) < 0)
                r = -EPROTO;
        free(s.data);
        return r;
}

int cli_download(struct cli *c, const char *path, int fd)
{
        char errbuf[CURL_ERROR_SIZE];
        struct curl_slist *headers = NULL;
        struct sink s = { .curl = c->curl, .limit = CLI_MAX_ERROR_BODY, .fd = fd };
        long status = 0;
        int r;

        r = prepare(c, "GET", path, false, errbuf, &headers);
        if (r < 0) {
                set_error(c, "local", "out of memory");
                return -EPROTO;
        }
        r = perform(c, &s, NULL, errbuf, &status);
        curl_slist_free_all(headers);
        free(s.data);
        return r;
}

int cli_upload(struct cli *c, const char *path, int fd, uint64_t size, struct cli_answer *ret)
{
        char errbuf[CURL_ERROR_SIZE];
        struct curl_slist *headers = NULL, *h;
        struct sink s = { .curl = c->curl, .limit = CLI_MAX_ANSWER, .fail_on_overflow = true,
                          .fd = -1 };
        struct source src = { .fd = fd, .size = size, .remaining = size };
        long status = 0;
        int r;

        src.start = lseek(fd, 0, SEEK_CUR);
        if (src.start < 0)
                src.start = 0;
        r = prepare(c, "PUT", path, false, errbuf, &headers);
        if (r == 0) {
                h = curl_slist_append(headers, "Content-Type: application/octet-stream");
                if (!h)
                        r = -ENOMEM;
                else
                        headers = h;
        }
        if (r < 0) {
                curl_slist_free_all(headers);
                set_error(c, "local", "out of memory");
                return -EPROTO;
        }
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, source_read);
        curl_easy_setopt(c->curl, CURLOPT_READDATA, &src);
        curl_easy_setopt(c->curl, CURLOPT_SEEKFUNCTION, source_seek);
        curl_easy_setopt(c->curl, CURLOPT_SEEKDATA, &src);
        curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
        r = perform(c, &s, &src, errbuf, &status);
        curl_slist_free_all(headers);
        if (r == 0)
                r = finish_answer(c, &s, status, ret);
        free(s.data);
        return r;
}
