// COpenSSL: libcrypto for Swift. Only what Swift cannot import directly lives here
// (function-like macros); everything else is the plain OpenSSL 3 API.
#ifndef IAP_COPENSSL_SHIM_H
#define IAP_COPENSSL_SHIM_H

// Hide the deprecated EC_KEY/ECDSA_do_* API at compile time: we use EVP only.
#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

// OPENSSL_free is a macro over CRYPTO_free(ptr, file, line).
static inline void iap_ossl_free(void *ptr) { OPENSSL_free(ptr); }

// EVP_PKEY_PUBLIC_KEY / EVP_PKEY_KEYPAIR are compound macros.
static inline int iap_ossl_selection_public_key(void) { return EVP_PKEY_PUBLIC_KEY; }
static inline int iap_ossl_selection_keypair(void) { return EVP_PKEY_KEYPAIR; }

#endif
