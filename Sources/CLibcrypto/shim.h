// The parts of OpenSSL 3's libcrypto that turnkeeper uses, plus small helpers that keep
// OSSL_PARAM plumbing on the C side. Only non-deprecated OpenSSL 3 APIs are used.
#ifndef TURNKEEPER_CLIBCRYPTO_SHIM_H
#define TURNKEEPER_CLIBCRYPTO_SHIM_H

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

// An HMAC context keyed once with `key`, using the digest named `digest` ("SHA1", "SHA256").
// A NULL result means OpenSSL refused; the caller reads the error queue.
static inline EVP_MAC_CTX *turnkeeper_hmac_new(const char *digest, const unsigned char *key, size_t key_len) {
    static const unsigned char empty_key[1] = {0};
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) {
        return NULL;
    }
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);  // the context keeps its own reference
    if (ctx == NULL) {
        return NULL;
    }
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    // A NULL key would mean "keep the previous key"; an empty key must still be a key.
    if (EVP_MAC_init(ctx, key_len == 0 ? empty_key : key, key_len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

// One MAC with the context's key: reset to the keyed state, absorb `data`, write the tag.
// Returns the tag length, or 0 on failure.
static inline size_t turnkeeper_hmac_compute(EVP_MAC_CTX *ctx, const unsigned char *data, size_t data_len,
                                             unsigned char *out, size_t out_size) {
    size_t out_len = 0;
    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1) {
        return 0;
    }
    if (data_len > 0 && EVP_MAC_update(ctx, data, data_len) != 1) {
        return 0;
    }
    if (EVP_MAC_final(ctx, out, &out_len, out_size) != 1) {
        return 0;
    }
    return out_len;
}

// HKDF with SHA-256 (RFC 5869, extract then expand) into `out`. Returns 1 on success, 0 on failure.
static inline int turnkeeper_hkdf_sha256(const unsigned char *key, size_t key_len, const unsigned char *salt,
                                         size_t salt_len, const unsigned char *info, size_t info_len,
                                         unsigned char *out, size_t out_len) {
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    if (kdf == NULL) {
        return 0;
    }
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    EVP_KDF_free(kdf);
    if (ctx == NULL) {
        return 0;
    }
    OSSL_PARAM params[5];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, key_len);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
    params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
    params[4] = OSSL_PARAM_construct_end();
    int ok = EVP_KDF_derive(ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok;
}

// A certificate's subjectAltName entries, decoded once (NULL when it has none); free with
// turnkeeper_sans_free. The stack macros and GENERAL_NAME's union stay on this side.
static inline GENERAL_NAMES *turnkeeper_sans(const X509 *cert) {
    return (GENERAL_NAMES *)X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
}

static inline int turnkeeper_sans_count(const GENERAL_NAMES *names) { return sk_GENERAL_NAME_num(names); }

// Entry `index`: its type (GEN_DNS, GEN_IPADD or another) and, for those two, its bytes.
static inline int turnkeeper_san_at(const GENERAL_NAMES *names, int index, const unsigned char **data, int *length) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, index);
    *data = NULL;
    *length = 0;
    if (name == NULL) {
        return -1;
    }
    const ASN1_STRING *value = NULL;
    if (name->type == GEN_DNS) {
        value = name->d.dNSName;
    } else if (name->type == GEN_IPADD) {
        value = name->d.iPAddress;
    }
    if (value != NULL) {
        *data = ASN1_STRING_get0_data(value);
        *length = ASN1_STRING_length(value);
    }
    return name->type;
}

static inline void turnkeeper_sans_free(GENERAL_NAMES *names) { GENERAL_NAMES_free(names); }

#endif
