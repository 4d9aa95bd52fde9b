/*
 * mllp_io: one MLLP connection's byte stream, plain TCP or TLS (OpenSSL),
 * behind one read/write interface, and the server's TLS context.
 *
 * TLS: TLS 1.2 or later, the server's certificate chain and key from PEM
 * files; with a client CA file, every client must present a certificate
 * that chains to it (mutual TLS, as hospital networks often require).
 * Files are read once at start.
 *
 * Timeouts are the socket's (SO_RCVTIMEO / SO_SNDTIMEO, set by the caller):
 * a read or write that waits longer fails with errno EAGAIN.
 *
 * Thread-safety: a struct mllp_tls may be shared by every connection
 * thread once made (OpenSSL's SSL_CTX is thread-safe for SSL_new); a
 * struct mllp_io is one thread's.
 */
#ifndef VIGIL_MLLP_IO_H
#define VIGIL_MLLP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct mllp_tls;

/* Loads CERT (PEM chain) and KEY (PEM); CLIENT_CA (PEM, may be NULL or "")
 * turns on client certificate verification. Returns NULL with errstr
 * ("could not load TLS certificate FILE: reason") on failure. */
struct mllp_tls *mllp_tls_new(const char *cert, const char *key, const char *client_ca,
                              char *errstr, size_t errstr_size);

/* Frees T. NULL is a no-op. */
void mllp_tls_destroy(struct mllp_tls *t);

struct mllp_io {
    int fd;
    void *ssl; /* SSL *, NULL for plain TCP */
};

/* Takes socket FD; with TLS (T non-NULL) runs the server handshake.
 * Returns 0, or -1 with errstr (the socket is then still the caller's to
 * close through mllp_io_close). */
int mllp_io_start(struct mllp_io *io, int fd, struct mllp_tls *t, char *errstr,
                  size_t errstr_size);

/* Reads up to N bytes. Returns > 0, 0 at the peer's orderly close, -1 on
 * error or timeout (errno EAGAIN). */
ssize_t mllp_io_read(struct mllp_io *io, void *buf, size_t n);

/* Writes all N bytes. Returns 0 or -1. */
int mllp_io_write(struct mllp_io *io, const void *buf, size_t n);

/* True when TLS holds decrypted bytes not yet read (poll() cannot see them). */
bool mllp_io_pending(const struct mllp_io *io);

/* Shuts TLS down (best effort) and closes the socket. */
void mllp_io_close(struct mllp_io *io);

#endif
