/*
 * mllp_io: plain and TLS connection I/O (contract in mllp_io.h), over
 * OpenSSL from Debian (libssl).
 */
#include "mllp_io.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct mllp_tls {
    SSL_CTX *ctx;
};

static void ssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, n, "unknown TLS error");
    else
        ERR_error_string_n(e, buf, n);
    ERR_clear_error();
}

struct mllp_tls *mllp_tls_new(const char *cert, const char *key, const char *client_ca,
                              char *errstr, size_t errstr_size)
{
    char why[256];
    struct mllp_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (t->ctx == NULL) {
        ssl_reason(why, sizeof why);
        snprintf(errstr, errstr_size, "could not create a TLS context: %s", why);
        goto err;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1) {
        ssl_reason(why, sizeof why);
        snprintf(errstr, errstr_size, "could not load TLS certificate %s: %s", cert, why);
        goto err;
    }
    if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(t->ctx) != 1) {
        ssl_reason(why, sizeof why);
        snprintf(errstr, errstr_size, "could not load TLS key %s: %s", key, why);
        goto err;
    }
    if (client_ca != NULL && client_ca[0] != '\0') {
        if (SSL_CTX_load_verify_locations(t->ctx, client_ca, NULL) != 1) {
            ssl_reason(why, sizeof why);
            snprintf(errstr, errstr_size, "could not load TLS client CA %s: %s", client_ca, why);
            goto err;
        }
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return t;
err:
    mllp_tls_destroy(t);
    return NULL;
}

void mllp_tls_destroy(struct mllp_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

int mllp_io_start(struct mllp_io *io, int fd, struct mllp_tls *t, char *errstr,
                  size_t errstr_size)
{
    io->fd = fd;
    io->ssl = NULL;
    if (t == NULL)
        return 0;
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
        char why[256];
        ssl_reason(why, sizeof why);
        snprintf(errstr, errstr_size, "could not start TLS: %s", why);
        SSL_free(ssl);
        return -1;
    }
    io->ssl = ssl;
    if (SSL_accept(ssl) != 1) {
        char why[256];
        ssl_reason(why, sizeof why);
        snprintf(errstr, errstr_size, "TLS handshake failed: %s", why);
        return -1;
    }
    return 0;
}

ssize_t mllp_io_read(struct mllp_io *io, void *buf, size_t n)
{
    if (io->ssl == NULL) {
        for (;;) {
            ssize_t r = recv(io->fd, buf, n, 0);
            if (r < 0 && errno == EINTR)
                continue;
            return r;
        }
    }
    int r = SSL_read(io->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(io->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        errno = EAGAIN;
    else if (e != SSL_ERROR_SYSCALL)
        errno = EPROTO;
    return -1;
}

int mllp_io_write(struct mllp_io *io, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        if (io->ssl == NULL) {
            ssize_t w = send(io->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            p += w;
            n -= (size_t)w;
        } else {
            int w = SSL_write(io->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
            if (w <= 0) {
                ERR_clear_error();
                return -1;
            }
            p += w;
            n -= (size_t)w;
        }
    }
    return 0;
}

bool mllp_io_pending(const struct mllp_io *io)
{
    return io->ssl != NULL && SSL_pending(io->ssl) > 0;
}

void mllp_io_close(struct mllp_io *io)
{
    if (io->ssl != NULL) {
        SSL_shutdown(io->ssl);
        SSL_free(io->ssl);
        ERR_clear_error();
        io->ssl = NULL;
    }
    if (io->fd >= 0)
        close(io->fd);
    io->fd = -1;
}
