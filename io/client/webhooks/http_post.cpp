#include "io/client/webhooks/http_post.hpp"

#include <curl/curl.h>

namespace loyalty::webhooks {

namespace {

// The answer's body is not used: read and dropped, so no answer, however
// large, is held in memory.
std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

int abort_on_stop(void* stop, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(stop)->load() ? 1 : 0;
}

} // namespace

http_poster::http_poster(const endpoint_settings& ep, const std::atomic<bool>& stop) : ep_(ep), stop_(stop) {
  curl_ = curl_easy_init();
}

http_poster::~http_poster() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

post_result http_poster::post(const std::string& body, const std::vector<std::string>& headers) {
  CURL* c = static_cast<CURL*>(curl_);
  post_result out;
  if (c == nullptr) {
    out.error = "libcurl could not make a handle";
    return out;
  }
  curl_slist* list = nullptr;
  list = curl_slist_append(list, "Content-Type: application/json");
  // Without this, curl waits for a "100 Continue" before larger bodies.
  list = curl_slist_append(list, "Expect:");
  for (const auto& h : headers)
    list = curl_slist_append(list, h.c_str());
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, ep_.url.c_str());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "loyalty-webhooks/1");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(ep_.timeout_ms));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(ep_.connect_timeout_ms));
  // Signals are not thread-safe: timeouts without SIGALRM.
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(&stop_));
  if (!ep_.ca_file.empty())
    curl_easy_setopt(c, CURLOPT_CAINFO, ep_.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, ep_.tls_verify ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, ep_.tls_verify ? 2L : 0L);
  const CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
  } else {
    out.error = error[0] != '\0' ? std::string(error) : std::string(curl_easy_strerror(rc));
  }
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(list);
  return out;
}

} // namespace loyalty::webhooks
