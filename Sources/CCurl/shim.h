// CCurl: libcurl for Swift. curl_easy_setopt and curl_easy_getinfo are variadic, which Swift
// cannot call, so each argument type gets one fixed-arity wrapper; the logic stays in Swift.
#ifndef IAP_CCURL_SHIM_H
#define IAP_CCURL_SHIM_H

#include <curl/curl.h>

typedef size_t (*iap_curl_data_callback)(char *data, size_t size, size_t count, void *userdata);

static inline CURLcode iap_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode iap_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode iap_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode iap_curl_setopt_callback(CURL *handle, CURLoption option, iap_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode iap_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

#endif
