// The one place that sees libcurl: POSTs of a body with headers to one
// endpoint, over one reused connection (keep-alive) where the server allows.
//
// Thread affinity: one poster per thread (a curl easy handle is not shared).
// curl_global_init must have run (the process's main does it) before the
// first poster is made.
#pragma once

#include "io/client/webhooks/settings.hpp"

#include <atomic>
#include <string>
#include <vector>

namespace loyalty::webhooks {

struct post_result {
  long status = 0;    // the HTTP status; 0 when there was no answer
  std::string error;  // why there was no answer (timeout, refused, TLS, ...); empty otherwise
  [[nodiscard]] bool acknowledged() const noexcept { return status >= 200 && status <= 299; }
};

class http_poster {
public:
  // `stop` aborts a POST in progress when it turns true (a clean stop does
  // not wait for a slow endpoint's timeout).
  http_poster(const endpoint_settings& ep, const std::atomic<bool>& stop);
  ~http_poster();
  http_poster(const http_poster&) = delete;
  http_poster& operator=(const http_poster&) = delete;

  // POSTs `body` as application/json with `headers` ("Name: value").
  // Redirects are not followed: a 3xx is not an acknowledgement.
  [[nodiscard]] post_result post(const std::string& body, const std::vector<std::string>& headers);

private:
  const endpoint_settings& ep_;
  const std::atomic<bool>& stop_;
  void* curl_ = nullptr;  // CURL*; kept out of the header (one boundary per foreign library)
};

} // namespace loyalty::webhooks
